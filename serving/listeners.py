"""The listeners the flags ask for, built but not started: the main gRPC
server (PredictionService, ModelService, RolloutService, and health and the
profiler when asked), --admin_port's gRPC server, and the REST apps with
their addresses. `serving.main` starts and stops them."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from starlette.types import ASGIApp

from serving import limits
from serving.admin_auth import AdminInterceptor
from serving.config.files import MonitoringSettings
from serving.config.flags import ServerFlags, channel_arguments
from serving.config.tls import SSLSettings
from serving.grpc import health, profiler_service
from serving.grpc import prediction_service as grpc_prediction_service
from serving.grpc.server import alts_credentials, build_grpc_server, server_credentials
from serving.grpc.tensor_limit import TensorLimitInterceptor
from serving.server_core import ServerCore
from serving.wiring import Wiring, build_admin_rest, build_rest

# Admin calls are few (a controller or a person), but a reload can hold one
# thread for its whole deadline.
ADMIN_WORKERS = 8


def host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def grpc_credentials(flags: ServerFlags, ssl: SSLSettings | None,
                     ) -> grpc.ServerCredentials | None:
    """--ssl_config_file's credentials, or ALTS with --use_alts_credentials."""
    credentials = server_credentials(ssl) if ssl is not None else None
    if flags.use_alts_credentials:
        credentials = alts_credentials()
    return credentials


@dataclass(frozen=True)
class GrpcListeners:
    """The main gRPC server, --admin_port's (or None) and the health service
    (with --enable_grpc_healthcheck_service), which drains first at shutdown."""

    server: grpc.Server
    admin: grpc.Server | None
    health_service: health.HealthService | None


def build_grpc_listeners(core: ServerCore, wiring: Wiring, flags: ServerFlags, token: str,
                         credentials: grpc.ServerCredentials | None) -> GrpcListeners:
    """Raises RuntimeError when a port cannot be bound."""
    interceptors: list[grpc.ServerInterceptor] = [
        AdminInterceptor(token, serve_admin=not flags.admin_port)
    ]
    if flags.max_tensor_elements:
        interceptors.append(TensorLimitInterceptor(flags.max_tensor_elements))

    health_service: health.HealthService | None = None

    def add_prediction_service(server: grpc.Server) -> None:
        grpc_prediction_service.add_to_server(
            wiring.dataplane, server, flags.enable_serialization_as_tensor_content)

    def add_health_service(server: grpc.Server) -> None:
        nonlocal health_service
        health_service = health.add_to_server(server)

    def add_profiler_service(server: grpc.Server) -> None:
        profiler_service.add_to_server(server)

    extra = [add_prediction_service]
    if flags.enable_grpc_healthcheck_service:
        extra.append(add_health_service)
    if flags.enable_profiler:
        extra.append(add_profiler_service)

    grpc_server = build_grpc_server(
        core,
        address=f"{host(flags.bind_address)}:{flags.port}",
        extra_servicers=extra,
        max_workers=flags.grpc_max_threads,
        interceptors=interceptors,
        credentials=credentials,
        max_receive_bytes=flags.max_request_bytes,
        maximum_concurrent_rpcs=limits.max_concurrent_rpcs(
            flags.grpc_max_threads, flags.max_pending_requests),
        channel_arguments=channel_arguments(flags.grpc_channel_arguments),
    )
    if flags.grpc_socket_path:
        grpc_server.add_insecure_port(f"unix:{flags.grpc_socket_path}")
    admin_server = build_admin_server(core, flags, token, credentials)
    # build_grpc_server has called each add_* above, so the health service is set.
    return GrpcListeners(grpc_server, admin_server, health_service)


def build_admin_server(core: ServerCore, flags: ServerFlags, token: str,
                       credentials: grpc.ServerCredentials | None) -> grpc.Server | None:
    """With --admin_port: ModelService and RolloutService on their own listener
    (the main port then refuses the admin methods); else None."""
    if not flags.admin_port:
        return None
    address = f"{host(flags.admin_bind_address or flags.bind_address)}:{flags.admin_port}"
    server = build_grpc_server(
        core, address=address, max_workers=ADMIN_WORKERS,
        interceptors=[AdminInterceptor(token)], credentials=credentials,
        max_receive_bytes=flags.max_request_bytes,
        maximum_concurrent_rpcs=limits.max_concurrent_rpcs(
            ADMIN_WORKERS, flags.max_pending_requests),
    )
    server.address = address  # type: ignore[attr-defined]
    return server


def rest_listeners(core: ServerCore, wiring: Wiring, flags: ServerFlags,
                   monitoring: MonitoringSettings, token: str,
                   ) -> list[tuple[ASGIApp, str, int, str]]:
    """Each REST app to run with its bind address, port and start-up banner:
    the main one with --rest_api_port, and --admin_rest_port's besides."""
    listeners: list[tuple[ASGIApp, str, int, str]] = []
    if flags.rest_api_port > 0:
        listeners.append((build_rest(core, wiring, flags, monitoring, token), flags.bind_address,
                          flags.rest_api_port,
                          f"Exporting HTTP/REST API at:{host(flags.bind_address)}:"
                          f"{flags.rest_api_port} ..."))
        if flags.admin_rest_port > 0:
            admin_bind = flags.admin_bind_address or flags.bind_address
            listeners.append((build_admin_rest(core, wiring, flags, monitoring, token),
                              admin_bind, flags.admin_rest_port,
                              f"Exporting admin HTTP/REST API at:{host(admin_bind)}:"
                              f"{flags.admin_rest_port} ..."))
    return listeners
