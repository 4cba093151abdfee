"""Limits on what one client can make the server do, and where models may live.

Owns: the per-input tensor element limit (--max_tensor_elements, checked on a
TensorProto's shape before anything is allocated, and on decoded REST arrays);
admission of REST inference calls (--max_pending_requests: a full wait queue
answers at once instead of piling up); the gRPC concurrency bound derived from
the same flags; and --model_root confinement of model base paths. Decisions
are plain functions; the gRPC interceptor that applies the element limit is
serving/grpc/tensor_limit.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from tensorflow_serving.config.model_server_config_pb2 import ModelServerConfig

from serving.core.status import Code, ServingError, invalid_argument

_URI_SCHEME = ("://",)


# ----- tensor elements -----


def shape_elements(dims: list[int]) -> int | None:
    """Elements of a shape, or None when a dimension is unknown (the codec rejects it)."""
    count = 1
    for size in dims:
        if size < 0:
            return None
        count *= size
    return count


def check_elements(name: str, count: int, limit: int) -> None:
    """INVALID_ARGUMENT naming the input when it has more than `limit` elements (0: no limit)."""
    if limit > 0 and count > limit:
        raise invalid_argument(
            f"Input {name} has {count} elements, more than the limit of {limit} "
            f"(--max_tensor_elements)"
        )


def check_arrays(arrays: Mapping[str, Any], limit: int) -> None:
    """The element limit over decoded inputs (anything with a numpy-style `size`)."""
    for name, array in sorted(arrays.items()):
        check_elements(name, int(array.size), limit)


def check_tensor_protos(inputs: Mapping[str, Any], limit: int) -> None:
    """The element limit over TensorProtos, from their shapes alone."""
    for name, proto in sorted(inputs.items()):
        count = shape_elements([d.size for d in proto.tensor_shape.dim])
        if count is not None:
            check_elements(name, count, limit)


# ----- admission -----


def max_concurrent_rpcs(workers: int, max_pending: int) -> int | None:
    """grpc's maximum_concurrent_rpcs: the workers plus the queue (negative pending: no bound)."""
    return None if max_pending < 0 else workers + max_pending


class Overloaded(ServingError):
    """RESOURCE_EXHAUSTED from admission: the call never reached the data plane."""

    def __init__(self, in_flight: int, capacity: int) -> None:
        super().__init__(
            Code.RESOURCE_EXHAUSTED,
            f"Server overloaded: {in_flight} requests in flight (limit {capacity}); retry later",
        )


class AdmissionGate:
    """Counts calls running or waiting for a worker; refuses one that would overflow.

    Used from one event loop (REST), so a plain counter suffices.
    """

    def __init__(self, max_running: int, max_pending: int) -> None:
        self.capacity = None if max_pending < 0 else max_running + max_pending
        self.in_flight = 0

    def enter(self) -> None:
        """Admit a call or raise RESOURCE_EXHAUSTED at once."""
        if self.capacity is not None and self.in_flight >= self.capacity:
            raise Overloaded(self.in_flight, self.capacity)
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1


# ----- model root -----


def outside_root(base_path: str, root: str) -> str | None:
    """Where `base_path` really points when that is outside `root`; None when inside.

    Symlinks and `..` are resolved on both sides (os.path.realpath), so a link
    inside the root that points out of it is caught. A URI is never inside.
    """
    if any(marker in base_path for marker in _URI_SCHEME):
        return base_path
    real_root = os.path.realpath(root)
    real = os.path.realpath(base_path)
    if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
        return None
    return real


def check_model_root(config: ModelServerConfig, root: str) -> None:
    """INVALID_ARGUMENT naming the first model whose base path escapes `root`."""
    if not root or config.WhichOneof("config") != "model_config_list":
        return
    for model in config.model_config_list.config:
        real = outside_root(model.base_path, root)
        if real is not None:
            raise invalid_argument(
                f"Model {model.name} base_path {model.base_path} resolves to {real}, "
                f"outside --model_root {root}"
            )
