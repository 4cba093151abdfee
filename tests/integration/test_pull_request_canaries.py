"""Canaries from pull requests end to end: real servers, real traffic, real git.

The bare remote holds GitHub-style `refs/pull/N/head` refs; the controller runs with
`--pull-requests +refs/pull/*/head`. A pull request's canary runs on top of main's
stable with its journal in the notes of the pull request's head: a pass is "ready to
merge" and main is untouched until a person merges, which promotes; a failure leaves
traffic with nothing to revert; a closed pull request's canary is unloaded. Intervals
are a second so each test takes seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.runtime.notify import NotificationTarget
from controller.runtime.runner import Controller
from tests.conftest import ServerProcess
from tests.gitops import Person, git, spec
from tests.helpers import wait_for
from tests.integration.test_controller_canary import (  # noqa: F401 - fleet is a fixture
    canary_block,
    fleet,
    label_version,
    running,
    split_of,
)
from tests.integration.test_notifications import Receiver
from tests.traffic import Traffic

pytestmark = pytest.mark.integration

PULLS = "+refs/pull/*/head"


@dataclass
class Rig:
    person: Person
    servers: list[ServerProcess]
    controller: Controller
    traffic: Traffic | None


@contextmanager
def following_pulls(pieces: dict[str, Any], tmp_path: Path, *, traffic: bool = True,
                    **extra: Any) -> Iterator[Rig]:
    """The fleet's controller with `--pull-requests`, and traffic to every server."""
    servers: list[ServerProcess] = pieces["servers"]
    sending = Traffic([s.rest_url for s in servers]).start() if traffic else None
    controller = running(pieces, tmp_path, pull_requests=PULLS, **extra)
    try:
        yield Rig(pieces["person"], servers, controller, sending)
    finally:
        controller.stop()
        if sending is not None:
            sending.stop()


def open_long_canary(person: Person, number: int) -> str:
    """Pull request N with a canary of v2 that holds for an hour (judged once a minute)."""
    return person.push_pull(
        number, "rollouts/hp2.yaml",
        spec(stable=1, canary=2, canary_block=canary_block(hold="1h", interval="1m")),
        "canary hp2 v2")


def note_of(person: Person, commit: str) -> str:
    """The journal on `commit`, as the remote has it."""
    git(person.clone, "fetch", "-q", "origin", "+refs/notes/*:refs/notes/*")
    try:
        return git(person.clone, "notes", "--ref=rollouts", "show", commit)
    except AssertionError:
        return ""


def pull_status(controller: Controller, pull: str) -> dict[str, Any]:
    for entry in controller.status()["pullRequests"]:
        if entry["pull"] == pull:
            return dict(entry)
    return {}


def phase_of(controller: Controller, pull: str) -> str:
    return str(pull_status(controller, pull).get("phase", ""))


def serving_canary(servers: list[ServerProcess], version: int | None) -> bool:
    """Every server has `version` labelled canary with a split (None: no canary, no split)."""
    if version is None:
        return all(label_version(s, "canary") is None and split_of(s) is None for s in servers)
    return all(label_version(s, "canary") == version and split_of(s) is not None
               for s in servers)


def test_a_passing_pull_request_canary_is_ready_to_merge_and_merging_promotes(
    fleet: dict[str, Any], tmp_path: Path  # noqa: F811 - the imported fixture
) -> None:
    receiver = Receiver()
    try:
        with following_pulls(fleet, tmp_path,
                             notifications=(NotificationTarget(receiver.url),)) as rig:
            person, servers, controller = rig.person, rig.servers, rig.controller
            assert wait_for(lambda: label_version(servers[0], "stable") == 1, 60, 0.2)
            main = person.remote_head()
            head = person.push_pull(1, "rollouts/hp2.yaml",
                                    spec(stable=1, canary=2, canary_block=canary_block()),
                                    "canary hp2 v2")
            assert wait_for(lambda: serving_canary(servers, 2), 60, 0.2), controller.status()
            assert wait_for(lambda: phase_of(controller, "1") == "ready_to_merge", 90, 0.2), (
                controller.status())
            rollout = controller.status()["models"]["hp2"]["rollout"]
            assert rollout is not None and rollout["pullRequest"] == "1"
            # Main is untouched, the canary stays in traffic, the journal is on the head.
            assert person.remote_head() == main and serving_canary(servers, 2)
            journal = note_of(person, head)
            assert "v2 baseline: pull request 1: runs on top of stable v1" in journal
            assert "v2 started" in journal and "interval: pass at 50%" in journal
            assert "Pull request 1 is ready to merge: merging promotes." in journal
            assert wait_for(lambda: "ready_to_merge" in receiver.events(), 30, 0.1)
            told = next(json.loads(body) for _, body in receiver.posts
                        if json.loads(body)["event"] == "ready_to_merge")
            assert (told["model"], told["canaryVersion"], told["commit"]) == ("hp2", 2, head)

            merge = person.merge_pull(1)
            assert wait_for(lambda: person.remote_log()[0] == "rollouts: promote hp2 to 2",
                            60, 0.2), (person.remote_log(), controller.status())
            assert person.remote_log()[1] == "Merge pull request #1"
            message = git(person.remote, "log", "-1", "--format=%B", "main")
            assert f"Rollouts-Canary-Commit: {merge}" in message
            assert "Rollouts-Intervals: " in message
            assert person.remote_file("rollouts/hp2.yaml") == spec(stable=2).rstrip("\n")
            assert wait_for(lambda: all(label_version(s, "stable") == 2 and split_of(s) is None
                                        for s in servers), 60, 0.2)
            assert note_of(person, head).count(" started: ") == 1  # judged once, not again
    finally:
        receiver.stop()
    assert rig.traffic is not None
    assert rig.traffic.statuses[500] == 0 and rig.traffic.statuses[0] == 0


