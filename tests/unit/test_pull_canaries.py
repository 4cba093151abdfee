"""Pull request canaries run: PullRequestCanaries and the driver against fake refs, notes
and metrics (the pure rules are tabled in test_pull_requests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from controller.adapters.gitresults import PathNotFound
from controller.adapters.journal import journal_line, parse_journal
from controller.adapters.pulls import PullHead, parse_refspec
from controller.decide.analysis import VersionWindow
from controller.decide.desired import Snapshot, desired_from_tree
from controller.decide.notices import Notice
from controller.decide.progress import Event
from controller.runtime.pulls import PullCanary, PullRequestCanaries
from controller.runtime.rollout import RolloutDriver
from controller.runtime.rollout_status import READY_TO_MERGE
from controller.runtime.status import ControllerState, status_document
from tests.unit.fakes import FakeClock
from tests.unit.test_rollout_driver import FakeGit, FakeProvider, target

BLOCK = """\
  canary:
    version: {version}
    split: {{hashKey: x-user-id}}
    steps: [{{weight: 50, hold: 30s}}]
    analysis:
      {{interval: 30s, minRequests: 10, failureLimit: 1, checks: {{errorRate: {{max: 0.05}}}}}}
"""


def text(stable: int = 1, canary: int | None = None, name: str = "hp2") -> str:
    body = (f"apiVersion: rollouts/v1\nkind: ModelRollout\nmetadata: {{name: {name}}}\n"
            f"spec:\n  model: {{name: {name}}}\n  stable: {stable}\n")
    return body + (BLOCK.format(version=canary) if canary is not None else "")


def followed(stable: int = 1, canary: int | None = None, commit: str = "main1") -> Snapshot:
    snap, problems = desired_from_tree([("rollouts/hp2.yaml", text(stable, canary))], commit,
                                       "/models")
    assert snap is not None and not problems
    return snap


@dataclass
class FakeRefs:
    """A `runtime.pulls.PullSource`: pull request heads and each commit's spec files."""

    pulls: list[PullHead] = field(default_factory=list)
    trees: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    merges: dict[str, list[PullHead]] = field(default_factory=dict)

    def heads(self) -> Sequence[PullHead]:
        return list(self.pulls)

    def brought_by(self, commit: str) -> Sequence[PullHead]:
        return self.merges.get(commit, [])

    def read_tree(self, commit: str, folder: str) -> list[tuple[str, str]]:
        if commit not in self.trees:
            raise PathNotFound(f"{folder!r} not found at {commit}")
        return self.trees[commit]

    def open(self, pull: str, head: str, spec: str, base: str = "base") -> None:
        self.trees.setdefault(base, [("rollouts/hp2.yaml", text())])
        self.trees[head] = [("rollouts/hp2.yaml", spec)]
        self.pulls = [p for p in self.pulls if p.pull != pull]
        self.pulls.append(PullHead(pull, head, False, base))


@pytest.fixture
def rig() -> tuple[PullRequestCanaries, FakeRefs, FakeGit]:
    refs, notes = FakeRefs(), FakeGit()
    return PullRequestCanaries(refs, notes, "rollouts", "/models"), refs, notes


def kinds(notes: FakeGit, commit: str) -> list[str]:
    return [e.kind for e in parse_journal(notes.notes(commit))]


def test_a_canary_only_pull_request_runs_on_top_of_the_followed_stable(rig) -> None:
    pulls, refs, notes = rig
    refs.open("7", "h7", text(canary=2))
    view = pulls.tick(followed(), 1000.0)
    assert view.running == {"hp2": PullCanary("7", "h7")}
    model = view.snapshot.desired.models["hp2"]
    assert model.labels == {"stable": 1, "canary": 2} and model.split is not None
    assert view.snapshot.commit == "main1"  # still the followed branch's commit
    # The run starts with the stable it runs against, journaled on the head.
    events = parse_journal(notes.notes("h7"))
    assert [(e.kind, e.detail) for e in events] == [("baseline", {"stable": 1, "pull": "7"})]
    assert [(s.pull, s.phase, s.model, s.version) for s in view.pulls] == [
        ("7", "running", "hp2", 2)]
    assert notes.pushes == 1
    pulls.tick(followed(), 1001.0)  # nothing more to say
    assert kinds(notes, "h7") == ["baseline"] and notes.pushes == 1


