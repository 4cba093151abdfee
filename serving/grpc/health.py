"""`--enable_grpc_healthcheck_service`: the standard grpc.health.v1.Health service.

One status for the whole server, as TF Serving's: SERVING from the moment the
listener opens (which is only once the startup models are AVAILABLE), then
NOT_SERVING for good once shutdown starts draining. Known service names are
the empty name (the server), TF Serving's "ModelService" and
"PredictionService", and their full names; any other is NOT_FOUND. A Watch
stream gets the current status at once and every change; at shutdown it gets
NOT_SERVING and then ends, so an open Watch never holds the drain up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVICES = frozenset({
    "", "ModelService", "PredictionService",
    "tensorflow.serving.ModelService", "tensorflow.serving.PredictionService",
})
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
# How often a Watch stream looks whether its client went away.
_WATCH_POLL_S = 1.0


class HealthService(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._status: health_pb2.HealthCheckResponse.ServingStatus.ValueType = SERVING
        self._draining = False

    def drain(self) -> None:
        """Shutdown began: NOT_SERVING from now on, and Watch streams end."""
        with self._changed:
            self._status = NOT_SERVING
            self._draining = True
            self._changed.notify_all()

    def _next(self, sent: int) -> tuple[int, bool]:
        """The status once it differs from `sent` or draining began (or after a poll)."""
        with self._changed:
            self._changed.wait_for(lambda: self._status != sent or self._draining,
                                   timeout=_WATCH_POLL_S)
            return self._status, self._draining

    def Check(self, request: health_pb2.HealthCheckRequest,  # noqa: N802 (gRPC's name)
              context: grpc.ServicerContext) -> health_pb2.HealthCheckResponse:
        if request.service not in SERVICES:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        with self._changed:
            return health_pb2.HealthCheckResponse(status=self._status)

    def Watch(self, request: health_pb2.HealthCheckRequest,  # noqa: N802
              context: grpc.ServicerContext) -> Iterator[health_pb2.HealthCheckResponse]:
        if request.service not in SERVICES:
            # The protocol's answer for a service that may appear later.
            yield health_pb2.HealthCheckResponse(status=SERVICE_UNKNOWN)
            return
        with self._changed:
            sent = self._status
        yield health_pb2.HealthCheckResponse(status=sent)
        while context.is_active():
            status, draining = self._next(sent)
            if status != sent:
                sent = status
                yield health_pb2.HealthCheckResponse(status=status)
            if draining:
                return


def add_to_server(server: grpc.Server) -> HealthService:
    service = HealthService()
    health_pb2_grpc.add_HealthServicer_to_server(service, server)
    return service
