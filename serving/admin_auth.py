"""Admin access control: which calls are admin, and the bearer-token check on them.

The admin surface is everything that changes or reveals the server's
configuration: ModelService/HandleReloadConfigRequest, every method of our
RolloutService extension (its reads too: the applied config and the model
listing show base paths), and the REST listing GET /v1/models. Inference,
metadata, GetModelStatus and the metrics endpoint stay open, as in TF Serving.

With --admin_token_file, an admin call must carry `authorization: Bearer
<token>` (gRPC metadata or HTTP header); otherwise it is refused with
UNAUTHENTICATED / 401 before any handler runs, so nothing is applied. Tokens
are compared with hmac.compare_digest. With --admin_port, the main listener
refuses admin calls with PERMISSION_DENIED (rather than UNIMPLEMENTED, which
a controller would take for a plain TF Serving) and the admin listener serves
them; --admin_rest_port does the same for the REST admin paths (403 on the
main REST port). No message here ever contains the token a client sent.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any

import grpc

from serving.config.errors import StartupError

ADMIN_METHODS = frozenset({"/tensorflow.serving.ModelService/HandleReloadConfigRequest"})
ADMIN_SERVICE_PREFIXES = ("/rollouts.serving.v1.RolloutService/",)
ADMIN_REST_PATHS = frozenset({"/v1/models", "/v1/models/"})

UNAUTHENTICATED_MESSAGE = "Missing or invalid admin bearer token"
_SCHEME = "bearer "


class TokenFileError(StartupError):
    """An unreadable or unusable --admin_token_file (the message never holds the token)."""


def read_token_file(path: str) -> str:
    """The token in `path`, surrounding whitespace removed."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise TokenFileError(f"{path}: cannot read token file: {reason}") from None
    if not token:
        raise TokenFileError(f"{path}: token file is empty")
    # gRPC metadata values are printable ASCII; a token that is not could never match.
    if not token.isascii() or not token.isprintable() or " " in token:
        raise TokenFileError(f"{path}: token must be printable ASCII without spaces")
    return token


def is_admin_method(method: str) -> bool:
    """True for a full gRPC method name ("/package.Service/Method") on the admin surface."""
    return method in ADMIN_METHODS or method.startswith(ADMIN_SERVICE_PREFIXES)


def is_admin_path(method: str, path: str) -> bool:
    """True for a REST request on the admin surface."""
    return path in ADMIN_REST_PATHS


def bearer_matches(expected: str, header: str | None) -> bool:
    """Whether an `authorization` value carries `expected`, compared in constant time."""
    if not expected or header is None or not header[: len(_SCHEME)].lower() == _SCHEME:
        return False
    given = header[len(_SCHEME):].strip()
    return hmac.compare_digest(given.encode(), expected.encode())


def _metadata_value(metadata: Iterable[tuple[str, str | bytes]] | None, key: str) -> str | None:
    for name, value in metadata or ():
        if name.lower() == key:
            return value.decode(errors="replace") if isinstance(value, bytes) else value
    return None


def _refusal(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler[Any, Any]:
    # No deserializer: the request is never parsed, let alone applied.
    def refuse(request: bytes, context: grpc.ServicerContext) -> None:
        context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(refuse)


class AdminInterceptor(grpc.ServerInterceptor):
    """Guards the admin methods of one listener.

    `token` empty: no token needed. `serve_admin` False: this listener is the
    main port of a server with a separate admin port, so admin calls are refused.
    """

    def __init__(self, token: str, *, serve_admin: bool = True) -> None:
        self._token = token
        self._serve_admin = serve_admin

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method
        if not is_admin_method(method):
            return continuation(handler_call_details)
        if not self._serve_admin:
            return _refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method} is served on the admin port only",
            )
        if self._token:
            metadata = handler_call_details.invocation_metadata
            if not bearer_matches(self._token, _metadata_value(metadata, "authorization")):
                return _refusal(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)
        return continuation(handler_call_details)


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _send_json(send: Send, status: int, document: dict[str, str],
                     headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    body = json.dumps(document).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
    })
    await send({"type": "http.response.body", "body": body})


class AdminRestGuard:
    """ASGI middleware for the admin REST paths of one listener.

    `token` set: they need `Authorization: Bearer <token>` (401 otherwise).
    `admin_only`: this listener is the admin REST port, so everything else is
    404. `serve_admin` False: the main port of a server with an admin REST port,
    so admin paths are refused with 403, as the gRPC main port refuses them.
    """

    def __init__(self, app: ASGIApp, token: str = "", *, serve_admin: bool = True,
                 admin_only: bool = False) -> None:
        self.app = app
        self._token = token
        self._serve_admin = serve_admin
        self._admin_only = admin_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        admin = is_admin_path(scope["method"], scope["path"])
        if not admin:
            if self._admin_only:
                await _send_json(send, 404, {
                    "error": f"{scope['method']} {scope['path']} is not served on the admin port"})
                return
            await self.app(scope, receive, send)
            return
        if not self._serve_admin:
            await _send_json(send, 403, {
                "error": f"{scope['method']} {scope['path']} is served on the admin REST port"
                " only"})
            return
        if not self._token:
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                header = value.decode("latin-1")
        if bearer_matches(self._token, header):
            await self.app(scope, receive, send)
            return
        await _send_json(send, 401, {"error": UNAUTHENTICATED_MESSAGE},
                         ((b"www-authenticate", b"Bearer"),))
