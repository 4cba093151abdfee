"""A gRPC channel to a model server: plain or TLS (a CA, a client certificate),
every call carrying the admin bearer token when one is given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc


class ChannelConfigError(ValueError):
    """Client TLS settings that do not fit together."""


class _CallDetails(grpc.ClientCallDetails):
    def __init__(
        self, base: grpc.ClientCallDetails, metadata: list[tuple[str, str | bytes]]
    ) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = tuple(metadata)
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


class BearerTokenInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Client side: adds `authorization: Bearer <token>` to every unary call."""

    def __init__(self, token: str) -> None:
        self._header: tuple[str, str | bytes] = ("authorization", f"Bearer {token}")

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        metadata = list(client_call_details.metadata or [])
        metadata.append(self._header)
        return continuation(_CallDetails(client_call_details, metadata), request)



def client_channel(
    address: str,
    *,
    token: str = "",
    root_ca: bytes = b"",
    client_cert: bytes = b"",
    client_key: bytes = b"",
    tls: bool | None = None,
    options: list[tuple[str, Any]] | None = None,
) -> grpc.Channel:
    """A channel to a model server: TLS when `tls` (default: when a CA or client
    certificate is given; no CA means the system's roots), and every call
    carrying `authorization: Bearer <token>` when a token is given."""
    if bool(client_cert) != bool(client_key):
        raise ChannelConfigError(
            "a client certificate and its key go together: give both or neither"
        )
    use_tls = bool(root_ca or client_cert) if tls is None else tls
    if use_tls:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=root_ca or None,
            private_key=client_key or None,
            certificate_chain=client_cert or None,
        )
        channel = grpc.secure_channel(address, credentials, options=options)
    else:
        channel = grpc.insecure_channel(address, options=options)
    if token:
        # Metadata rather than call credentials: grpc sends call credentials
        # only over TLS, and a token on a plain loopback channel is legitimate.
        channel = grpc.intercept_channel(channel, BearerTokenInterceptor(token))
    return channel

