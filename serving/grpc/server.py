"""Builds the gRPC server: TF Serving's ModelService, our RolloutService, and extras.

The data-plane services (PredictionService) register through
`extra_servicers`, so this module stays the single place that wires gRPC.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent import futures

import grpc

from serving.config.tls import SSLSettings
from serving.grpc.model_service import add_model_service
from serving.grpc.rollout_service import add_rollout_service
from serving.server_core import ServerCore

# Generous: a slow model must not starve status calls (TF Serving uses a
# large gRPC thread pool too).
DEFAULT_MAX_WORKERS = 32
# Same as tensorflow_model_server: responses and requests up to INT_MAX bytes.
_MAX_MESSAGE = 2**31 - 1


def build_grpc_server(
    core: ServerCore,
    *,
    address: str,
    extra_servicers: Sequence[Callable[[grpc.Server], None]] = (),
    max_workers: int = DEFAULT_MAX_WORKERS,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
    max_receive_bytes: int = 0,
    maximum_concurrent_rpcs: int | None = None,
    channel_arguments: Sequence[tuple[str, int | str]] = (),
) -> grpc.Server:
    """A server with every service registered and `address` bound (not started).

    `credentials`: TLS (serving/config/tls.py); None: plaintext. `max_receive_bytes`
    0 keeps TF Serving's INT_MAX. `maximum_concurrent_rpcs`: beyond it grpc
    answers RESOURCE_EXHAUSTED at once rather than queueing.
    `channel_arguments` (--grpc_channel_arguments) come last and win over ours:
    a key given twice keeps its last value.
    Raises RuntimeError if the address cannot be bound. The bound port is
    available as `server.bound_port` (useful when `address` ends in :0).
    """
    options: dict[str, int | str] = {
        "grpc.max_send_message_length": _MAX_MESSAGE,
        "grpc.max_receive_message_length": max_receive_bytes or _MAX_MESSAGE,
        "grpc.so_reuseport": 0,  # a busy port must fail, not be shared
    }
    options.update(channel_arguments)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        interceptors=list(interceptors),
        options=list(options.items()),
        maximum_concurrent_rpcs=maximum_concurrent_rpcs,
    )
    add_model_service(core, server)
    add_rollout_service(core, server)
    for add in extra_servicers:
        add(server)
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise RuntimeError(f"Failed to bind gRPC server to {address}")
    server.bound_port = port  # type: ignore[attr-defined]
    return server


def alts_credentials() -> grpc.ServerCredentials:
    """--use_alts_credentials. grpc creates ALTS credentials only on Google
    Cloud; elsewhere binding with them fails, and serve() says why."""
    return grpc.alts_server_credentials()


def server_credentials(settings: SSLSettings) -> grpc.ServerCredentials:
    """TF Serving's BuildServerCredentialsFromSSLConfigFile, in grpc's Python API."""
    return grpc.ssl_server_credentials(
        [(settings.server_key, settings.server_cert)],
        root_certificates=settings.custom_ca or None,
        require_client_auth=settings.client_verify,
    )
