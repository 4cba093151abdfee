"""Instant rollback end to end: real servers, real models, real git.

After the controller promotes a canary, the old stable stays loaded and labelled
`previous`; a person's `git revert` of the promotion then moves `stable` back
with no SavedModel load (the servers' own load counters do not move), a
restarted controller still knows the window from git alone, and once the window
of `keepPrevious` is over the kept version is unloaded.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from tensorflow_serving.apis import get_model_status_pb2

from controller.decide.fleet import TargetAddress
from controller.runtime.runner import Controller, ControllerSettings
from tests.conftest import ServerProcess, serving
from tests.gitops import Person, git, spec
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

MONITORING = 'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n'
AVAILABLE, END = 30, 50  # ModelVersionStatus.State
# Promoted after one passing step: no traffic is needed (an interval with no data passes).
CANARY = (
    "    steps: [{weight: 50, hold: 1s}]\n"
    "    analysis: {interval: 1s, minRequests: 1, onNoData: pass}\n"
)
DEADLINE_S = 60


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, make_model: Any) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("keep-previous")
    root = work / "models"
    make_model(root / "hp2", 1)
    make_model(root / "hp2", 2, offset=3.0)
    (work / "empty.conf").write_text("model_config_list {}\n")
    (work / "monitoring.conf").write_text(MONITORING)
    flags = [f"--model_config_file={work / 'empty.conf'}",
             f"--monitoring_config_file={work / 'monitoring.conf'}"]
    with serving(flags, work / "s0.log") as s0, serving(flags, work / "s1.log") as s1:
        yield {"root": root, "servers": [s0, s1], "work": work}


def states(server: ServerProcess) -> dict[int, int]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "hp2"
    try:
        reply = server.model_stub().GetModelStatus(request, timeout=5)
    except grpc.RpcError:
        return {}
    return {s.version: s.state for s in reply.model_version_status}


def label(server: ServerProcess, name: str) -> int | None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "hp2"
    request.model_spec.version_label = name
    try:
        reply = server.model_stub().GetModelStatus(request, timeout=5)
    except grpc.RpcError:
        return None
    return int(reply.model_version_status[0].version)


def loads(server: ServerProcess) -> dict[str, float]:
    """Successful SavedModel loads per version directory, from the server's metrics."""
    text = httpx.get(f"{server.rest_url}/monitoring/prometheus/metrics", timeout=5).text
    found = re.findall(r'^:tensorflow:cc:saved_model:load_attempt_count\{([^}]*)\} (\S+)$',
                       text, re.M)
    counts: dict[str, float] = {}
    for labels, value in found:
        path = re.search(r'model_path="([^"]*)"', labels)
        if path and 'status="success"' in labels:
            version = Path(path.group(1)).name
            counts[version] = counts.get(version, 0.0) + float(value)
    return counts


def everywhere(servers: list[ServerProcess], **labels: int | None) -> bool:
    return all(label(s, name) == version for s in servers for name, version in labels.items())


def previous_of(running: Controller) -> dict[str, Any] | None:
    """The kept previous version in the controller's status document, or None."""
    model = running.status()["models"].get("hp2")
    return dict(model["previous"]) if model and model["previous"] else None


def controller(fleet: dict[str, Any], person: Person, state: str) -> Controller:
    servers: list[ServerProcess] = fleet["servers"]
    running = Controller(ControllerSettings(
        repo=person.url, model_root=str(fleet["root"]),
        targets=[TargetAddress(f"s{i}", s.address, s.rest_url) for i, s in enumerate(servers)],
        state_dir=fleet["work"] / state, poll_interval_s=0.5, reconcile_interval_s=0.25,
        reconcile_deadline_s=30,
    ))
    running.start()
    return running


def test_a_revert_of_a_promotion_is_a_label_move_and_the_window_ends(
    fleet: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="controller")  # every push, if this fails
    servers: list[ServerProcess] = fleet["servers"]
    person = Person(tmp_path)
    person.write("rollouts/hp2.yaml", spec(stable=1), "hp2 at v1")
    first = controller(fleet, person, "state-a")
    second: Controller | None = None
    try:
        assert wait_for(lambda: everywhere(servers, stable=1), DEADLINE_S, 0.1)
        person.write("rollouts/hp2.yaml", spec(stable=1, canary=2, canary_block=CANARY),
                     "canary hp2 v2")
        assert wait_for(lambda: "rollouts: promote hp2 to 2" in person.remote_log(),
                        DEADLINE_S, 0.2), first.status()
        promotion = person.remote_head()
        # Promoted: v1 stays AVAILABLE, labelled previous, out of the split.
        assert wait_for(lambda: everywhere(servers, stable=2, previous=1, canary=None),
                        DEADLINE_S, 0.1), first.status()
        assert all(states(s) == {1: AVAILABLE, 2: AVAILABLE} for s in servers)
        assert previous_of(first) == {"version": 1, "commit": promotion,
                                      "until": (previous_of(first) or {}).get("until")}
        before = [loads(s) for s in servers]
        assert all(b.get("1") and b.get("2") for b in before), before

        # A person reverts the promotion inside the window: stable is v1 again with
        # no load, and v2 is now the previous version (kept from the revert's time).
        person.pull()
        revert = person.revert(promotion)
        assert wait_for(lambda: everywhere(servers, stable=1, previous=2), DEADLINE_S, 0.05), (
            first.status())
        assert [loads(s) for s in servers] == before
        assert all(states(s) == {1: AVAILABLE, 2: AVAILABLE} for s in servers)
        assert wait_for(lambda: (previous_of(first) or {}).get("commit") == revert,
                        DEADLINE_S, 0.1)
        kept = previous_of(first)

        # A restarted controller, with a fresh clone, knows the window from git alone.
        first.stop()
        second = controller(fleet, person, "state-b")
        assert wait_for(lambda: second is not None and previous_of(second) == kept,
                        DEADLINE_S, 0.1), (kept, second.status())
        assert everywhere(servers, stable=1, previous=2), [
            (label(s, "stable"), label(s, "previous"), states(s)) for s in servers]
        assert [loads(s) for s in servers] == before

        # Stable moves to v2 again with a 3 s window: a label move, then v1 is
        # unloaded when the window is over.
        git(person.clone, "pull", "-q", "--no-rebase", "origin", "main")
        person.write("rollouts/hp2.yaml", spec(stable=2, extra="  keepPrevious: 3s\n"),
                     "hp2 to v2, previous kept 3s")
        assert wait_for(lambda: all(states(s) == {1: END, 2: AVAILABLE} for s in servers),
                        DEADLINE_S, 0.1), ([states(s) for s in servers],
                                          json.dumps(second.status(), indent=1))
        assert everywhere(servers, stable=2, previous=None)
        assert [loads(s) for s in servers] == before
        assert wait_for(lambda: second is not None and previous_of(second) is None, 10, 0.1)
    finally:
        first.stop()
        if second is not None:
            second.stop()