def test_others_wait_oldest_first_and_the_followed_branchs_canary_comes_first(rig) -> None:
    pulls, refs, _ = rig
    refs.open("12", "h12", text(canary=3))
    refs.open("7", "h7", text(canary=2))
    view = pulls.tick(followed(), 1000.0)
    assert view.running == {"hp2": PullCanary("7", "h7")}
    assert [(s.pull, s.phase, s.reason) for s in view.pulls] == [
        ("7", "running", "runs on top of stable v1"),
        ("12", "waiting", "pull request 7's canary of hp2 (v2) runs first: one canary per model"),
    ]
    view = pulls.tick(followed(canary=4), 1001.0)
    assert view.running == {}
    assert {s.phase for s in view.pulls} == {"waiting"}
    assert view.pulls[0].reason == "the followed branch's canary of hp2 (v4) runs first"


def test_a_pull_request_that_changes_more_than_canaries_or_is_invalid_proposes_none(rig) -> None:
    pulls, refs, _ = rig
    refs.open("3", "h3", text(stable=2, canary=3))
    refs.open("4", "h4", text(canary=2).replace("stable: 1", "stable: one"))
    refs.pulls.append(PullHead("5", "h5", False, None))
    view = pulls.tick(followed(), 1000.0)
    assert view.running == {} and view.snapshot.desired.models["hp2"].labels == {"stable": 1}
    reasons = {s.pull: (s.phase, s.reason) for s in view.pulls}
    assert reasons["3"] == ("not_candidate", "changes hp2's spec.stable: not only canary blocks")
    assert reasons["4"][0] == "not_candidate"
    assert reasons["4"][1].startswith("invalid specs at h4: rollouts/hp2.yaml:6:")
    assert reasons["5"] == ("not_candidate", "no history in common with the followed branch")


def test_a_stable_change_on_the_followed_branch_restarts_the_run(rig) -> None:
    pulls, refs, notes = rig
    refs.open("7", "h7", text(canary=3))
    pulls.tick(followed(stable=1), 1000.0)
    notes.add_note("h7", journal_line(Event("started", 1001.0, "hp2", 3), "started"))
    view = pulls.tick(followed(stable=2, commit="main2"), 1002.0)
    assert view.snapshot.desired.models["hp2"].labels == {"stable": 2, "canary": 3}
    baselines = [e.detail["stable"] for e in parse_journal(notes.notes("h7"))
                 if e.kind == "baseline"]
    assert baselines == [1, 2]
    assert "stable changed from v1 to v2" in notes.notes("h7")[-1]


def test_a_closed_or_changed_pull_request_stops_its_canary(rig) -> None:
    pulls, refs, notes = rig
    refs.open("7", "h7", text(canary=2))
    pulls.tick(followed(), 1000.0)
    refs.open("7", "h7b", text(canary=2))  # a new push to the pull request
    assert pulls.refresh()  # what a git sync does: the refs moved
    view = pulls.tick(followed(), 1001.0)
    assert view.running == {"hp2": PullCanary("7", "h7b")}
    assert kinds(notes, "h7") == ["baseline", "stopped"]
    assert "pull request 7 changed (head now h7b)" in notes.notes("h7")[-1]
    assert kinds(notes, "h7b") == ["baseline"]  # a fresh run on the new head
    refs.pulls = []  # closed: its ref is gone
    assert pulls.refresh() and not pulls.refresh()
    view = pulls.tick(followed(), 1002.0)
    assert view.running == {} and "canary" not in view.snapshot.desired.models["hp2"].labels
    assert kinds(notes, "h7b") == ["baseline", "stopped"]
    assert "pull request 7 was closed" in notes.notes("h7b")[-1]


def test_a_failed_pull_request_canary_holds_nothing_and_says_why(rig) -> None:
    pulls, refs, notes = rig
    refs.open("7", "h7", text(canary=2))
    refs.open("9", "h9", text(canary=3))
    pulls.tick(followed(), 1000.0)
    notes.add_note("h7", journal_line(Event("verdict", 1001.0, "hp2", 2, 0, "fail",
                                            {"summary": "Analysis failed: error rate"}), "x"))
    view = pulls.tick(followed(), 1002.0)
    assert view.running == {"hp2": PullCanary("9", "h9")}
    phases = {s.pull: (s.phase, s.reason) for s in view.pulls}
    assert phases["7"] == ("failed", "Analysis failed: error rate")
    assert "stopped" not in kinds(notes, "h7")  # it ended with its verdict


def test_a_merged_canary_continues_the_journal_of_the_head_that_ran_it(rig) -> None:
    pulls, refs, notes = rig
    refs.trees["h7"] = [("rollouts/hp2.yaml", text(canary=2))]
    refs.merges["merge"] = [PullHead("7", "h7", True, None)]
    spec = followed(canary=2).documents["hp2"].spec
    assert pulls.journal_home("merge", spec) == "merge"  # no journal on the head: a fresh one
    notes.add_note("h7", journal_line(Event("started", 1.0, "hp2", 2), "started"))
    assert PullRequestCanaries(refs, notes, "rollouts", "/models").journal_home(
        "merge", spec) == "h7"
    # Another canary (a field changed in the merge) is not the one that ran.
    other = spec.model_copy(update={"spec": spec.spec.model_copy(update={
        "canary": spec.spec.canary.model_copy(update={"paused": True})})})  # type: ignore[union-attr]
    assert PullRequestCanaries(refs, notes, "rollouts", "/models").journal_home(
        "merge", other) == "merge"


