"""The controller's HTTP surface: GET /status (JSON), GET /metrics (Prometheus text),
POST /webhook, GET /healthz, and the read-only dashboard (`controller.runtime.dashboard`).

Runs uvicorn on its own thread and event loop so the scheduler and the HTTP
server never block each other.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from controller.runtime.dashboard.auth import check_listen
from controller.runtime.dashboard.routes import DashboardSettings, DashboardSource, dashboard_routes
from controller.runtime.status import StatusDoc
from controller.runtime.webhook import verify

# Prometheus' text exposition format, as prometheus-client writes it.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_WEBHOOK_BODY = 1 << 20  # GitHub caps payloads at 25 MB; a push event is far smaller.


class StatusSource(Protocol):
    """What the HTTP surface needs of the controller (`runner.Controller`, or a fake)."""

    @property
    def webhook_secret(self) -> bytes: ...

    def status(self) -> StatusDoc: ...

    def metrics_text(self) -> bytes: ...

    def trigger(self) -> None: ...


def build_app(
    controller: StatusSource,
    dashboard: tuple[DashboardSource, DashboardSettings] | None = None,
) -> Starlette:
    async def status(_: Request) -> Response:
        return JSONResponse(dict(controller.status()))

    async def metrics(_: Request) -> Response:
        return Response(controller.metrics_text(), media_type=METRICS_CONTENT_TYPE)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def webhook(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_WEBHOOK_BODY:
            return JSONResponse({"error": "body too large"}, status_code=413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_WEBHOOK_BODY:
                return JSONResponse({"error": "body too large"}, status_code=413)
        secret = controller.webhook_secret
        if not verify(secret, body, request.headers.get("x-hub-signature-256")):
            return JSONResponse({"error": "bad or missing X-Hub-Signature-256"}, status_code=401)
        controller.trigger()
        return JSONResponse({"triggered": True}, status_code=202)

    return Starlette(
        routes=[
            Route("/status", status, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/webhook", webhook, methods=["POST"]),
            *(dashboard_routes(*dashboard) if dashboard is not None else []),
        ]
    )


class StatusServer:
    def __init__(
        self,
        controller: StatusSource,
        listen: str,
        dashboard: tuple[DashboardSource, DashboardSettings] | None = None,
    ) -> None:
        host, _, port = listen.rpartition(":")
        host = host or "127.0.0.1"
        if dashboard is not None:
            check_listen(listen, dashboard[1].token)
        config = uvicorn.Config(
            build_app(controller, dashboard),
            host=host,
            port=int(port),
            log_level="warning",
            lifespan="off",
            access_log=False,
            # The controller owns logging; uvicorn must not reconfigure it.
            log_config=None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="status-http", daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        end = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > end or not self._thread.is_alive():
                raise RuntimeError("controller HTTP server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
