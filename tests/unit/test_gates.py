"""The canary gates as a table: history (blocked, held, retry), readiness, the revert gate."""

from __future__ import annotations

import pytest

from controller.decide import trailers
from controller.decide.fleet import ObservedModel, ObservedTarget, SplitRule
from controller.decide.gates import (
    canary_out_of_traffic,
    history_gate,
    is_promotion_of,
    reproposes_reverted,
    reverted_commit,
)


@pytest.mark.parametrize(
    ("version", "retry", "reverted", "promotion_reverted", "phase"),
    [
        (2, False, frozenset(), False, None),
        (2, False, frozenset({2}), False, "blocked"),
        (2, True, frozenset({2}), False, None),  # retry lifts the block
        (3, False, frozenset({2}), False, None),  # another version is not blocked
        (2, False, frozenset(), True, "held"),  # a person's rollback holds it out
        (2, True, frozenset(), True, None),  # ... unless retry
        (2, False, frozenset({2}), True, "blocked"),  # blocked wins over held
    ],
)
def test_history_gate(
    version: int, retry: bool, reverted: frozenset[int], promotion_reverted: bool,
    phase: str | None,
) -> None:
    gate = history_gate(version, retry, reverted=reverted, promotion_reverted=promotion_reverted)
    assert (gate.phase if gate else None) == phase
    if gate is not None:
        assert f"{version}" in gate.message and "canary.retry: true" in gate.message


def test_reproposes_reverted_is_the_rule_validate_applies() -> None:
    assert reproposes_reverted(2, False, frozenset({1, 2}))
    assert not reproposes_reverted(2, True, frozenset({2}))
    assert not reproposes_reverted(3, False, frozenset({2}))


def test_a_revert_of_our_promotion_is_recognised() -> None:
    promotion = trailers.build_message(
        "rollouts: promote hp2 to 2",
        trailers.RolloutTrailers(model="hp2", verdict="pass", promoted_version=2).to_pairs(),
    )
    assert is_promotion_of(promotion, "hp2", 2)
    assert not is_promotion_of(promotion, "hp2", 3)
    assert not is_promotion_of(promotion, "other", 2)
    assert not is_promotion_of("a person's commit", "hp2", 2)
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert reverted_commit(f'Revert "promote"\n\nThis reverts commit {sha}.\n') == sha
    assert reverted_commit("no revert here") is None


def _target(reachable: bool, labels: dict[str, int], split: SplitRule | None) -> ObservedTarget:
    model = ObservedModel("hp2", {1: "AVAILABLE", 2: "AVAILABLE"}, labels, split=split)
    return ObservedTarget("t", reachable, {"hp2": model})


def test_a_revert_waits_until_no_reachable_target_routes_to_the_canary() -> None:
    split = SplitRule(canary_weight_bp=1000, hash_key="x")
    assert not canary_out_of_traffic("hp2", 2, [_target(True, {"stable": 1}, split)])
    assert not canary_out_of_traffic("hp2", 2, [_target(True, {"stable": 1, "canary": 2}, None)])
    assert canary_out_of_traffic("hp2", 2, [_target(True, {"stable": 1}, None)])
    # A target that is down routes nothing; it gets the config without the canary later.
    assert canary_out_of_traffic("hp2", 2, [_target(False, {"canary": 2}, split)])
    assert canary_out_of_traffic("hp2", 2, [ObservedTarget("t", True, {})])
