"""The demo's processes and signals: the bundled server as a child process on
free loopback ports, the controller's logging sent to a file, and Ctrl-C /
SIGTERM turned into a clean stop that a second Ctrl-C cannot interrupt."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from controller.demo.workspace import Workspace

MODEL = "half_plus_two"  # the model the demo rolls out
MONITORING = 'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n'


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env() -> dict[str, str]:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


class ServerProcess:
    """The bundled model server as a child process on free loopback ports."""

    def __init__(self, workspace: Workspace) -> None:
        self.port = free_port()
        self.rest_port = free_port()
        empty = workspace.root / "empty.conf"
        empty.write_text("model_config_list {}\n")
        monitoring = workspace.root / "monitoring.conf"
        monitoring.write_text(MONITORING)
        self.args = [
            sys.executable, "-m", "serving",
            f"--port={self.port}", f"--rest_api_port={self.rest_port}",
            "--bind_address=127.0.0.1",
            f"--model_config_file={empty}",
            f"--monitoring_config_file={monitoring}",
            "--file_system_poll_wait_seconds=1",
        ]
        self.log_path = workspace.logs / "server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        # Its own session: a terminal's Ctrl-C reaches only the demo, which then
        # stops the server in order (drain, then exit).
        self.proc = subprocess.Popen(
            self.args, stdout=self._log, stderr=subprocess.STDOUT, env=child_env(),
            start_new_session=True,
        )
        self._http = httpx.Client(timeout=5.0)

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def answers(self) -> bool:
        """True once the REST port answers at all (a 404 for an unknown model counts)."""
        try:
            self._http.get(f"{self.rest_url}/v1/models/{MODEL}")
        except httpx.HTTPError:
            return False
        return True

    def label_version(self, label: str) -> int | None:
        """The version the server assigns `label` of the demo model, if AVAILABLE."""
        try:
            reply = self._http.get(f"{self.rest_url}/v1/models/{MODEL}/labels/{label}")
            statuses = reply.json().get("model_version_status", []) if reply.is_success else []
        except (httpx.HTTPError, ValueError):
            return None
        for status in statuses:
            if status.get("state") == "AVAILABLE":
                return int(status["version"])
        return None

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            self._log.flush()
            text = self.log_path.read_text(errors="replace").splitlines()
            return "\n".join(text[-lines:])
        return ""

    def stop(self, timeout_s: float = 20.0) -> None:
        self._http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


@contextlib.contextmanager
def controller_logs_to(path: Path) -> Iterator[None]:
    """Send the controller's (and apscheduler's) logging to a file, not the screen."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name, level in (("controller", logging.INFO), ("apscheduler", logging.ERROR)):
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
        handler.close()


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM end the demo like Ctrl-C does, and clean up.

    Set explicitly for SIGINT too: a process started in the background by a
    non-interactive shell inherits SIGINT ignored, and Python then never raises
    KeyboardInterrupt, so the demo would run on and leave its workspace behind.
    (Only the main thread can set handlers.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def uninterruptible() -> Iterator[None]:
    """A second Ctrl-C during cleanup must not orphan the server: ignore SIGINT and
    SIGTERM while the (bounded) cleanup runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
