"""The rollout driver against a fake git journal, a fake metrics provider and a clock."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from controller.adapters.gitresults import (
    PushResult,
    PushStatus,
    RevertResult,
    WriteOutcome,
    WriteResult,
    WriteStatus,
)
from controller.adapters.journal import journal_line, parse_journal
from controller.adapters.metrics import Reading
from controller.decide.analysis import VersionWindow
from controller.decide.desired import Snapshot, desired_from_tree
from controller.decide.fleet import ObservedModel, ObservedTarget, SplitRule
from controller.decide.gates import canary_load_error, canary_ready
from controller.decide.notices import Notice
from controller.decide.progress import Event
from controller.runtime.rollout import RolloutDriver
from controller.runtime.status import rollout_doc
from controller.runtime.verdicts import Pending
from tests.unit.fakes import FakeClock

SPEC = """\
apiVersion: rollouts/v1
kind: ModelRollout
metadata: {name: hp2}
spec:
  model: {name: hp2}
  stable: 1
  canary:
    version: 2
    split: {hashKey: x-user-id}
    steps: [{weight: 10, hold: 60s}, {weight: 50, hold: 60s}]
    analysis:
      interval: 30s
      minRequests: 10
      failureLimit: 2
      checks: {errorRate: {max: 0.05}}