def test_a_pull_request_merged_mid_canary_continues_where_it_was(
    fleet: dict[str, Any], tmp_path: Path  # noqa: F811 - the imported fixture
) -> None:
    with following_pulls(fleet, tmp_path) as rig:
        person = rig.person
        head = person.push_pull(3, "rollouts/hp2.yaml",
                                spec(stable=1, canary=2, canary_block=canary_block(hold="5s")),
                                "canary hp2 v2")
        assert wait_for(lambda: " started: " in note_of(person, head), 90, 0.2), (
            rig.controller.status())
        merge = person.merge_pull(3)
        assert wait_for(lambda: person.remote_log()[0] == "rollouts: promote hp2 to 2", 90,
                        0.2), (person.remote_log(), rig.controller.status())
        journal = note_of(person, head)
        # One run, started once on the pull request and judged to its verdict there.
        assert journal.count(" started: ") == 1 and journal.count(" baseline: ") == 1
        assert "verdict: Analysis passed" in journal and "ready to merge" not in journal
        assert note_of(person, merge) == ""  # no fresh journal on the merge commit


def test_a_failing_pull_request_canary_leaves_traffic_and_main_is_untouched(
    fleet: dict[str, Any], tmp_path: Path  # noqa: F811 - the imported fixture
) -> None:
    with following_pulls(fleet, tmp_path) as rig:
        person, servers, controller = rig.person, rig.servers, rig.controller
        assert wait_for(lambda: label_version(servers[0], "stable") == 1, 60, 0.2)
        main = person.remote_head()
        head = person.push_pull(2, "rollouts/hp2.yaml",
                                spec(stable=1, canary=3, canary_block=canary_block(hold="30s")),
                                "canary hp2 v3 (faulty)")
        assert wait_for(lambda: phase_of(controller, "2") == "failed", 90, 0.2), (
            controller.status())
        assert "error rate" in pull_status(controller, "2")["reason"]
        assert wait_for(lambda: serving_canary(servers, None), 30, 0.2)
        journal = note_of(person, head)
        assert "verdict: Analysis failed" in journal
        assert "the followed branch is untouched (nothing to revert)" in journal
        assert person.remote_head() == main  # no revert, no commit at all
        assert not wait_for(lambda: serving_canary(servers, 3), 2, 0.2)  # it stays out


def test_a_closed_pull_request_stops_its_canary(
    fleet: dict[str, Any], tmp_path: Path  # noqa: F811 - the imported fixture
) -> None:
    with following_pulls(fleet, tmp_path, traffic=False) as rig:
        person, servers, controller = rig.person, rig.servers, rig.controller
        head = open_long_canary(person, 5)
        assert wait_for(lambda: serving_canary(servers, 2), 60, 0.2), controller.status()
        person.close_pull(5)
        assert wait_for(lambda: serving_canary(servers, None), 30, 0.2), controller.status()
        assert wait_for(lambda: "pull request 5 was closed" in note_of(person, head), 30, 0.2)
        assert controller.status()["pullRequests"] == []
        assert person.remote_log() == ["hp2 at v1"]


def test_a_stable_change_on_main_restarts_a_running_pull_request_canary(
    fleet: dict[str, Any], tmp_path: Path  # noqa: F811 - the imported fixture
) -> None:
    with following_pulls(fleet, tmp_path, traffic=False) as rig:
        person, servers, controller = rig.person, rig.servers, rig.controller
        head = open_long_canary(person, 6)
        assert wait_for(lambda: " started: " in note_of(person, head), 60, 0.2), (
            controller.status())
        person.write("rollouts/hp2.yaml", spec(stable=3), "hp2 stable v3")
        # The canary runs on against the new stable: a new baseline, a fresh start.
        assert wait_for(lambda: note_of(person, head).count(" started: ") == 2, 60, 0.2), (
            controller.status())
        journal = note_of(person, head)
        assert "stable changed from v1 to v3 on the followed branch" in journal
        assert wait_for(lambda: all(label_version(s, "stable") == 3 for s in servers), 30, 0.2)
        assert serving_canary(servers, 2) and phase_of(controller, "6") == "running"
        assert person.remote_log() == ["hp2 stable v3", "hp2 at v1"]
