"""A person's promote / abort / retry as spec edits and commit messages (pure)."""

from __future__ import annotations

import pytest

from controller.decide import trailers
from controller.decide.actions import Action, ActionRefused, plan_action
from controller.decide.gates import is_promotion_of

SPEC = """apiVersion: rollouts/v1
kind: ModelRollout
metadata: {name: hp2}
spec:
  model: {name: hp2}  # the model's directory
  stable: 1  # what everyone gets
  canary:
    version: 3  # the new build
    steps: [{weight: 50, hold: 1h}]
"""
STABLE_ONLY = SPEC.split("  canary:")[0]
BY = "Pat Person <pat@example.test>"


def test_promote_sets_stable_removes_canary_and_says_who_and_why() -> None:
    edit = plan_action("promote", SPEC, "hp2", by=BY, reason="  ship it\n now ")
    assert edit.text == STABLE_ONLY.replace("stable: 1", "stable: 3")
    assert edit.message.splitlines()[0] == "rollouts: promote hp2 to 3 (by hand)"
    pairs = dict(trailers.parse_trailers(edit.message))
    assert pairs["Rollouts-Action"] == "promote"
    assert pairs["Rollouts-Requested-By"] == BY
    assert pairs["Rollouts-Reason"] == "ship it now"
    # A revert of this promotion is a rollback, as for the controller's own.
    assert is_promotion_of(edit.message, "hp2", 3)


def test_abort_removes_the_canary_and_is_not_an_automatic_revert() -> None:
    edit = plan_action("abort", SPEC, "hp2", by=BY)
    assert edit.text == STABLE_ONLY
    parsed = trailers.RolloutTrailers.from_message(edit.message)
    assert parsed.verdict == "abort" and parsed.canary_version == 3
    assert parsed.reverted_version is None
    assert trailers.auto_reverted_versions([edit.message]) == {}
    assert "Rollouts-Reason" not in edit.message  # no reason given, no empty trailer


def test_retry_sets_retry_for_a_reverted_version_only() -> None:
    edit = plan_action("retry", SPEC, "hp2", by=BY, reverted={"hp2": frozenset({3})})
    assert "    version: 3  # the new build\n    retry: true\n" in edit.text
    assert edit.text.replace("    retry: true\n", "") == SPEC
    with pytest.raises(ActionRefused, match="never reverted by the controller"):
        plan_action("retry", SPEC, "hp2", by=BY, reverted={"hp2": frozenset({2})})
    with pytest.raises(ActionRefused, match="already has retry: true"):
        plan_action("retry", SPEC, "hp2", by=BY, reverted={"hp2": frozenset({3})},
                    retry_set=True)


def test_pause_and_resume_flip_canary_paused() -> None:
    paused = plan_action("pause", SPEC, "hp2", by=BY, reason="looking at a dashboard")
    assert "    version: 3  # the new build\n    paused: true\n" in paused.text
    assert dict(trailers.parse_trailers(paused.message))["Rollouts-Action"] == "pause"
    with pytest.raises(ActionRefused, match="already paused"):
        plan_action("pause", paused.text, "hp2", by=BY, paused_set=True)
    resumed = plan_action("resume", paused.text, "hp2", by=BY, paused_set=True)
    assert "    paused: false\n" in resumed.text
    with pytest.raises(ActionRefused, match="not paused"):
        plan_action("resume", SPEC, "hp2", by=BY)


@pytest.mark.parametrize("action", ["promote", "abort", "retry", "pause", "resume"])
def test_no_canary_is_refused(action: Action) -> None:
    with pytest.raises(ActionRefused, match="no canary in the spec"):
        plan_action(action, STABLE_ONLY, "hp2", by=BY)


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ActionRefused, match="'other'"):
        plan_action("abort", SPEC, "other", by=BY)


def test_retry_of_a_held_failure_raises_the_attempt_and_keeps_comments() -> None:
    edit = plan_action("retry", SPEC, "hp2", by=BY, holds_failures=True, reason="fixed feed")
    assert "    version: 3  # the new build\n    attempt: 2\n" in edit.text
    assert edit.text.replace("    attempt: 2\n", "") == SPEC
    assert edit.message.splitlines()[0] == "rollouts: retry hp2 canary 3 (attempt 2)"
    pairs = dict(trailers.parse_trailers(edit.message))
    assert pairs["Rollouts-Action"] == "retry" and pairs["Rollouts-Canary-Version"] == "3"
    assert pairs["Rollouts-Reason"] == "fixed feed"
    again = plan_action("retry", edit.text, "hp2", by=BY, holds_failures=True)
    assert "    attempt: 3\n" in again.text and "attempt: 2" not in again.text
    # A reverted version without retry: true still gets retry: true first; with it, and a
    # failure held again, the attempt goes up.
    reverted = {"hp2": frozenset({3})}
    first = plan_action("retry", SPEC, "hp2", by=BY, holds_failures=True, reverted=reverted)
    assert "retry: true" in first.text and "attempt" not in first.text
    later = plan_action("retry", first.text, "hp2", by=BY, holds_failures=True,
                        reverted=reverted, retry_set=True)
    assert "    attempt: 2\n" in later.text
    with pytest.raises(ActionRefused, match="onFailure: pause"):
        plan_action("retry", SPEC, "hp2", by=BY)