"""


@dataclass
class Info:
    message: str
    sha: str = ""


@dataclass
class FakeGit:
    """A `rollout.RolloutGit` and a `journal.NoteStore` in memory."""

    notes_by_commit: dict[str, list[str]] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    commit_messages: dict[str, str] = field(default_factory=dict)
    pushes: int = 0
    files: dict[str, str] = field(default_factory=dict)
    commits: list[tuple[str, str, str, list[tuple[str, str]]]] = field(default_factory=list)

    def notes(self, commit: str) -> list[str]:
        return list(self.notes_by_commit.get(commit, []))

    def add_note(self, commit: str, text: str) -> None:
        assert "\n" not in text
        self.notes_by_commit.setdefault(commit, []).append(text)

    def push_notes(self) -> PushResult:
        self.pushes += 1
        return PushResult(PushStatus.OK)

    def find_commit_that_set(
        self, head: str, path: str, predicate: Callable[[str | None], bool]
    ) -> str:
        return "start-commit"

    def log(self, head: str, max_count: int = 0) -> list[Info]:
        if ".." in head:  # a range: the commits a new head brought, newest first
            return [Info(m, sha) for sha, m in reversed(self.commit_messages.items())
                    if sha not in head.split("..")]
        if head in self.commit_messages:
            return [Info(self.commit_messages[head])]
        return [Info(m) for m in self.messages]

    def read_file(self, head: str, path: str) -> str | None:
        return self.files.get(path)

    def commit_file_edit(self, head: str, path: str, text: str, message: str,
                         trailers: Sequence[tuple[str, str]] = ()) -> str:
        self.commits.append((path, text, message, list(trailers)))
        return f"sha{len(self.commits)}"

    def revert_or_remove_canary(self, head: str, canary_commit: str, path: str, model: str,
                                message: str, trailers: Sequence[tuple[str, str]] = ()
                                ) -> RevertResult:
        return RevertResult(self.commit_file_edit(head, path, "", message, trailers), "revert")

    def write_with_retry(self, make: Callable[[str], WriteResult | None]) -> WriteOutcome:
        change = make("head2")
        if change is None:
            return WriteOutcome(WriteStatus.REPLAN, None, "head2", 1)
        return WriteOutcome(WriteStatus.WRITTEN, change.sha, "head2", 1)


class FakeProvider:
    def __init__(self) -> None:
        self.windows: dict[int, VersionWindow] = {}
        self.reset = False
        self.marks: list[float] = []

    def mark(self, at: float) -> None:
        self.marks.append(at)

    def read(self, model: str, versions: Sequence[int], start: float, end: float) -> Reading:
        if not self.windows:
            return Reading(problems=("target down",))
        return Reading(dict(self.windows), (), self.reset)


def snapshot(text: str = SPEC) -> Snapshot:
    snap, problems = desired_from_tree([("rollouts/hp2.yaml", text)], "head1", "/models")
    assert not problems and snap is not None
    return snap


def target(weight_bp: int | None, canary_state: str = "AVAILABLE") -> ObservedTarget:
    split = None
    if weight_bp is not None:
        split = SplitRule(canary_weight_bp=weight_bp, hash_key="x-user-id")
    model = ObservedModel(
        "hp2", {1: "AVAILABLE", 2: canary_state}, {"stable": 1, "canary": 2}, split=split
    )
    return ObservedTarget("t1", True, {"hp2": model})


@pytest.fixture
def rig() -> tuple[RolloutDriver, FakeGit, FakeProvider, FakeClock]:
    git, provider, clock = FakeGit(), FakeProvider(), FakeClock()
    return RolloutDriver(git, git, provider, clock=clock), git, provider, clock


def kinds(git: FakeGit) -> list[str]:
    return [e.kind + (":" + e.outcome if e.outcome else "") for e in
            parse_journal(git.notes("start-commit"))]


def test_not_ready_canary_is_not_judged_but_gets_first_step_weight(rig) -> None:
    driver, git, _, _ = rig
    result = driver.drive(snapshot(), [target(None, canary_state="LOADING")])
    assert result.statuses["hp2"].phase == "wait_ready"
    assert result.desired.models["hp2"].split.canary_weight_bp == 1000
    assert kinds(git) == ["proposed"]  # first sight starts the progress deadline


def test_no_analysis_starts_while_a_target_is_down(rig) -> None:
    driver, git, _, _ = rig
    down = ObservedTarget("t2", False, error="connection refused")
    assert driver.drive(snapshot(), [target(1000), down]).statuses["hp2"].phase == "wait_ready"
    assert kinds(git) == ["proposed"]
    assert driver.drive(snapshot(), [target(1000)]).statuses["hp2"].phase == "start"


def test_passing_canary_walks_the_steps_and_promotes(rig) -> None:
    driver, git, provider, clock = rig
    provider.windows = {2: VersionWindow(100, 0), 1: VersionWindow(900, 0)}
    snap = snapshot()

    def tick(weight: int, advance_s: float) -> str:
        clock.advance(advance_s)
        return driver.drive(snap, [target(weight)]).statuses["hp2"].phase

    assert tick(1000, 0) == "start" and provider.marks == [1000.0]
    assert tick(1000, 30) == "analyse"
    assert tick(1000, 30) == "advance"  # hold 60s over, latest interval passed
    result = driver.drive(snap, [target(1000)])
    assert result.desired.models["hp2"].split.canary_weight_bp == 5000
    assert result.statuses["hp2"].phase == "wait_ready"  # split still at the old weight
    assert tick(5000, 0) == "wait"
    assert tick(5000, 30) == "analyse"
    result = driver.drive(snap, [target(5000)])
    assert result.statuses["hp2"].phase == "wait"  # step 2 hold not over yet
    clock.advance(30)
    result = driver.drive(snap, [target(5000)])
    assert result.statuses["hp2"].phase == "promote"
    assert [p.kind for p in result.pending] == ["promote"]
    assert kinds(git) == [
        "started", "interval:pass", "step", "interval:pass", "verdict:promote",
    ]
    assert "2 interval(s) passed, 0 failed" in result.pending[0].summary
    analysis = dict(result.pending[0].analysis)
    assert analysis["Rollouts-Intervals"] == "2 passed, 0 failed, 0 not judged"
    assert analysis["Rollouts-Last-Interval"].startswith("pass at 50%: canary ")


def test_manual_promotion_says_ready_to_promote_and_writes_nothing(rig) -> None:
    driver, git, provider, clock = rig
    provider.windows = {2: VersionWindow(100, 0), 1: VersionWindow(900, 0)}
    manual = SPEC.replace("    analysis:\n", "    promotion: manual\n    analysis:\n")
    snap = snapshot(manual)
    phases = []
    for weight, advance in ((1000, 0), (1000, 30), (1000, 30), (5000, 0), (5000, 30),
                            (5000, 30), (5000, 30)):
        clock.advance(advance)
        phases.append(driver.drive(snap, [target(weight)]).statuses["hp2"].phase)
    result = driver.drive(snap, [target(5000)])
    status = result.statuses["hp2"]
    assert status.phase == "ready_to_promote", phases
    assert status.message.startswith("Analysis passed; ready to promote (promotion: manual)")
    assert result.pending == []  # a person promotes, by a commit that sets stable
    assert result.desired.models["hp2"].split.canary_weight_bp == 5000
    verdicts = [line for line in git.notes("start-commit") if " verdict: " in line]
    assert len(verdicts) == 1 and "ready to promote" in verdicts[0]
    driver.drive(snap, [target(5000)])  # said once, not on every tick
    assert len([line for line in git.notes("start-commit") if " verdict: " in line]) == 1


def test_failing_canary_is_taken_out_and_pending_revert(
    rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="controller")
    driver, git, provider, clock = rig
    provider.windows = {2: VersionWindow(100, 40), 1: VersionWindow(900, 0)}
    snap = snapshot()
    driver.drive(snap, [target(1000)])
    for _ in range(2):
        clock.advance(30)
        driver.drive(snap, [target(1000)])
    result = driver.drive(snap, [target(1000)])
    assert result.statuses["hp2"].phase == "fail"
    model = result.desired.models["hp2"]
    assert model.split is None and "canary" not in model.labels and model.versions == {1}
    assert [p.kind for p in result.pending] == ["fail"]
    assert "error rate" in result.pending[0].summary
    analysis = dict(result.pending[0].analysis)
    assert analysis["Rollouts-Intervals"] == "0 passed, 2 failed, 0 not judged"
    assert "40.00% err" in analysis["Rollouts-Last-Interval"]
    # Failed intervals and the failed verdict are warnings; the start is progress.
    levels = {(r.event, r.levelname) for r in caplog.records}  # type: ignore[attr-defined]
    assert ("interval", "WARNING") in levels and ("verdict", "WARNING") in levels
    assert ("started", "INFO") in levels
    assert all(r.model == "hp2" and r.commit == "start-commit" for r in caplog.records)  # type: ignore[attr-defined]
    # A restarted driver (same journal) reaches the same verdict without re-recording it.
    again = RolloutDriver(git, git, provider, clock=clock).drive(snap, [target(None)])
    assert [p.kind for p in again.pending] == ["fail"]
    assert kinds(git).count("verdict:fail") == 1


def test_unmeasured_intervals_are_skipped_never_failed(rig) -> None:
    driver, git, provider, clock = rig
    snap = snapshot()
    driver.drive(snap, [target(1000)])
    for _ in range(4):
        clock.advance(30)
        result = driver.drive(snap, [target(1000)])
    assert result.pending == []
    assert kinds(git) == ["started"] + ["interval:skipped"] * 4


def test_counter_reset_interval_is_skipped(rig) -> None:
    driver, git, provider, clock = rig
    provider.windows = {2: VersionWindow(100, 90), 1: VersionWindow(900, 0)}
    provider.reset = True
    snap = snapshot()
    driver.drive(snap, [target(1000)])
    clock.advance(30)
    driver.drive(snap, [target(1000)])
    assert kinds(git) == ["started", "interval:skipped"]


def test_auto_reverted_version_is_not_proposed_again(
    rig, caplog: pytest.LogCaptureFixture
) -> None:
    driver, git, _, _ = rig
    git.messages = ["rollouts: revert hp2\n\nRollouts-Model: hp2\nRollouts-Reverted-Version: 2\n"]
    result = driver.drive(snapshot(), [target(None)])
    assert result.statuses["hp2"].phase == "blocked"
    # Said once, at WARNING, with the fix; not again on the next tick.
    driver.drive(snapshot(), [target(None)])
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "canary.retry: true" in warnings[0].getMessage()
    assert warnings[0].event == "blocked"  # type: ignore[attr-defined]
    assert "canary" not in result.desired.models["hp2"].labels
    retry = SPEC.replace("    version: 2\n", "    version: 2\n    retry: true\n")
    driver2 = RolloutDriver(git, git, FakeProvider())
    assert driver2.drive(snapshot(retry), [target(None)]).statuses["hp2"].phase == "wait_ready"


def test_canary_ready_needs_every_target_to_start_and_every_reachable_one_after() -> None:
    down = ObservedTarget("t2", False, error="x")
    assert canary_ready("hp2", 2, 1000, [target(1000), down])
    # No analysis starts while a target cannot be seen.
    assert not canary_ready("hp2", 2, 1000, [target(1000), down], started=False)
    assert canary_ready("hp2", 2, 1000, [target(1000), target(1000)], started=False)
    assert not canary_ready("hp2", 2, 1000, [target(1000), target(500)])
    assert not canary_ready("hp2", 2, 1000, [target(1000, canary_state="LOADING")])
    assert not canary_ready("hp2", 2, 1000, [down])


def test_canary_that_failed_to_load_is_failed_and_taken_out(rig) -> None:
    driver, git, _, _ = rig
    broken = ObservedModel(
        "hp2", {1: "AVAILABLE", 2: "END"}, {"stable": 1}, errors={2: "SavedModel file missing"}
    )
    observed = [ObservedTarget("t1", True, {"hp2": broken})]
    result = driver.drive(snapshot(), observed)
    assert result.statuses["hp2"].phase == "fail"
    model = result.desired.models["hp2"]
    assert model.split is None and model.versions == {1} and "canary" not in model.labels
    assert [p.kind for p in result.pending] == ["fail"]
    assert "failed to load: t1: SavedModel file missing" in result.pending[0].summary
    assert kinds(git) == ["verdict:fail"]
    # The next tick (the version now gone from the target) carries out the same verdict.
    again = driver.drive(snapshot(), [target(None, canary_state="END")])
    assert [p.kind for p in again.pending] == ["fail"] and kinds(git) == ["verdict:fail"]


def test_load_error_on_an_unreachable_or_other_version_is_ignored() -> None:
    stale = ObservedModel("hp2", {2: "END", 3: "END"}, errors={3: "bad"})
    assert canary_load_error("hp2", 2, [ObservedTarget("t1", True, {"hp2": stale})]) == ""
    failed = ObservedModel("hp2", {2: "END"}, errors={2: "bad"})
    assert canary_load_error("hp2", 2, [ObservedTarget("t1", False, {"hp2": failed})]) == ""
    assert canary_load_error("hp2", 2, [ObservedTarget("t1", True, {"hp2": failed})]) == "t1: bad"


def test_verdict_is_acted_on_in_the_pass_that_judged_the_last_interval(rig) -> None:
    driver, git, provider, clock = rig
    provider.windows = {2: VersionWindow(100, 40), 1: VersionWindow(900, 0)}
    snap = snapshot()
    driver.drive(snap, [target(1000)])
    clock.advance(30)
    first = driver.drive(snap, [target(1000)])
    assert first.statuses["hp2"].phase == "analyse" and first.pending == []
    assert first.next_due == clock() + 30  # the next interval, not a fixed tick
    clock.advance(30)
    second = driver.drive(snap, [target(1000)])
    assert second.statuses["hp2"].phase == "fail"
    assert [p.kind for p in second.pending] == ["fail"]
    assert kinds(git)[-2:] == ["interval:fail", "verdict:fail"]


def test_canary_restored_by_reverting_its_promotion_is_held(rig) -> None:
    driver, git, _, _ = rig
    promotion = "a" * 40
    git.commit_messages = {
        "start-commit": 'Revert "rollouts: promote hp2 to 2"\n\n'
        f"This reverts commit {promotion}.",
        promotion: "rollouts: promote hp2 to 2\n\n"
        "Rollouts-Model: hp2\nRollouts-Promoted-Version: 2\n",
    }
    result = driver.drive(snapshot(), [target(1000)])
    assert result.statuses["hp2"].phase == "held"
    model = result.desired.models["hp2"]
    assert "canary" not in model.labels and model.split is None and model.versions == {1}
    assert kinds(git) == []
    # retry: true runs it again
    retry = SPEC.replace("    version: 2\n", "    version: 2\n    retry: true\n")
    assert driver.drive(snapshot(retry), [target(1000)]).statuses["hp2"].phase == "start"


# FakeGit has the write path too: files at the remote head and the commits made.
WritingGit = FakeGit


def _pending_promotion(git: WritingGit) -> Pending:
    provider, clock = FakeProvider(), FakeClock()
    provider.windows = {2: VersionWindow(100, 0), 1: VersionWindow(900, 0)}
    driver = RolloutDriver(git, git, provider, clock=clock)
    snap = snapshot()
    for weight, advance in ((1000, 0), (1000, 30), (1000, 30), (5000, 0), (5000, 30),
                            (5000, 30)):
        clock.advance(advance)
        result = driver.drive(snap, [target(weight)])
    [pending] = result.pending
    return pending


def test_promotion_commit_edits_the_spec_with_trailers() -> None:
    git = WritingGit(files={"rollouts/hp2.yaml": SPEC})
    pending = _pending_promotion(git)
    assert RolloutDriver(git, git, FakeProvider()).finish(pending) == "sha1"
    [(path, text, message, pairs)] = git.commits
    assert path == "rollouts/hp2.yaml" and "stable: 2" in text and "canary:" not in text
    assert message.startswith("rollouts: promote hp2 to 2\n\nAnalysis passed: 2 interval(s)")
    assert ("Rollouts-Promoted-Version", "2") in pairs
    assert ("Rollouts-Intervals", "2 passed, 0 failed, 0 not judged") in pairs


@pytest.mark.parametrize("edit", [
    SPEC.replace("    version: 2\n", "    version: 3\n"),  # a person bumped the canary
    SPEC.replace("  canary:\n    version: 2\n", "  old:\n    version: 2\n"),  # or removed it
    None,  # or deleted the file
])
def test_a_verdict_is_not_written_over_a_persons_edit_of_the_canary(edit: str | None) -> None:
    git = WritingGit(files={"rollouts/hp2.yaml": SPEC})
    pending = _pending_promotion(git)
    git.files = {} if edit is None else {"rollouts/hp2.yaml": edit}
    assert RolloutDriver(git, git, FakeProvider()).finish(pending) is None
    assert git.commits == []


def test_no_credential_reaches_notes_status_or_commits() -> None:
    leaky = "http://scraper:s3cr3t@127.0.0.1:9/metrics: scrape failed: refused"

    class LeakyProvider(FakeProvider):
        def read(self, model: str, versions: Sequence[int], start: float, end: float) -> Reading:
            if not self.windows:
                return Reading(problems=(leaky,))
            return super().read(model, versions, start, end)

    git = WritingGit(files={"rollouts/hp2.yaml": SPEC})
    provider, clock = LeakyProvider(), FakeClock()
    driver = RolloutDriver(git, git, provider, clock=clock)
    snap = snapshot()
    driver.drive(snap, [target(1000)])
    clock.advance(30)
    status = driver.drive(snap, [target(1000)]).statuses["hp2"]
    assert "not measured: http://***@127.0.0.1:9/metrics" in str(status.intervals)
    provider.windows = {2: VersionWindow(100, 40), 1: VersionWindow(900, 0)}
    for _ in range(2):
        clock.advance(30)
        result = driver.drive(snap, [target(1000)])
    [pending] = result.pending
    pending = Pending(pending.kind, pending.model, pending.version, pending.path,
                      pending.canary_commit, pending.summary + "\n" + leaky,
                      pending.analysis + (("Rollouts-Note", leaky),))
    assert driver.finish(pending) == "sha1"
    written = "\n".join(git.notes("start-commit")) + str(git.commits) + str(rollout_doc(status))
    assert "s3cr3t" not in written and "scraper:" not in written


# --- drive_preview: what `rollouts plan` shows -----------------------------------------

def _journal(git: FakeGit, *events: Event) -> None:
    git.notes_by_commit["start-commit"] = [journal_line(e, e.kind) for e in events]


def _untouched(git: FakeGit, before: dict[str, list[str]]) -> None:
    """The preview wrote nothing: no note, no notes push, no commit."""
    assert git.notes_by_commit == before and git.pushes == 0 and git.commits == []


def test_preview_of_a_spec_without_canary_is_its_desired_state(rig) -> None:
    driver, git, _, _ = rig
    stable_only = SPEC[: SPEC.index("  canary:")]
    snap = snapshot(stable_only)
    preview = driver.drive_preview(snap, [target(None)])
    assert preview.desired == snap.desired and preview.held == {}
    _untouched(git, {})


def test_preview_of_a_new_canary_is_its_first_step_and_records_nothing(rig) -> None:
    driver, git, _, _ = rig
    preview = driver.drive_preview(snapshot(), [target(None, canary_state="LOADING")])
    model = preview.desired.models["hp2"]
    assert model.labels == {"stable": 1, "canary": 2} and model.versions == {1, 2}
    assert model.split is not None and model.split.canary_weight_bp == 1000
    assert preview.held == {}
    _untouched(git, {})  # drive would journal "proposed"; the preview does not


def test_preview_follows_the_journal_to_the_current_step(rig) -> None:
    driver, git, _, _ = rig
    _journal(git, Event("started", 100.0, "hp2", 2), Event("step", 200.0, "hp2", 2, 1))
    before = dict(git.notes_by_commit)
    preview = driver.drive_preview(snapshot(), [target(1000)])
    split = preview.desired.models["hp2"].split
    assert split is not None and split.canary_weight_bp == 5000
    _untouched(git, before)


def test_preview_of_a_recorded_failure_takes_the_canary_out(rig) -> None:
    driver, git, _, _ = rig
    _journal(git, Event("started", 100.0, "hp2", 2),
             Event("verdict", 200.0, "hp2", 2, 0, "fail"))
    before = dict(git.notes_by_commit)
    model = driver.drive_preview(snapshot(), [target(1000)]).desired.models["hp2"]
    assert "canary" not in model.labels and model.split is None and model.versions == {1}
    _untouched(git, before)


def test_preview_of_another_versions_journal_ignores_it(rig) -> None:
    driver, git, _, _ = rig
    _journal(git, Event("started", 100.0, "hp2", 3), Event("verdict", 200.0, "hp2", 3, 0, "fail"))
    split = driver.drive_preview(snapshot(), [target(1000)]).desired.models["hp2"].split
    assert split is not None and split.canary_weight_bp == 1000


@pytest.mark.parametrize("gate", ["blocked", "held"])
def test_preview_holds_back_what_drive_holds_back(rig, gate: str) -> None:
    driver, git, _, _ = rig
    if gate == "blocked":
        git.messages = ["rollouts: revert hp2\n\nRollouts-Model: hp2\n"
                        "Rollouts-Reverted-Version: 2\n"]
    else:
        promotion = "b" * 40
        git.commit_messages = {
            "start-commit": f'Revert "rollouts: promote hp2 to 2"\n\nThis reverts commit '
                            f"{promotion}.",
            promotion: "rollouts: promote hp2 to 2\n\nRollouts-Model: hp2\n"
                       "Rollouts-Promoted-Version: 2\n",
        }
    preview = driver.drive_preview(snapshot(), [target(1000)])
    assert preview.held["hp2"].phase == gate
    assert "canary.retry: true" in preview.held["hp2"].message
    model = preview.desired.models["hp2"]
    assert "canary" not in model.labels and model.split is None
    # The same answer as the tick itself, which writes nothing for it either.
    result = driver.drive(snapshot(), [target(1000)])
    assert result.statuses["hp2"].phase == gate and result.desired == preview.desired
    _untouched(git, {})
    retry = SPEC.replace("    version: 2\n", "    version: 2\n    retry: true\n")
    assert driver.drive_preview(snapshot(retry), [target(1000)]).held == {}


HOLDING_SPEC = SPEC.replace("      failureLimit: 2\n",
                            "      failureLimit: 2\n      onFailure: pause\n")


def test_on_failure_pause_holds_the_failed_canary_loaded_at_weight_zero(rig) -> None:
    driver, git, provider, clock = rig
    told: list[Notice] = []
    driver.notify = told.append
    provider.windows = {2: VersionWindow(100, 40), 1: VersionWindow(900, 0)}
    snap = snapshot(HOLDING_SPEC)
    driver.drive(snap, [target(1000)])
    for _ in range(2):
        clock.advance(30)
        result = driver.drive(snap, [target(1000)])
    status = result.statuses["hp2"]
    assert status.phase == "failed_held" and status.weight_bp == 0
    assert "held at weight 0" in status.message and "40.00% err" in status.message
    model = result.desired.models["hp2"]
    # Still loaded and labelled, with no split: no weighted or matched request reaches it.
    assert model.split is None and model.labels == {"stable": 1, "canary": 2}
    assert model.versions == {1, 2}
    assert result.pending == []  # nothing for git: no revert
    assert kinds(git)[-1] == "verdict:held"
    held = [n for n in told if n.event == "failed_held"]
    assert len(held) == 1 and held[0].verdict == "held" and "40.00% err" in held[0].summary
    # With the analysis behind it, as a written verdict's trailers give it.
    assert held[0].details["Rollouts-Intervals"] == "0 passed, 2 failed, 0 not judged"
    assert "40.00% err" in held[0].details["Rollouts-Last-Interval"]
    doc = rollout_doc(status)
    assert doc["phase"] == "failed_held" and doc["weightBp"] == 0
    # Later ticks, and a restarted driver on the same journal, keep holding: no
    # second verdict, no revert, no interval judged, nobody told again.
    for fresh in (driver, RolloutDriver(git, git, provider, clock=clock, notify=told.append)):
        clock.advance(120)
        again = fresh.drive(snap, [target(None)])
        assert again.statuses["hp2"].phase == "failed_held" and again.pending == []
        assert again.desired.models["hp2"].versions == {1, 2}
        assert again.next_due is None
    assert kinds(git).count("verdict:held") == 1 and kinds(git).count("interval:fail") == 2
    assert [n.event for n in told].count("failed_held") == 1
    preview = driver.drive_preview(snap, [target(None)]).desired.models["hp2"]
    assert preview.split is None and preview.labels == {"stable": 1, "canary": 2}


def test_a_retry_raises_the_attempt_and_starts_a_fresh_journal() -> None:
    starts: list[tuple[str, bool]] = []

    class AttemptGit(FakeGit):
        def find_commit_that_set(self, head: str, path: str,
                                 predicate: Callable[[str | None], bool]) -> str:
            retried = SPEC.replace("    version: 2\n", "    version: 2\n    attempt: 2\n")
            found = "retry-commit" if predicate(retried) else "start-commit"
            starts.append((found, predicate(SPEC)))
            return found

    git, provider, clock = AttemptGit(), FakeProvider(), FakeClock()
    driver = RolloutDriver(git, git, provider, clock=clock)
    _journal(git, Event("started", 100.0, "hp2", 2),
             Event("verdict", 200.0, "hp2", 2, 0, "held"))
    assert driver.drive(snapshot(HOLDING_SPEC), [target(None)]).statuses["hp2"].phase == \
        "failed_held"
    retried = HOLDING_SPEC.replace("    version: 2\n", "    version: 2\n    attempt: 2\n")
    result = driver.drive(snapshot(retried), [target(None)])
    # The retry commit is the new run's start: a fresh journal at the first step.
    assert starts[-1] == ("retry-commit", False)
    assert result.statuses["hp2"].phase == "wait_ready"
    split = result.desired.models["hp2"].split
    assert split is not None and split.canary_weight_bp == 1000
    assert [e.kind for e in parse_journal(git.notes("retry-commit"))] == ["proposed"]


def test_a_persons_abort_is_told_once_it_is_carried_out(rig) -> None:
    from controller.decide.actions import plan_action

    driver, git, _, clock = rig
    told: list[Notice] = []
    driver.notify = driver.aborts.notify = told.append
    driver.drive(snapshot(), [target(1000)])
    abort = plan_action("abort", SPEC, "hp2", by="Pat <pat@example.test>", reason="bad feed")
    git.commit_messages["abort-sha"] = abort.message
    gone, problems = desired_from_tree([("rollouts/hp2.yaml", abort.text)], "head2", "/models")
    assert gone is not None and not problems
    still = target(None)  # the canary is still loaded: the abort is not carried out yet
    assert driver.drive(gone, [still]).statuses == {}
    assert [n.event for n in told if n.event == "aborted"] == []
    unloaded = ObservedTarget("t1", True, {"hp2": ObservedModel("hp2", {1: "AVAILABLE"},
                                                               {"stable": 1})})
    clock.advance(5)
    driver.drive(gone, [unloaded])
    driver.drive(gone, [unloaded])
    aborted = [n for n in told if n.event == "aborted"]
    assert len(aborted) == 1
    notice = aborted[0]
    assert (notice.model, notice.canary_version, notice.stable_version, notice.commit,
            notice.verdict) == ("hp2", 2, 1, "abort-sha", "abort")
    assert notice.details == {"Rollouts-Requested-By": "Pat <pat@example.test>",
                              "Rollouts-Reason": "bad feed"}
    assert "aborted by Pat <pat@example.test>" in notice.summary
    assert kinds(git)[-1] == "aborted:abort"  # the run's journal ends with it


def test_a_canary_removed_without_an_abort_commit_is_not_told_as_aborted(rig) -> None:
    driver, git, _, _ = rig
    told: list[Notice] = []
    driver.aborts.notify = told.append
    driver.drive(snapshot(), [target(1000)])
    git.commit_messages["edit-sha"] = "remove the canary by hand"
    gone, _ = desired_from_tree([("rollouts/hp2.yaml", SPEC.split("  canary:")[0])], "head2",
                                "/models")
    assert gone is not None
    unloaded = ObservedTarget("t1", True, {"hp2": ObservedModel("hp2", {1: "AVAILABLE"})})
    driver.drive(gone, [unloaded])
    assert told == [] and "aborted:abort" not in kinds(git)
