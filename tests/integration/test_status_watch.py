"""`rollouts status --watch` against a real controller HTTP surface: the view is
redrawn when the status changes, a controller that stops answering is shown, and
Ctrl-C ends the watch with exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from controller.runtime.status_server import StatusServer
from tests.conftest import REPO
from tests.helpers import FAULTHANDLER_ENV, free_port, interrupt, wait_for

pytestmark = pytest.mark.integration


class Source:
    """A StatusSource whose document the test changes."""

    webhook_secret = b""

    def __init__(self) -> None:
        self.document: dict[str, Any] = doc(2000, "analyse")

    def status(self) -> Any:
        return self.document

    def trigger(self) -> None:
        pass

    def metrics_text(self) -> bytes:
        return b""


def doc(weight_bp: int, phase: str) -> dict[str, Any]:
    rollout = {"model": "hp2", "version": 2, "phase": phase, "step": 0, "steps": 2,
               "stepText": "1/2", "weightBp": weight_bp, "canaryCommit": "c" * 40,
               "message": "", "intervals": [{"outcome": "pass",
                                             "summary": f"pass at {weight_bp / 100:g}%"}]}
    return {"repo": "/srv/r.git", "branch": "main", "commitSeen": "a" * 40,
            "commitApplied": "a" * 40, "inSync": True, "specErrors": [], "gitError": "",
            "findings": [], "models": {"hp2": {
                "commitApplied": "a" * 40, "stable": 1, "canary": 2,
                "splitWeightBp": weight_bp, "servingWeightBp": weight_bp, "rollout": rollout,
                "targets": {"s0": {"reachable": True, "labels": {"stable": 1, "canary": 2},
                                   "splitWeightBp": weight_bp}}}}}


@pytest.fixture
def served() -> Iterator[tuple[Source, StatusServer, str]]:
    source = Source()
    listen = f"127.0.0.1:{free_port()}"
    server = StatusServer(source, listen)
    server.start()
    yield source, server, f"http://{listen}"
    server.stop()


def test_watch_redraws_on_change_and_ends_on_ctrl_c(
    served: tuple[Source, StatusServer, str],
) -> None:
    source, server, url = served
    env = os.environ | FAULTHANDLER_ENV | {"PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "controller", "status", "--watch", "--interval", "100ms",
         "--controller", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env)
    lines: list[str] = []
    stdout = process.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        assert wait_for(lambda: any("pass at 20%" in line for line in lines), 60, 0.05), lines
        assert any("─" in line for line in lines)  # into a pipe: a rule, then the view
        source.document = doc(5000, "analyse")
        assert wait_for(lambda: any("pass at 50%" in line for line in lines), 30, 0.05), lines
        # An unchanged document is not printed again.
        printed = len(lines)
        assert not wait_for(lambda: len(lines) > printed, 1.0, 0.1)
        server.stop()
        assert wait_for(lambda: any("cannot read" in line for line in lines), 30, 0.05), lines
        assert interrupt(process) == 0, process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
