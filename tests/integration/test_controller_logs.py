"""The controller's log on a real run: every change it makes to a target, and no chatter.

A real `rollouts run` process (JSON log format) against a real server and a
real git remote: a stable model, then a canary. The log must name each config
push and split change with its target and commit at INFO, carry no scheduler
job chatter, and stay quiet while nothing changes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, polling_flags
from tests.gitops import Person, spec
from tests.helpers import free_port, wait_for

pytestmark = pytest.mark.integration

KEYS = {"time", "level", "model", "target", "commit", "event", "message", "logger"}


def read_log(path: Path) -> list[dict[str, Any]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # a line that is not JSON fails here


def test_real_run_logs_each_change_with_target_and_commit_and_no_tick_chatter(
    tmp_path: Path, shared_servers: Any, server_pool: Any, make_model: Any
) -> None:
    root = tmp_path / "models"
    make_model(root / "hp2", 1)
    make_model(root / "hp2", 2, offset=3.0)
    server = shared_servers(polling_flags(server_pool.workdir), 1)[0]
    person = Person(tmp_path)
    first = person.write("rollouts/hp2.yaml", spec(stable=1), "hp2 at v1")
    listen = f"127.0.0.1:{free_port()}"
    log_path = tmp_path / "controller.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "controller", "run", "--repo", person.url,
             "--model-root", str(root), "--target", f"s0={server.address}",
             "--state-dir", str(tmp_path / "state"), "--poll-interval", "1s",
             "--reconcile-interval", "1s", "--listen", listen, "--log-format", "json"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=log_file,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    try:
        def status() -> dict[str, Any]:
            try:
                reply: dict[str, Any] = httpx.get(f"http://{listen}/status", timeout=5).json()
            except (httpx.HTTPError, ValueError):
                return {}
            return reply

        def applied(commit: str) -> bool:
            document = status()
            return bool(document.get("inSync")) and document.get("commitApplied") == commit

        assert wait_for(lambda: applied(first), 90, 0.2), log_path.read_text()[-3000:]
        canary = person.write("rollouts/hp2.yaml", spec(stable=1, canary=2), "canary hp2 v2")
        assert wait_for(lambda: applied(canary), 90, 0.2), log_path.read_text()[-3000:]
        # Quiet ticks: reconcile passes with nothing to do log nothing.
        def passes(count: int) -> bool:
            ticks: set[str] = set()

            def seen_enough() -> bool:
                ticks.add(status().get("lastReconcileAt", ""))
                return len(ticks) >= count

            return wait_for(seen_enough, 60, 0.3)

        assert passes(3), status()
        quiet_from = len(read_log(log_path))
        assert passes(4), status()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    records = read_log(log_path)
    for record in records:
        assert set(record) == KEYS, record
    info = [r for r in records if r["level"] == "INFO"]
    assert not [r for r in records if r["logger"].startswith("apscheduler")]
    pushes = [r for r in info if r["event"] == "apply"]
    # The first commit: a config push to s0, naming the commit.
    assert any(r["target"] == "s0" and r["commit"] == first[:12] and "reload config" in
               r["message"] and r["model"] == "hp2" for r in pushes), pushes
    # The canary commit: a config push (v2 loaded, labelled) and a split change.
    canary_changes = [r["message"] for r in pushes if r["commit"] == canary[:12]]
    assert any("reload config" in m and "'canary': 2" in m for m in canary_changes), pushes
    assert any("set split hp2 canary 50%" in m for m in canary_changes), pushes
    assert any(r["event"] == "specs" and r["commit"] == canary[:12] for r in info)
    # Nothing per tick: no line at all once the fleet matched git.
    assert records[quiet_from:] == [], records[quiet_from:]
    assert len(info) < 20, info
