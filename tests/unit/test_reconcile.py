"""The reconcile loop against simulated targets that enforce TF Serving's label rule."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from controller.decide.fleet import (
    DesiredModel,
    DesiredState,
    ObservedModel,
    ObservedTarget,
    SplitRule,
)
from controller.decide.plan import Action, ClearSplit, ReloadConfig, SetSplit, SetTransition
from controller.runtime.reconcile import Backoff, Reconciler
from tests.unit.fakes import FakeClock

SPLIT = SplitRule(canary_weight_bp=2500, hash_key="x-user-id")


class SimTarget:
    """A serving target: versions load one observation after they are configured."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.up = True
        self.versions: dict[str, dict[int, str]] = {}
        self.config: dict[str, tuple[frozenset[int], dict[str, int], str]] = {}
        self.splits: dict[str, SplitRule] = {}
        self.policies: dict[str, str] = {}
        self.log: list[Action] = []
        self.served_label_gaps = 0

    def observe(self, desired: Mapping[str, DesiredModel]) -> ObservedTarget:
        if not self.up:
            return ObservedTarget(self.name, False, error="connection refused")
        for states in self.versions.values():
            for v, s in list(states.items()):
                if s == "LOADING":
                    states[v] = "AVAILABLE"
        models = {
            name: ObservedModel(
                name,
                dict(self.versions.get(name, {})),
                dict(labels),
                base_path=base,
                platform="tensorflow",
                config_versions=versions,
                split=self.splits.get(name),
                transition=self.policies.get(name, "availability_preserving"),
            )
            for name, (versions, labels, base) in self.config.items()
        }
        return ObservedTarget(self.name, True, models)

    def apply(self, action: Action) -> None:
        self.log.append(action)
        if isinstance(action, ReloadConfig):
            new: dict[str, tuple[frozenset[int], dict[str, int], str]] = {}
            for entry in action.models:
                states = self.versions.setdefault(entry.name, {})
                for label, version in entry.labels.items():
                    if states.get(version) != "AVAILABLE":
                        raise RuntimeError(f"label {label} -> unavailable version {version}")
                for version in entry.versions:
                    states.setdefault(version, "LOADING")
                for version in list(states):
                    if version not in entry.versions:
                        del states[version]
                new[entry.name] = (entry.versions, dict(entry.labels), entry.base_path)
            for name in set(self.config) - set(new):
                self.versions.pop(name, None)
                self.splits.pop(name, None)
            self.config = new
            for name, split in self.splits.items():
                labels = self.config[name][1]
                if split.canary_label not in labels or split.stable_label not in labels:
                    self.served_label_gaps += 1
        elif isinstance(action, SetSplit):
            labels = self.config[action.model][1]
            assert action.split.canary_label in labels
            self.splits[action.model] = action.split
        elif isinstance(action, ClearSplit):
            self.splits.pop(action.model, None)
        elif isinstance(action, SetTransition):
            self.policies[action.model] = action.policy


def state(
    versions: set[int], labels: dict[str, int], split: SplitRule | None = None
) -> DesiredState:
    model = DesiredModel("m", "/models/m", "tensorflow", frozenset(versions), labels, split)
    return DesiredState("c", {"m": model})


@pytest.fixture
def fleet() -> tuple[list[SimTarget], Reconciler, FakeClock]:
    clock = FakeClock(start=0.0)
    targets = [SimTarget("t1"), SimTarget("t2")]
    return targets, Reconciler(targets, clock=clock, sleep=clock.sleep), clock


def test_full_lifecycle_converges(fleet) -> None:
    targets, rec, _ = fleet
    assert rec.run(state({1}, {"stable": 1})).in_sync
    assert all(t.config["m"][1] == {"stable": 1} for t in targets)

    result = rec.run(state({1, 2}, {"stable": 1, "canary": 2}, SPLIT))
    assert result.in_sync and not result.errors
    assert all(t.splits["m"] == SPLIT for t in targets)

    result = rec.run(state({2}, {"stable": 2}))  # promotion
    assert result.in_sync and not result.errors
    assert all(t.config["m"] == (frozenset({2}), {"stable": 2}, "/models/m") for t in targets)
    assert all("m" not in t.splits for t in targets)
    assert all(t.served_label_gaps == 0 for t in targets)


def test_down_target_is_backed_off_and_rejoins(fleet) -> None:
    targets, rec, clock = fleet
    targets[1].up = False
    result = rec.run(state({1}, {"stable": 1}), deadline_s=5)
    assert not result.in_sync
    assert targets[0].config["m"][1] == {"stable": 1}
    assert any(f.target == "t2" and "unreachable" in f.message for f in result.findings)
    targets[1].up = True
    clock.advance(120)  # past any backoff
    assert rec.run(state({1}, {"stable": 1})).in_sync
    assert targets[1].config["m"][1] == {"stable": 1}


def test_restarted_target_converges_again(fleet) -> None:
    targets, rec, _ = fleet
    desired = state({1, 2}, {"stable": 1, "canary": 2}, SPLIT)
    assert rec.run(desired).in_sync
    restarted = SimTarget("t2")
    rec.targets[1] = restarted
    assert rec.run(desired).in_sync
    assert restarted.splits["m"] == SPLIT


def test_backoff_doubles_and_caps() -> None:
    backoff = Backoff(base_s=1, max_s=5)
    backoff.failed("t", 0)
    assert backoff.waiting("t", 0.5) and not backoff.waiting("t", 1.0)
    backoff.failed("t", 0)
    assert backoff.waiting("t", 1.5) and not backoff.waiting("t", 2.0)
    for _ in range(10):
        backoff.failed("t", 0)
    assert not backoff.waiting("t", 5.0)
    backoff.succeeded("t")
    assert not backoff.waiting("t", 0)


def test_returns_at_once_when_only_a_down_target_remains(fleet) -> None:
    targets, rec, clock = fleet
    targets[1].up = False
    result = rec.run(state({1}, {"stable": 1}), deadline_s=3600)
    assert not result.in_sync and clock() < 60  # did not sit out the deadline


def test_superseded_desired_state_returns_early(fleet) -> None:
    targets, rec, clock = fleet
    calls: list[int] = []

    def superseded() -> bool:
        calls.append(1)
        return True

    result = rec.run(state({1}, {"stable": 1}), superseded=superseded)
    assert not result.in_sync and calls == [1]
    assert rec.run(state({1}, {"stable": 1})).in_sync


def test_scheduler_skip_warnings_are_dropped(caplog) -> None:
    import logging

    import controller.runtime.runner  # noqa: F401 - installs the filter

    logger = logging.getLogger("apscheduler.scheduler")
    with caplog.at_level(logging.WARNING, logger="apscheduler.scheduler"):
        logger.warning('Execution of job "x" skipped: maximum number of running instances '
                       "reached (1)")
        logger.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]
