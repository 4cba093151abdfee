"""The status document: typed, every key camelCase, built from the controller's state;
an interval journaled by an older controller (snake_case) shows like a new one."""

from __future__ import annotations

import re
from typing import Any

from controller.adapters.journal import parse_journal
from controller.decide.desired import desired_from_tree
from controller.runtime.rollout_status import RolloutStatus
from controller.runtime.status import ControllerState, rollout_doc, status_document

SPEC = """\
apiVersion: rollouts/v1
kind: ModelRollout
metadata: {name: hp2}
spec:
  model: {name: hp2}
  stable: 1
"""
OLD_INTERVAL = (
    '2024-01-01T00:00:30Z hp2 v2 interval: pass at 10% {"at":1704067230.0,"detail":'
    '{"outcome":"pass","reasons":[],"summary":"pass at 10%","weight_bp":1000},'
    '"kind":"interval","model":"hp2","outcome":"pass","step":0,"version":2}'
)
_CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")


def _keys(value: Any, skip: bool = False) -> list[str]:
    """Every key of nested dicts, except those of maps keyed by data (names, versions)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if not skip:
                found.append(key)
            found += _keys(item, skip=key in ("models", "targets", "labels", "versions"))
    elif isinstance(value, list):
        for item in value:
            found += _keys(item)
    return found


def test_every_key_is_camel_case_and_old_journal_intervals_read_the_same() -> None:
    snapshot, problems = desired_from_tree([("rollouts/hp2.yaml", SPEC)], "c1", "/models")
    assert snapshot is not None and not problems
    [event] = parse_journal([OLD_INTERVAL])
    rollout = RolloutStatus("hp2", 2, "wait", 0, 2, 1000, "c0",
                            intervals=[event.detail | {"outcome": event.outcome, "at": event.at}])
    state = ControllerState(commit_seen="c1", snapshot=snapshot, rollouts={"hp2": rollout})
    document = status_document(state, repo="https://u:pw@git.example/r.git", branch="main",
                               targets=["s0"])
    assert [k for k in _keys(document) if not _CAMEL.match(k)] == []
    assert document["repo"] == "https://***@git.example/r.git"
    model = document["models"]["hp2"]
    assert model["targets"]["s0"]["error"] == "not observed yet"
    assert model["rollout"] == rollout_doc(rollout)
    [interval] = model["rollout"]["intervals"]
    assert interval["weightBp"] == 1000 and interval["summary"] == "pass at 10%"
    assert model["rollout"]["stepText"] == "1/2"
    assert document["commitSeen"] == "c1" and document["inSync"] is False


def test_only_the_latest_intervals_are_shown() -> None:
    intervals = [{"outcome": "pass", "at": float(i)} for i in range(8)]
    doc = rollout_doc(RolloutStatus("hp2", 2, "wait", 2, 2, 5000, intervals=intervals))
    assert [i["at"] for i in doc["intervals"]] == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert doc["stepText"] == "2/2"


CANARY_SPEC = SPEC + """\
  canary:
    version: 2
    split: {hashKey: x-user-id}
    steps: [{weight: 20, hold: 1m}, {weight: 50, hold: 1m}]
"""


def _observed(weight_bp: int | None) -> Any:
    from controller.decide.fleet import ObservedModel, ObservedTarget, SplitRule

    split = SplitRule(canary_weight_bp=weight_bp) if weight_bp is not None else None
    return ObservedTarget("s0", True, {"hp2": ObservedModel(
        "hp2", {1: "AVAILABLE", 2: "AVAILABLE"}, {"stable": 1, "canary": 2}, split=split)})


def _state(rollout: RolloutStatus, weight_bp: int | None) -> ControllerState:
    from controller.decide.plan import plan
    from controller.runtime.reconcile import ReconcileResult

    snapshot, problems = desired_from_tree([("rollouts/hp2.yaml", CANARY_SPEC)], "c1", "/m")
    assert snapshot is not None and not problems
    observed = (_observed(weight_bp),)
    result = ReconcileResult(True, plan(snapshot.desired, list(observed)), observed, (), ())
    return ControllerState(commit_seen="c1", commit_applied="c1", snapshot=snapshot,
                           rollouts={"hp2": rollout}, last_result=result)


def test_the_weight_shown_is_what_the_targets_serve_not_the_specs_first_step() -> None:
    state = _state(RolloutStatus("hp2", 2, "wait", 1, 2, 5000, "c0"), 5000)
    model = status_document(state, repo="r", branch="main", targets=["s0"])["models"]["hp2"]
    assert model["splitWeightBp"] == 2000  # the spec's first step
    assert model["servingWeightBp"] == 5000
    assert model["rollout"] is not None and model["rollout"]["stepText"] == "2/2"


def test_a_held_canary_is_listed_and_not_in_sync() -> None:
    held = RolloutStatus("hp2", 2, "blocked", 0, 2, 0, message="auto-reverted before")
    document = status_document(_state(held, None), repo="r", branch="main", targets=["s0"])
    assert document["held"] == [{"model": "hp2", "version": 2, "phase": "blocked",
                                 "message": "auto-reverted before"}]
    assert document["inSync"] is False
    assert document["models"]["hp2"]["servingWeightBp"] == 0


def test_a_kept_previous_version_is_shown_with_its_window_end() -> None:
    from controller.decide.previous import KeptPrevious

    snapshot, _ = desired_from_tree([("rollouts/hp2.yaml", SPEC)], "c1", "/models")
    kept = KeptPrevious("hp2", 3, 1_800_000_600.0, "d" * 40)
    state = ControllerState(commit_seen="c1", snapshot=snapshot, previous={"hp2": kept})
    models = status_document(state, repo="r", branch="main", targets=["s0"])["models"]
    assert models["hp2"]["previous"] == {
        "version": 3, "until": "2027-01-15T08:10:00+00:00", "commit": "d" * 40}
    state.previous = {}
    assert status_document(state, repo="r", branch="main", targets=["s0"])["models"]["hp2"][
        "previous"] is None


def test_a_failed_canary_held_for_a_person_is_listed_with_its_numbers() -> None:
    held = RolloutStatus("hp2", 2, "failed_held", 0, 2, 0, "c0",
                         message="Analysis failed; held at weight 0 ... 40.00% err")
    document = status_document(_state(held, None), repo="r", branch="main", targets=["s0"])
    assert document["held"] == [{"model": "hp2", "version": 2, "phase": "failed_held",
                                 "message": held.message}]
    assert document["inSync"] is False
    rollout = document["models"]["hp2"]["rollout"]
    assert rollout is not None and rollout["phase"] == "failed_held"
    assert rollout["weightBp"] == 0 and "40.00% err" in rollout["message"]