def driver_rig() -> tuple[RolloutDriver, FakeGit, FakeProvider, FakeClock, list[Notice]]:
    git, provider, clock = FakeGit(), FakeProvider(), FakeClock()
    told: list[Notice] = []
    return RolloutDriver(git, git, provider, clock=clock, notify=told.append), git, provider, \
        clock, told


def test_a_passing_pull_request_canary_is_ready_to_merge_and_writes_no_commit() -> None:
    driver, git, provider, clock, told = driver_rig()
    provider.windows = {2: VersionWindow(100, 0), 1: VersionWindow(900, 0)}
    snap = followed(canary=2)
    pull = {"hp2": PullCanary("7", "h7")}
    git.add_note("h7", journal_line(Event("baseline", 999.0, "hp2", 2, detail={"stable": 1}),
                                    "baseline"))
    phases = []
    for advance in (0, 30, 30):
        clock.advance(advance)
        result = driver.drive(snap, [target(5000)], pull)
        phases.append(result.statuses["hp2"].phase)
        assert result.pending == []
    status = result.statuses["hp2"]
    assert status.phase == READY_TO_MERGE and status.pull_request == "7", phases
    assert "Pull request 7 is ready to merge: merging promotes." in status.message
    assert result.desired.models["hp2"].split.canary_weight_bp == 5000  # type: ignore[union-attr]
    assert git.commits == [] and "start-commit" not in git.notes_by_commit
    assert [e.kind for e in parse_journal(git.notes("h7"))][-1] == "verdict"
    assert [n.event for n in told][-1] == "ready_to_merge" and told[-1].commit == "h7"
    state = ControllerState(snapshot=snap, rollouts=result.statuses)
    doc = status_document(state, repo="r", branch="main", targets=[])
    assert doc["models"]["hp2"]["rollout"]["pullRequest"] == "7"  # type: ignore[index]


def test_a_failing_pull_request_canary_leaves_traffic_and_nothing_is_reverted() -> None:
    driver, git, provider, clock, told = driver_rig()
    provider.windows = {2: VersionWindow(100, 40), 1: VersionWindow(900, 0)}
    snap = followed(canary=2)
    pull = {"hp2": PullCanary("7", "h7")}
    driver.drive(snap, [target(5000)], pull)
    clock.advance(30)
    result = driver.drive(snap, [target(5000)], pull)
    assert result.statuses["hp2"].phase == "fail" and result.pending == []
    model = result.desired.models["hp2"]
    assert model.split is None and "canary" not in model.labels
    verdict = parse_journal(git.notes("h7"))[-1]
    assert (verdict.kind, verdict.outcome, verdict.detail["pull"]) == ("verdict", "fail", "7")
    assert "the followed branch is untouched (nothing to revert)" in verdict.detail["summary"]
    assert told[-1].event == "reverted" and "error rate" in told[-1].summary
    assert git.commits == []


def test_pull_requests_refspec_is_checked() -> None:
    assert parse_refspec("+refs/pull/*/head").fetch == "+refs/pull/*/head:refs/rollouts/pulls/*"
    assert parse_refspec("refs/merge-requests/*/head").source == "refs/merge-requests/*/head"
    for bad, says in [("refs/pull/*/head:refs/x/*", "give only the remote refs"),
                      ("pull/*/head", "expected remote refs"),
                      ("refs/pull/head", "exactly one '*'"),
                      ("refs/*/pull/*", "exactly one '*'")]:
        with pytest.raises(ValueError, match=says) as info:
            parse_refspec(bad)
        assert "--pull-requests" in str(info.value) and bad in str(info.value)


def test_a_canary_on_the_followed_branch_takes_the_model_over(rig) -> None:
    pulls, refs, notes = rig
    refs.open("7", "h7", text(canary=2))
    pulls.tick(followed(), 1000.0)
    view = pulls.tick(followed(canary=4, commit="main2"), 1001.0)
    assert view.running == {} and view.snapshot.desired.models["hp2"].labels == {
        "stable": 1, "canary": 4}
    assert kinds(notes, "h7") == ["baseline", "stopped"]
    assert "the followed branch's canary of hp2 (v4) runs first" in notes.notes("h7")[-1]
    # Once the followed branch's canary is over, the pull request's runs afresh.
    pulls.tick(followed(stable=4, commit="main3"), 1002.0)
    assert kinds(notes, "h7") == ["baseline", "stopped", "baseline"]
