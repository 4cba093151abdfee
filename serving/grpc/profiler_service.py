"""`tensorflow.ProfilerService` on the main gRPC port, as TF Serving registers it.

`tf.profiler.experimental.client.trace("grpc://host:port", logdir, ms)`
sends `Profile`; this server traces itself with TensorFlow's in-process
profiler for the requested duration and writes the XSpace where TF's own
profiler server would: `<repository_root>/<session_id>/<host>.xplane.pb`
(repository_root is the client's `<logdir>/plugins/profile`), so the trace
opens in TensorBoard's profile tab. Served here rather than through
`tf.profiler.experimental.server.start`, which would open a second listener
on every interface whatever `--bind_address` says.

Only the request fields used are declared, in a private descriptor pool
(parsing skips the rest); an empty response means "trace collected".
One trace at a time: a second concurrent Profile is UNAVAILABLE.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

SERVICE = "tensorflow.ProfilerService"
PROFILE = f"/{SERVICE}/Profile"
TERMINATE = f"/{SERVICE}/Terminate"
MONITOR = f"/{SERVICE}/Monitor"
# A trace longer than this is refused: it would hold a worker thread that long.
MAX_DURATION_MS = 10 * 60 * 1000
# ProfileResponse.empty_trace = true (field 7, varint 1).
EMPTY_TRACE = b"\x38\x01"


def _request_class() -> Any:
    file = descriptor_pb2.FileDescriptorProto(
        name="rollouts_profile_request.proto", package="rollouts.profiler", syntax="proto3")
    message = file.message_type.add(name="ProfileRequest")
    fields = (("duration_ms", 1, descriptor_pb2.FieldDescriptorProto.TYPE_UINT64),
              ("repository_root", 5, descriptor_pb2.FieldDescriptorProto.TYPE_STRING),
              ("session_id", 6, descriptor_pb2.FieldDescriptorProto.TYPE_STRING),
              ("host_name", 7, descriptor_pb2.FieldDescriptorProto.TYPE_STRING))
    for name, number, kind in fields:
        message.field.add(name=name, number=number, type=kind,
                          label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("rollouts.profiler.ProfileRequest"))


ProfileRequest = _request_class()


def trace_path(repository_root: str, session_id: str, host_name: str) -> str:
    """Where TF's profiler server puts a host's trace (':' is not kept in file names)."""
    host = (host_name or "localhost").replace(":", "_").replace("/", "_")
    return os.path.join(repository_root, session_id, f"{host}.xplane.pb")


class Tracer:
    """TensorFlow's in-process profiler: trace `duration_s`, return the XSpace file."""

    def __init__(self, wait: Callable[[float], None] | None = None) -> None:
        self._wait = wait or threading.Event().wait

    def trace(self, duration_s: float, workdir: str) -> str | None:
        import tensorflow as tf

        tf.profiler.experimental.start(workdir)
        try:
            self._wait(duration_s)
        finally:
            tf.profiler.experimental.stop()
        found = sorted(glob.glob(os.path.join(workdir, "plugins", "profile", "*", "*.xplane.pb")))
        return found[-1] if found else None


class ProfilerService(grpc.GenericRpcHandler):
    """Profile, Terminate and (refused) Monitor of tensorflow.ProfilerService."""

    def __init__(self, tracer: Tracer | None = None) -> None:
        self._tracer = tracer or Tracer()
        self._busy = threading.Lock()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = details.method
        if method == PROFILE:
            return grpc.unary_unary_rpc_method_handler(self.profile)
        if method == TERMINATE:
            return grpc.unary_unary_rpc_method_handler(lambda request, context: b"")
        if method == MONITOR:
            return grpc.unary_unary_rpc_method_handler(self.monitor)
        return None

    def monitor(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Monitor is not supported by this server")
        raise AssertionError("unreachable")

    def profile(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        parsed = ProfileRequest.FromString(request)
        if not parsed.repository_root:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "ProfileRequest.repository_root is required")
        if not 0 < parsed.duration_ms <= MAX_DURATION_MS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"duration_ms must be in (0, {MAX_DURATION_MS}], got "
                          f"{parsed.duration_ms}")
        if not self._busy.acquire(blocking=False):
            context.abort(grpc.StatusCode.UNAVAILABLE, "Another profiling session is active")
        workdir = tempfile.mkdtemp(prefix="rollouts-profile-")
        try:
            produced = self._tracer.trace(parsed.duration_ms / 1000.0, workdir)
            if produced is None:
                return EMPTY_TRACE
            target = trace_path(parsed.repository_root, parsed.session_id, parsed.host_name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.move(produced, target)
            return b""
        except OSError as exc:
            context.abort(grpc.StatusCode.INTERNAL, f"Cannot write the trace: {exc}")
            raise
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            self._busy.release()


def add_to_server(server: grpc.Server) -> None:
    server.add_generic_rpc_handlers([ProfilerService()])
