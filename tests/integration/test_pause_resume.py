"""`rollouts pause` and `rollouts resume` against a real controller, server and remote:
a paused canary keeps its weight and keeps being judged, but takes no step and gets
no verdict however long its hold has run; resumed, it goes on and is promoted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.decide.fleet import TargetAddress
from controller.runtime.runner import Controller, ControllerSettings
from tests.conftest import monitored_flags, wait_for
from tests.gitops import Person, git, rollouts, spec
from tests.traffic import Traffic

pytestmark = pytest.mark.integration

CANARY = (
    "    split: {hashKey: x-user-id}\n"
    "    steps: [{weight: 30, hold: 2s}, {weight: 60, hold: 2s}]\n"
    "    analysis: {interval: 1s, minRequests: 5, checks: {errorRate: {max: 0.05}}}\n"
)


def test_paused_canary_holds_then_resumes_to_promotion(
    tmp_path: Path, shared_servers: Any, server_pool: Any, make_model: Any,
) -> None:
    root = tmp_path / "models"
    make_model(root / "hp2", 1)
    make_model(root / "hp2", 2)
    server = shared_servers(monitored_flags(server_pool.workdir), 1)[0]
    person = Person(tmp_path)
    person.write("rollouts/hp2.yaml", spec(stable=1), "hp2 at v1")
    controller = Controller(ControllerSettings(
        repo=person.url, model_root=str(root),
        targets=[TargetAddress("s0", server.address, server.rest_url)],
        state_dir=tmp_path / "state", poll_interval_s=0.5, reconcile_interval_s=0.25,
        reconcile_deadline_s=30,
    ))

    def rollout() -> dict[str, Any]:
        model: dict[str, Any] = dict(controller.status()["models"].get("hp2") or {})
        return dict(model.get("rollout") or {})

    def events() -> list[str]:
        history = controller.rollout_history("hp2")
        return [str(e.get("kind")) for e in history.events] if history else []

    def intervals_since_pause() -> int:
        history = controller.rollout_history("hp2")
        paused_at = next((float(e["at"]) for e in history.events if e["kind"] == "paused"),
                         None) if history else None
        if history is None or paused_at is None:
            return 0
        return sum(float(i["at"]) > paused_at and i.get("outcome") == "pass"
                   for i in history.intervals)

    traffic = Traffic([server.rest_url]).start()
    controller.start()
    try:
        # The canary commit and the pause go out together (no race with a 2 s hold):
        # the controller journals the pause as soon as the canary starts.
        (person.clone / "rollouts/hp2.yaml").write_text(
            spec(stable=1, canary=2, canary_block=CANARY))
        git(person.clone, "commit", "-qam", "canary hp2 v2")
        assert rollouts(person.clone, "pause", "hp2", "--reason", "hold for the dashboard",
                        "--push").returncode == 0
        assert wait_for(lambda: "paused" in events(), 120, 0.1), controller.status()
        assert events().index("started") < events().index("paused")
        # Judged on and on, well past its 2 s hold, at the weight it had: no step taken.
        assert wait_for(lambda: intervals_since_pause() >= 4, 90, 0.2), controller.rollout_history(
            "hp2")
        assert rollout()["phase"] == "paused"
        assert "step" not in events()
        assert "promote hp2" not in " ".join(person.remote_log())
        served = controller.status()["models"]["hp2"]["targets"]["s0"]["splitWeightBp"]
        assert served == rollout()["weightBp"]
        person.pull()
        assert rollouts(person.clone, "resume", "hp2", "--push").returncode == 0
        assert wait_for(lambda: "rollouts: promote hp2 to 2" in person.remote_log(), 120, 0.3), (
            controller.status())
        assert "promote hp2" in " ".join(person.remote_log())
    finally:
        controller.stop()
        traffic.stop()
