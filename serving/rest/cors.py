"""CORS on the REST API, as TF Serving's HTTP server does it (http_server.cc).

Every path under /v1/ (case-insensitive, TF Serving's dispatcher) answers an
OPTIONS preflight itself: 200 with an empty body when the request has an
`Origin` naming an http(s) origin, else 400 ("Origin header is missing in
CORS preflight"). That happens with or without the flag; with
`--rest_api_enable_cors_support` every /v1/ response, errors and preflights
included, carries TF Serving's three headers. Other paths (the Prometheus
endpoint) are left alone, as there.
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CORS_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"POST, GET"),
    (b"access-control-allow-headers", b"Content-Type"),
)
_ORIGIN = re.compile(rb"https?://")
_MISSING_ORIGIN = "Origin header is missing in CORS preflight"


def _in_api(scope: Scope) -> bool:
    return str(scope.get("path", "")).lower().startswith("/v1/")


class Cors:
    """ASGI wrapper: preflights on /v1/ paths, and the headers when `add_headers`."""

    def __init__(self, app: ASGIApp, add_headers: bool) -> None:
        self._app = app
        self._headers = list(CORS_HEADERS) if add_headers else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _in_api(scope):
            await self._app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await self._preflight(scope, send)
            return
        if not self._headers:
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", [])
                        if k.lower() not in {name for name, _ in CORS_HEADERS}]
                message = {**message, "headers": kept + self._headers}
            await send(message)

        await self._app(scope, receive, send_with_headers)

    async def _preflight(self, scope: Scope, send: Send) -> None:
        origin = next((v for k, v in scope.get("headers", []) if k.lower() == b"origin"), b"")
        if _ORIGIN.search(origin):
            status, body, kind = 200, b"", []
        else:
            status = 400
            body = json.dumps({"error": _MISSING_ORIGIN}).encode()
            kind = [(b"content-type", b"application/json")]
        headers = [*kind, (b"content-length", str(len(body)).encode()), *self._headers]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
