"""Canaries judged on their answers, end to end: real servers, real models,
real user traffic and real git. Each canary starts with a dark launch (a step
of weight 0 with shadow scoring: no user is answered by it).

v1: y = 0.5x + 2 (stable); v2: the same model, so its answers are identical;
v3: y = 0.5x + 2.2, fast, status OK and wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServerProcess, monitored_flags, wait_for
from tests.gitops import Person, git, spec
from tests.integration.test_controller_canary import label_version, running, split_of
from tests.traffic import Traffic

pytestmark = pytest.mark.integration

METRICS = "/monitoring/prometheus/metrics"


def dark_launch(hold: str) -> str:
    return (
        "    split: {hashKey: x-user-id}\n"
        "    shadow: {sample: 1.0}  # every request also scored on the other version\n"
        f"    steps: [{{weight: 0, hold: {hold}}}, {{weight: 50, hold: 2s}}]\n"
        "    analysis:\n"
        "      interval: 1s\n"
        "      minRequests: 10\n"
        "      failureLimit: 2\n"
        "      checks:\n"
        "        errorRate: {max: 0.05}\n"
        "        predictionDiff: {tolerance: 0.001, maxDifferingRate: 0.01, maxMeanAbs: 0.01}\n"
    )


@pytest.fixture
def fleet(tmp_path: Path, shared_servers: Any, server_pool: Any, make_model: Any,
          ) -> dict[str, Any]:
    """Two servers with no models (the pool's, emptied), v1-v3 and a person's remote."""
    root = tmp_path / "models"
    make_model(root / "hp2", 1)
    make_model(root / "hp2", 2)
    make_model(root / "hp2", 3, offset=2.2)
    flags = monitored_flags(server_pool.workdir)
    servers = shared_servers(flags, 2)
    person = Person(tmp_path)
    person.write("rollouts/hp2.yaml", spec(stable=1), "hp2 at v1")
    return {"root": root, "servers": servers, "person": person, "flags": flags}


def user_requests(server: ServerProcess, version: int) -> float:
    """The server's count of requests answered by `version` of hp2 since it started
    (a pooled server's counters include earlier tests': compare with a count taken
    before)."""
    text = httpx.get(server.rest_url + METRICS, timeout=10).text
    return sum(s.value for family in text_string_to_metric_families(text[text.index(
        "# HELP rollouts_"):]) for s in family.samples
        if s.name == "rollouts_requests_total" and s.labels.get("version") == str(version))


def test_an_identical_version_is_promoted_through_a_dark_launch(
        fleet: dict[str, Any], tmp_path: Path) -> None:
    person: Person = fleet["person"]
    servers: list[ServerProcess] = fleet["servers"]
    controller = running(fleet, tmp_path)
    # Users arrive once v1 serves everywhere (before, the model is not configured).
    assert wait_for(lambda: all(label_version(s, "stable") == 1 for s in servers), 60, 0.2)
    traffic = Traffic([s.rest_url for s in servers]).start()
    try:
        person.write("rollouts/hp2.yaml", spec(stable=1, canary=2, canary_block=dark_launch("3s")),
                     "dark launch hp2 v2")
        # While dark, the split carries the shadow rate and the tolerance.
        def shadow() -> tuple[float, float] | None:
            split = split_of(servers[0])
            return (split.shadow.sample, split.shadow.tolerance) if split is not None else None

        assert wait_for(lambda: shadow() == (1.0, 0.001), 60, 0.2), shadow()
        assert wait_for(lambda: "rollouts: promote hp2 to 2" in person.remote_log(), 120, 0.3), (
            controller.status())
        parsed = git(person.remote, "log", "-1", "--format=%(trailers:only,unfold)", "main")
        assert "Rollouts-Verdict: pass" in parsed
        git(person.clone, "fetch", "-q", "origin", "+refs/notes/*:refs/notes/*")
        notes = git(person.clone, "log", "--notes=rollouts", "--format=%N", "origin/main")
        assert "pass at 0%: canary 0 req" in notes and "0.00% differ" in notes, notes
    finally:
        controller.stop()
        traffic.stop()
    assert traffic.statuses[200] > 0 and set(traffic.statuses) == {200}


def test_a_wrong_but_healthy_version_is_reverted_in_the_dark(
        fleet: dict[str, Any], tmp_path: Path) -> None:
    person: Person = fleet["person"]
    servers: list[ServerProcess] = fleet["servers"]
    answered_by_v3 = [user_requests(server, 3) for server in servers]
    controller = running(fleet, tmp_path)
    # Users arrive once v1 serves everywhere (before, the model is not configured).
    assert wait_for(lambda: all(label_version(s, "stable") == 1 for s in servers), 60, 0.2)
    traffic = Traffic([s.rest_url for s in servers]).start()
    try:
        started = person.write(
            "rollouts/hp2.yaml", spec(stable=1, canary=3, canary_block=dark_launch("1h")),
            "dark launch hp2 v3")
        assert wait_for(lambda: person.remote_log()[0].startswith("rollouts: revert hp2"), 120,
                        0.3), controller.status()
        message = git(person.remote, "log", "-1", "--format=%B", "main")
        assert f"This reverts commit {started}." in message
        assert "Rollouts-Reverted-Version: 3" in message
        assert "differing rate 100.00% > maxDifferingRate 1.00%" in message, message
        assert "fail at 0%" in message  # judged in its weight-0 step
        for server in servers:
            assert split_of(server) is None and label_version(server, "canary") is None
    finally:
        controller.stop()
        traffic.stop()
    # No user was ever answered by v3: not by the client's count, not by the servers'.
    assert traffic.versions["3"] == 0 and traffic.versions["1"] > 0
    assert set(traffic.statuses) == {200}
    assert [user_requests(server, 3) for server in servers] == answered_by_v3
