"""`--enable_profiler` (default true, as in TF Serving): the profiler service
on the gRPC port, so `tf.profiler.experimental.client.trace("grpc://host:port",
...)` collects a trace of this server.

serving/main.py calls `add_to_server` on the main gRPC server before it
starts whenever --enable_profiler is true. The implementation belongs to the
TF1-loader/profiler work (issue 13); until it lands this registers nothing.
"""

from __future__ import annotations

import grpc


def add_to_server(server: grpc.Server) -> None:
    """Register TensorFlow's ProfilerService on `server` (not yet: a no-op)."""
    del server
