"""Tables for pull request canaries: candidates, one per model oldest first, stops, restarts."""

from __future__ import annotations

from typing import Any

import pytest

from controller.decide.desired import desired_from_tree
from controller.decide.progress import Event
from controller.decide.pull_requests import (
    Proposal,
    Run,
    candidacy,
    compose,
    current_run,
    on_top_of,
    pull_order,
    restart_reason,
    run_state,
    same_canary,
    select,
    stops,
)
from controller.spec.canary import Canary
from controller.spec.model import RolloutSpec


def doc(name: str = "m", stable: int = 1, canary: int | None = None, **extra: Any) -> RolloutSpec:
    body: dict[str, Any] = {"model": {"name": name}, "stable": stable}
    body.update(extra.pop("body", {}))
    if canary is not None:
        body["canary"] = {"version": canary, "steps": [{"weight": 50, "hold": "1m"}]} | extra
    return RolloutSpec.model_validate(
        {"apiVersion": "rollouts/v1", "kind": "ModelRollout", "metadata": {"name": name},
         "spec": body})


def specs(*docs: RolloutSpec) -> dict[str, RolloutSpec]:
    return {d.spec.model.name: d for d in docs}


@pytest.mark.parametrize(
    ("base", "head", "canaries", "reason"),
    [
        # adds a canary block
        (specs(doc()), specs(doc(canary=2)), {"m": 2}, ""),
        # bumps a canary block
        (specs(doc(canary=2)), specs(doc(canary=3)), {"m": 3}, ""),
        # changes a canary field only (the same version, a new analysis)
        (specs(doc(canary=2)), specs(doc(canary=2, analysis={"interval": "5s"})), {"m": 2}, ""),
        # two models' canaries; an untouched model beside them is fine
        (specs(doc("a"), doc("b"), doc("c")), specs(doc("a", canary=2), doc("b", canary=4),
                                                    doc("c")), {"a": 2, "b": 4}, ""),
        # a stable changed too
        (specs(doc()), specs(doc(stable=2, canary=3)), {},
         "changes m's spec.stable: not only canary blocks"),
        # a keep list changed, named in camelCase as the spec has it
        (specs(doc()), specs(doc(canary=2, body={"keep": [1, 3]})), {},
         "changes m's spec.keep: not only canary blocks"),
        (specs(doc()), specs(doc(canary=2, body={"transition": "resource"})), {},
         "changes m's spec.transition: not only canary blocks"),
        # a canary in one spec and a stable in another: not a candidate at all
        (specs(doc("a"), doc("b")), specs(doc("a", canary=2), doc("b", stable=5)), {},
         "changes b's spec.stable: not only canary blocks"),
        (specs(doc()), specs(doc(), doc("n", canary=2)), {},
         "adds the spec of n: not only canary blocks"),
        (specs(doc(), doc("n")), specs(doc(canary=2)), {},
         "removes the spec of n: not only canary blocks"),
        (specs(doc(canary=2)), specs(doc()), {}, "removes m's canary: not a canary to run"),
        (specs(doc(canary=2)), specs(doc(canary=2)), {}, "changes no canary block"),
    ],
)
def test_candidate_only_when_the_change_is_canary_blocks(
    base: dict[str, RolloutSpec], head: dict[str, RolloutSpec], canaries: dict[str, int],
    reason: str,
) -> None:
    found = candidacy(base, head)
    assert {m: c.version for m, c in found.canaries.items()} == canaries
    assert found.reason == reason
    assert found.candidate == bool(canaries)


def test_composed_on_the_followed_branchs_stable_and_refused_when_it_clashes() -> None:
    canary = doc(canary=3).spec.canary
    assert canary is not None
    composed, problem = on_top_of(doc(stable=2, body={"keep": [1]}), canary)
    assert problem == "" and composed is not None
    assert (composed.spec.stable, composed.spec.keep, composed.spec.canary) == (2, [1], canary)
    # The followed branch promoted that version meanwhile: nothing left to canary.
    composed, problem = on_top_of(doc(stable=3), canary)
    assert composed is None and "version 3 is already spec.stable" in problem


