"""The REST listener: uvicorn serving an ASGI app on its own thread with its
own event loop (uvloop when installed)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

import uvicorn


def _run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop when installed: it cut the REST path's CPU per request (see
    benchmarks/RESULTS.md); uvicorn.Server.serve() alone would not pick it."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


class RestServer:
    """uvicorn on its own thread with its own event loop."""

    def __init__(self, app: object, host: str, port: int, timeout_s: float) -> None:
        config = uvicorn.Config(
            app,  # type: ignore[arg-type]
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=int(max(timeout_s, 1)),
        )
        self.server = uvicorn.Server(config)
        # uvicorn installs signal handlers only on the main thread, so the
        # process-wide SIGTERM/SIGINT handling in main() stays ours.
        self._thread = threading.Thread(target=self._run, name="rest", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            _run_event_loop(self.server.serve())
        except BaseException as exc:  # reported by start()
            self.error = exc

    def start(self, timeout_s: float) -> None:
        self._thread.start()
        self._thread.join(0)
        deadline = threading.Event()
        waited = 0.0
        while not self.server.started and self._thread.is_alive() and waited < timeout_s:
            deadline.wait(0.05)
            waited += 0.05
        if not self.server.started:
            raise RuntimeError(f"REST server failed to start: {self.error or 'timeout'}")

    def stop(self, timeout_s: float) -> None:
        self.server.should_exit = True
        self._thread.join(timeout_s)
