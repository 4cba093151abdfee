"""Fault: the git remote becomes unreachable (its directory renamed away), then returns.

Serving continues on the last good state, the controller reports the error in
its status and retries with backoff (fewer fetches than polls), and once the
remote is back it applies what was pushed meanwhile.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.gitops import Person, spec
from tests.helpers import wait_for
from tests.integration.test_controller_canary import (
    fleet,  # noqa: F401 - the fixture: two servers, models, a person's remote
    label_version,
    running,
)

pytestmark = pytest.mark.integration


def serves_v1(server: ServerProcess) -> bool:
    reply = httpx.post(f"{server.rest_url}/v1/models/hp2:predict",
                       json={"instances": [1.0]}, timeout=10)
    return reply.status_code == 200 and reply.json()["predictions"] == [2.5]


def test_unreachable_remote_keeps_serving_backs_off_and_recovers(
    fleet: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    person: Person = fleet["person"]
    servers: list[ServerProcess] = fleet["servers"]
    controller = running(fleet, tmp_path)  # polls git every 0.5 s
    away = person.remote.with_name("remote.git.away")
    try:
        assert wait_for(lambda: controller.status()["inSync"], 60, 0.2), controller.status()
        caplog.set_level(logging.WARNING, logger="controller.runtime.runner")
        person.remote.rename(away)
        assert wait_for(lambda: bool(controller.status()["gitError"]), 10, 0.1)
        outage_started = time.monotonic()
        caplog.clear()
        # Six seconds of outage: twelve polls; backoff (0.5 s doubling, capped at
        # 4 s) makes it four or five fetch attempts.
        assert not wait_for(lambda: not controller.status()["gitError"], 6, 0.2)
        attempts = sum("git sync failed" in r.getMessage() for r in caplog.records)
        elapsed = time.monotonic() - outage_started
        assert 1 <= attempts < elapsed / 0.5 - 2, (attempts, elapsed)
        for server in servers:
            assert serves_v1(server) and label_version(server, "stable") == 1
        # A change pushed while the controller cannot see the remote.
        away.rename(person.remote)
        person.write("rollouts/hp2.yaml", spec(stable=2), "hp2 to v2")
        assert wait_for(
            lambda: not controller.status()["gitError"]
            and all(label_version(s, "stable") == 2 for s in servers),
            30,
            0.2,
        ), controller.status()
    finally:
        if away.exists():
            away.rename(person.remote)
        controller.stop()
