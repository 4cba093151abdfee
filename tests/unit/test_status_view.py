"""`rollouts status` as a table: per model the applied commit, versions, weight,
step and target health, then each canary's step, weight and last verdicts."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from controller.cli.status_view import render_status
from controller.decide.previous import KeptPrevious
from controller.runtime.rollout_status import RolloutStatus
from controller.runtime.status import previous_doc, rollout_doc


def document() -> dict[str, Any]:
    rollout = RolloutStatus(
        "hp2", 2, "wait", 1, 2, 5000, "c0ffee",
        intervals=[{"outcome": "pass", "summary": "pass at 10%: canary 82 req 0.00% err"},
                   {"outcome": "fail", "summary": "fail at 50%: canary 96 req 3.10% err"}],
    )
    return {
        "repo": "/srv/rollouts.git", "branch": "main", "commitSeen": "a" * 40,
        "commitApplied": "a" * 40, "inSync": True, "specErrors": [], "gitError": "",
        "findings": [{"target": "s1", "model": "hp2", "message": "target unreachable: refused"}],
        "models": {"hp2": {
            # The spec's first step is 20%; the targets serve the second step's 50%.
            "commitApplied": "b" * 40, "stable": 1, "canary": 2, "splitWeightBp": 2000,
            "servingWeightBp": 5000,
            "rollout": rollout_doc(rollout),
            "targets": {
                "s0": {"reachable": True, "labels": {"stable": 1, "canary": 2},
                       "splitWeightBp": 5000},
                "s1": {"reachable": False, "error": "refused", "labels": {}},
            },
        }},
    }


def test_status_table_and_rollout_lines() -> None:
    console = Console(file=io.StringIO(), width=160, record=True, color_system=None)
    render_status(document(), console)
    text = console.export_text()
    assert f"seen {'a' * 12}  applied {'a' * 12}  (in sync)" in text
    row = next(line for line in text.splitlines() if "hp2" in line and "s0" in line)
    for cell in ("b" * 12, "50%", "2/2", "up", "canary=2, stable=1"):
        assert cell in row, (cell, row)
    assert any("s1" in line and "down: refused" in line for line in text.splitlines())
    assert "20%" not in text
    assert "hp2 canary v2 (commit c0ffee): wait, step 2/2, targets serve 50%" in text
    assert "pass  pass at 10%: canary 82 req 0.00% err" in text
    assert "fail  fail at 50%: canary 96 req 3.10% err" in text
    assert "s1 hp2: target unreachable: refused" in text


def test_a_blocked_canary_is_not_in_sync_and_shows_what_the_targets_serve() -> None:
    doc = document()
    blocked = RolloutStatus("hp2", 3, "blocked", 0, 2, 0, "c0ffee",
                            message="version 3 was auto-reverted before; set canary.retry: true")
    doc["held"] = [{"model": "hp2", "version": 3, "phase": "blocked",
                    "message": blocked.message}]
    model = doc["models"]["hp2"]
    model["rollout"] = rollout_doc(blocked)
    model["servingWeightBp"] = 0
    model["targets"]["s0"] = {"reachable": True, "labels": {"stable": 1}, "splitWeightBp": None}
    console = Console(file=io.StringIO(), width=160, record=True, color_system=None)
    render_status(doc, console)
    text = console.export_text()
    assert "(in sync)" not in text
    assert "(not in sync: hp2 canary 3 blocked)" in text
    row = next(line for line in text.splitlines() if "hp2" in line and "s0" in line)
    assert " 0% " in row and "blocked" in row and "20%" not in row
    assert "hp2 canary v3 (commit c0ffee): blocked, out of traffic (targets serve 0%)" in text
    assert "set canary.retry: true" in text


def test_a_kept_previous_version_shows_until_when_and_what_to_revert() -> None:
    doc = document()
    doc["models"]["hp2"]["previous"] = previous_doc(
        KeptPrevious("hp2", 1, 1_800_000_600.0, "d" * 40))
    console = Console(file=io.StringIO(), width=200, record=True, color_system=None)
    render_status(doc, console)
    assert ("hp2 previous v1 kept loaded until 2027-01-15T08:10:00+00:00 "
            f"(git revert {'d' * 12} rolls back with no load)") in console.export_text()


def test_a_failed_canary_held_for_a_person_says_what_it_waits_for() -> None:
    doc = document()
    held = RolloutStatus("hp2", 2, "failed_held", 0, 2, 0, "c0ffee",
                         message="Analysis failed; held at weight 0: 0 passed, 2 failed",
                         intervals=[{"outcome": "fail", "summary": "fail at 10%: 40.00% err"}])
    doc["held"] = [{"model": "hp2", "version": 2, "phase": "failed_held",
                    "message": held.message}]
    doc["models"]["hp2"]["rollout"] = rollout_doc(held)
    doc["models"]["hp2"]["servingWeightBp"] = 0
    console = Console(file=io.StringIO(), width=200, record=True, color_system=None)
    render_status(doc, console)
    text = console.export_text()
    assert ("hp2 canary v2 (commit c0ffee): failed, held: waiting for abort, retry or promote "
            "(step 1/2, targets serve 0%, still loaded)") in text
    assert "fail  fail at 10%: 40.00% err" in text
    assert "Analysis failed; held at weight 0: 0 passed, 2 failed" in text
    assert "(not in sync: hp2 canary 2 failed, held for a person)" in text
