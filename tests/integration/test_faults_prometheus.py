"""Fault: Prometheus down, or up with no data for the model: never a false revert.

The canary's analysis asks for `onNoData: fail` and `failureLimit: 1`, the
harshest settings, yet an interval nobody could measure is journalled as
skipped and the canary stays in traffic: first with Prometheus on a closed
port, then with a real Prometheus (/usr/bin/prometheus) that scrapes nothing.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.adapters.gitrepo import GitRepo
from controller.adapters.journal import GitNotes
from controller.adapters.metrics import PrometheusProvider
from controller.runtime.runner import Controller
from tests.conftest import ServerProcess
from tests.gitops import Person, spec
from tests.helpers import free_port, wait_for
from tests.integration.test_controller_canary import (
    fleet,  # noqa: F401 - the fixture: two servers, models, a person's remote
    label_version,
    running,
    split_of,
)

pytestmark = pytest.mark.integration

PROMETHEUS = Path("/usr/bin/prometheus")
HARSH = (
    "    split: {hashKey: x-user-id}\n"
    "    steps: [{weight: 50, hold: 1h}]\n"
    "    analysis:\n"
    "      interval: 1s\n"
    "      minRequests: 1\n"
    "      onNoData: fail\n"
    "      failureLimit: 1\n"
    "      checks: {errorRate: {max: 0.05}}\n"
)


@pytest.fixture
def empty_prometheus(tmp_path: Path) -> Iterator[str]:
    if not PROMETHEUS.exists() and os.environ.get("ROLLOUTS_REQUIRE_PROMETHEUS") != "1":
        pytest.skip("/usr/bin/prometheus absent: apt-get install -y prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\n")
    proc = subprocess.Popen(
        [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_for(ready, 30, 0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_provider_reports_problems_not_numbers(empty_prometheus: str) -> None:
    down = PrometheusProvider(f"http://127.0.0.1:{free_port()}", timeout=2)
    reading = down.read("hp2", [1, 2], 0.0, 10.0)
    assert not reading.windows and "Prometheus query failed" in reading.problems[0]
    now = time.time()
    empty = PrometheusProvider(empty_prometheus).read("hp2", [1, 2], now - 5, now)
    assert not empty.windows
    assert any("no requests series for hp2 v2" in p for p in empty.problems), empty.problems


def test_canary_is_never_reverted_without_data(
    fleet: dict[str, Any], tmp_path: Path, empty_prometheus: str  # noqa: F811
) -> None:
    person: Person = fleet["person"]
    servers: list[ServerProcess] = fleet["servers"]
    start = person.write("rollouts/hp2.yaml", spec(stable=1, canary=2, canary_block=HARSH),
                         "canary hp2 v2")
    reader = GitRepo(person.url, tmp_path / "reader")
    reader_notes = GitNotes(reader)

    def outcomes() -> list[str]:
        reader.sync()
        return [line for line in reader_notes.notes(start) if '"kind":"interval"' in line]

    for phase, url in (("down", f"http://127.0.0.1:{free_port()}"), ("empty", empty_prometheus)):
        before = len(outcomes())
        controller: Controller = running(fleet, tmp_path / phase, prometheus_url=url)
        try:
            # Three intervals judged (or rather, not) under this Prometheus.
            wanted = before + 3
            assert wait_for(lambda: len(outcomes()) >= wanted, 60, 0.3), (  # noqa: B023
                controller.status()
            )
            for server in servers:
                assert label_version(server, "canary") == 2 and split_of(server) is not None
        finally:
            controller.stop()
    lines = outcomes()
    assert lines and all('"outcome":"skipped"' in line for line in lines), lines
    assert all(subject != "" and not subject.startswith("rollouts:")
               for subject in person.remote_log())
    assert not any("verdict" in n for n in reader_notes.notes(start))
