"""Fault: the controller dies at random points across a canary, 20 seeded trials.

Killing is simulated in-process (faster than 20 subprocess start-ups, and as
honest for what matters here): a Controller is driven tick by tick with
`run_once`, abandoned after a random number of ticks without any cleanup of
its state dir, journal or servers, and a fresh Controller on the same state
dir takes over. The kill therefore lands between reconcile ticks, anywhere in
the canary: before readiness, mid-analysis, after the verdict was journalled
but before the promotion/revert commit, or after it. One fleet of two real
servers serves every trial; each trial has its own bare remote. Even trials
propose a good canary (promoted), odd ones a failing canary (reverted).

Half the trials also crash inside an operation: the n-th git write or target
RPC raises an exception nothing in the controller can catch (a stand-in for
SIGKILL at that instruction), so deaths land between a journalled verdict and
its commit, between a local commit and its push, and mid config push.

Checked per trial: exactly one promotion or revert commit, never both; a
reverted canary is out of traffic; servers agree with git at the end.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from controller.runtime.runner import Controller
from tests.conftest import ServerProcess
from tests.gitops import Person, spec
from tests.integration.test_controller_canary import (
    fleet,  # noqa: F401 - the fixture: two servers, models, a person's remote
    label_version,
    settings,
    split_of,
)
from tests.traffic import Traffic

pytestmark = pytest.mark.integration

TRIALS = 20
SEED = 20261122
TICK_S = 0.1
# Failure-only bounds: a healthy trial takes a few seconds, a loaded machine more.
TRIAL_DEADLINE_S = 120.0


def block() -> str:
    return (
        "    split: {hashKey: x-user-id}\n"
        "    steps: [{weight: 50, hold: 1s}]\n"
        "    analysis: {interval: 1s, minRequests: 4, failureLimit: 1,\n"
        # The faulty v3 answers INVALID_ARGUMENT (an in-graph assertion): count it.
        "               checks: {errorRate: {max: 0.05, codes: [INVALID_ARGUMENT]}}}\n"
    )


def verdicts(person: Person) -> list[str]:
    return [s for s in person.remote_log() if s.startswith(("rollouts: promote",
                                                            "rollouts: revert"))]


def test_random_controller_kills_never_double_a_verdict(
    fleet: dict[str, Any], tmp_path: Path  # noqa: F811
) -> None:
    servers: list[ServerProcess] = fleet["servers"]
    rng = random.Random(SEED)
    # Traffic must outlive every trial: a canary with no requests never reaches a
    # verdict (minRequests), so the bound is the sum of the trial deadlines.
    traffic = Traffic([s.rest_url for s in servers],
                      max_seconds=TRIALS * (TRIAL_DEADLINE_S + 30)).start()
    crashes: list[tuple[int, str]] = []
    try:
        for trial in range(TRIALS):
            root = tmp_path / f"trial-{trial}"
            root.mkdir()
            person = Person(root)
            person.write("rollouts/hp2.yaml", spec(stable=1), "hp2 at v1")
            canary = 2 if trial % 2 == 0 else 3
            fleet["person"] = person
            state = settings(fleet, root)
            # Converge on v1 first (the previous trial may have promoted v2).
            first = Controller(state)
            assert _ticks_until(first, lambda: label_version(servers[0], "stable") == 1,
                                TRIAL_DEADLINE_S)
            person.write("rollouts/hp2.yaml", spec(stable=1, canary=canary,
                                                   canary_block=block()), f"canary {canary}")
            kill_after = rng.randrange(0, 30)
            # Half the trials also die inside an operation: at the n-th git write
            # or target RPC (a notes push, the revert or promotion commit before or
            # after its push, a split or config push), like a SIGKILL there.
            crash_at = rng.randrange(1, 12) if trial % 4 in (1, 2) else None
            calls = arm_crash(first, crash_at)
            try:
                for _ in range(kill_after):
                    first.run_once()
                    time.sleep(TICK_S)
            except SimulatedCrash:
                crashes.append((trial, calls[-1]))
            first.reconciler.close()  # abandoned: its journal, clone and servers stay as is
            second = Controller(state)
            try:
                done = _ticks_until(
                    second, lambda p=person, c=second: bool(verdicts(p)) and c.run_once(),
                    TRIAL_DEADLINE_S,
                )
                assert done, (trial, kill_after, crash_at, calls, second.status()["models"],
                              verdicts(person))
            finally:
                second.reconciler.close()
            found = verdicts(person)
            assert len(found) == 1, (trial, kill_after, crash_at, calls, found)
            expected = "promote" if canary == 2 else "revert"
            assert found[0].startswith(f"rollouts: {expected} hp2"), (trial, found)
            stable = 2 if canary == 2 else 1
            for server in servers:
                assert split_of(server) is None, (trial, kill_after)
                assert label_version(server, "canary") is None, (trial, kill_after)
                assert label_version(server, "stable") == stable, (trial, kill_after)
            assert person.remote_file("rollouts/hp2.yaml") == spec(stable=stable).rstrip("\n")
    finally:
        traffic.stop()
    # The seeded schedule really did kill the controller inside operations.
    assert len(crashes) >= 3, crashes
    assert traffic.statuses[500] == 0 and traffic.statuses[0] == 0


class SimulatedCrash(BaseException):
    """Not an Exception: nothing in the controller may catch it, as with SIGKILL."""


CRASHABLE_NOTES = ("add_note", "push_notes")
CRASHABLE_GIT = ("push", "commit_file_edit", "revert_or_remove_canary")


def arm_crash(controller: Controller, crash_at: int | None) -> list[str]:
    """Make the `crash_at`-th write (git or target RPC) raise SimulatedCrash first."""
    calls: list[str] = []
    if crash_at is None:
        return calls

    def wrap(name: str, method: Any) -> Any:
        def crashing(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            if len(calls) == crash_at:
                raise SimulatedCrash(name)
            return method(*args, **kwargs)

        return crashing

    for name in CRASHABLE_NOTES:
        setattr(controller.notes, name, wrap(name, getattr(controller.notes, name)))
    for name in CRASHABLE_GIT:
        setattr(controller.git, name, wrap(name, getattr(controller.git, name)))
    for target in controller.reconciler.targets:
        target.apply = wrap(f"apply:{target.name}", target.apply)  # type: ignore[method-assign]
    return calls


def _ticks_until(controller: Controller, done: Any, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        controller.run_once()
        if done():
            return True
        time.sleep(TICK_S)
    return False