def test_compose_puts_the_canary_into_the_desired_state() -> None:
    text = ("apiVersion: rollouts/v1\nkind: ModelRollout\nmetadata: {name: m}\n"
            "spec: {model: {name: m}, stable: 1}\n")
    snapshot, problems = desired_from_tree([("rollouts/m.yaml", text)], "c0", "/models")
    assert snapshot is not None and not problems
    canary = doc(canary=2).spec.canary
    assert canary is not None
    composed_spec, _ = on_top_of(snapshot.documents["m"].spec, canary)
    assert composed_spec is not None
    composed = compose(snapshot, {"m": composed_spec}, "/models")
    model = composed.desired.models["m"]
    assert model.labels == {"stable": 1, "canary": 2} and model.split is not None
    assert composed.documents["m"].path == "rollouts/m.yaml"
    assert composed.commit == snapshot.commit == composed.desired.commit
    plan = composed.canary_plan("m")
    assert plan is not None and plan.version == 2
    assert snapshot.desired.models["m"].labels == {"stable": 1}  # the input is untouched
    assert compose(snapshot, {}, "/models") is snapshot


def test_same_canary_compares_model_version_and_every_field() -> None:
    assert same_canary(doc(canary=2), doc(stable=1, canary=2))
    assert not same_canary(doc(canary=2), doc(canary=3))
    assert not same_canary(doc(canary=2), doc(canary=2, analysis={"interval": "5s"}))
    assert not same_canary(doc("a", canary=2), doc("b", canary=2))
    assert not same_canary(doc(), doc())
    assert not same_canary(None, doc(canary=2))


def canary(version: int) -> Canary:
    found = doc(canary=version).spec.canary
    assert found is not None
    return found


def p(pull: str, model: str = "m", state: str = "new", version: int = 2,
      head: str = "") -> Proposal:
    return Proposal(pull, head or f"h{pull}", model, canary(version), state)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("proposals", "followed", "running", "waiting", "failed"),
    [
        # one per model, oldest (lowest number) first; 12 sorts after 7, not before
        ([p("12"), p("7"), p("9")], {}, {"m": "7"}, ["9", "12"], []),
        # a canary under way keeps the model even when an older pull request appears
        ([p("3"), p("9", state="running")], {}, {"m": "9"}, ["3"], []),
        # so does one that passed and waits to be merged
        ([p("3"), p("9", state="passed")], {}, {"m": "9"}, ["3"], []),
        # a failed one holds nothing: the next one runs
        ([p("3", state="failed"), p("9")], {}, {"m": "9"}, [], ["3"]),
        # models are independent
        ([p("3", "a"), p("4", "b"), p("5", "a")], {}, {"a": "3", "b": "4"}, ["5"], []),
        # the followed branch's own canary of a model comes first
        ([p("3", "a", state="running"), p("4", "b")], {"a": 7}, {"b": "4"}, ["3"], []),
        ([], {}, {}, [], []),
    ],
)
def test_one_canary_per_model_oldest_first(
    proposals: list[Proposal], followed: dict[str, int], running: dict[str, str],
    waiting: list[str], failed: list[str],
) -> None:
    chosen = select(proposals, followed)
    assert {m: r.pull for m, r in chosen.running.items()} == running
    assert [w.proposal.pull for w in chosen.waiting] == waiting
    assert [f.pull for f in chosen.failed] == failed


def test_the_waiting_reason_names_what_runs_first() -> None:
    chosen = select([p("7"), p("9", version=3)], {})
    assert chosen.waiting[0].reason == (
        "pull request 7's canary of m (v2) runs first: one canary per model")
    chosen = select([p("7")], {"m": 4})
    assert chosen.waiting[0].reason == "the followed branch's canary of m (v4) runs first"


def test_pull_order_is_numeric_then_by_name() -> None:
    assert sorted(["12", "7", "x", "100"], key=pull_order) == ["7", "12", "100", "x"]


def ev(kind: str, at: float, outcome: str = "", version: int = 2, **detail: Any) -> Event:
    return Event(kind, at, "m", version, 0, outcome, detail)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("events", "baseline", "kinds"),
    [
        # a canary that started on the followed branch has no boundary: all of it
        ([ev("proposed", 1), ev("started", 2)], None, ["proposed", "started"]),
        ([ev("baseline", 1, stable=1), ev("started", 2)], 1, ["started"]),
        # a new baseline begins a fresh run; the old run's events are history
        ([ev("baseline", 1, stable=1), ev("started", 2), ev("interval", 3, "pass"),
          ev("baseline", 4, stable=2), ev("started", 5)], 2, ["started"]),
        # stopped (closed, changed): no run until a new baseline
        ([ev("baseline", 1, stable=1), ev("started", 2), ev("stopped", 3)], None, []),
        # other versions' events are not this run's
        ([ev("baseline", 1, stable=1), ev("started", 2, version=3)], 1, []),
        # sorted by time, as merged notes may not be
        ([ev("started", 5), ev("baseline", 1, stable=1)], 1, ["started"]),
    ],
)
def test_current_run_is_the_events_since_the_last_boundary(
    events: list[Event], baseline: int | None, kinds: list[str],
) -> None:
    run = current_run(events, "m", 2)
    assert run.baseline == baseline
    assert [e.kind for e in run.events] == kinds


@pytest.mark.parametrize(
    ("kinds", "state"),
    [
        ([], "new"),
        ([("proposed", "")], "running"),
        ([("started", ""), ("interval", "fail")], "running"),
        ([("started", ""), ("verdict", "promote")], "passed"),
        ([("started", ""), ("verdict", "ready")], "passed"),
        ([("started", ""), ("verdict", "fail")], "failed"),
    ],
)
def test_run_state(kinds: list[tuple[str, str]], state: str) -> None:
    run = Run(1, tuple(ev(k, i, o) for i, (k, o) in enumerate(kinds)))
    assert run_state(run) == state


@pytest.mark.parametrize(
    ("baseline", "stable", "verdict", "restarts"),
    [
        (None, 1, "", "runs on top of stable v1"),
        (1, 1, "", ""),
        # stable changed on the followed branch: running or passed, it starts over
        (1, 2, "", "stable changed from v1 to v2 on the followed branch: "
                   "restarts against the new baseline"),
        (1, 2, "promote", "stable changed from v1 to v2 on the followed branch: "
                          "restarts against the new baseline"),
        # a failed one stays failed: nothing runs to restart
        (1, 2, "fail", ""),
    ],
)
def test_stable_change_restarts(baseline: int | None, stable: int, verdict: str,
                                restarts: str) -> None:
    events = (ev("started", 1),) + ((ev("verdict", 2, verdict),) if verdict else ())
    assert restart_reason(Run(baseline, events), stable) == restarts


@pytest.mark.parametrize(
    ("running", "heads", "merged", "stopped"),
    [
        # still running with the same head: nothing stops
        ({"m": p("7", head="a")}, {"7": "a"}, [], []),
        # closed: the ref is gone
        ({}, {}, [], ["pull request 7 was closed"]),
        # changed: a new head (its new canary is another run, on the new head)
        ({"m": p("7", head="b")}, {"7": "b" * 40}, [],
         [f"pull request 7 changed (head now {'b' * 12})"]),
        # merged: the followed branch's canary takes it on, it is not stopped
        ({}, {"7": "a"}, ["7"], []),
        # no longer a candidate (it now changes a stable too)
        ({}, {"7": "a"}, [], ["pull request 7 no longer proposes this canary"]),
        ({"m": p("3", head="c")}, {"7": "a", "3": "c"}, [],
         ["pull request 3's canary of m runs instead"]),
        # the followed branch's own canary of the model took it over
        ({}, {"7": "a"}, ["8"], ["the followed branch's canary of m (v5) runs first"]),
    ],
)
def test_closed_or_changed_pull_request_stops_its_canary(
    running: dict[str, Proposal], heads: dict[str, str], merged: list[str], stopped: list[str],
) -> None:
    previous = {"m": p("7", head="a")}
    found = stops(previous, running, heads, merged, {"m": 5} if "8" in merged else {})
    assert [s.reason for s in found] == stopped
    for stop in found:
        assert (stop.model, stop.pull, stop.head, stop.version) == ("m", "7", "a", 2)
