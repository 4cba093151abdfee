"""Drives each canary: journal in git notes, analysis, promotion and revert commits.

Per reconcile tick, for every model whose spec has a canary:

1. Find the commit that started the canary (first-parent history of its file)
   and read the journal of events from that commit's notes.
2. Ask the pure `progress.decide` what is next, given whether the canary is
   ready (AVAILABLE, labelled and split on every target; once started, every
   reachable one) and whether
   it failed to load anywhere (a canary that cannot load is a failed canary).
3. Record what happens as a new journal line, pushed before anything acts on it,
   so a restarted controller repeats nothing and loses nothing.

A failed canary comes out of traffic first: the driver returns a desired state
without it, the runner reconciles that, and only then `finish` writes the
revert. With `analysis.onFailure: pause` the failure is journaled as a `held`
verdict instead: the canary stays loaded and labelled with no split, nothing is
written to git, and every later tick (a restarted controller's too) keeps it so
until a person's commit changes the spec. A promotion is committed first and
applied from git afterwards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from controller.adapters.gitresults import (
    GitError,
    RevertResult,
    WriteOutcome,
    WriteResult,
    WriteStatus,
)
from controller.adapters.journal import NoteStore, journal_line, parse_journal
from controller.adapters.metrics import MetricsProvider
from controller.adapters.redact import redact
from controller.decide import trailers
from controller.decide.analysis import judge_interval
from controller.decide.desired import Snapshot, held_out_of_traffic, with_weight
from controller.decide.fleet import DesiredModel, DesiredState, ObservedTarget
from controller.decide.gates import (
    canary_load_error,
    canary_ready,
    history_gate,
    is_promotion_of,
    reverted_commit,
)
from controller.decide.notices import Event as NoticeEvent
from controller.decide.notices import Notice
from controller.decide.progress import CanaryPlan, Decision, Event, decide, fold
from controller.decide.pull_requests import current_run
from controller.decide.verdict_text import analysis_trailers, interval_detail, verdict_summary
from controller.runtime.aborts import AbortWatch, Running
from controller.runtime.logfields import fields
from controller.runtime.pulls import PullCanary
from controller.runtime.writeback import (
    BranchStatus,
    BranchWriter,
    verdict_branch,
    write_to_branch,
)
from controller.spec import yamledit
from controller.spec.model import RolloutSpec

log = logging.getLogger(__name__)


class CommitMessage(Protocol):
    @property
    def sha(self) -> str: ...

    @property
    def message(self) -> str: ...


class RolloutGit(Protocol):
    """The git roles the driver plays: reading spec history and writing its verdicts
    (`controller.adapters.gitrepo.GitRepo`, or a fake in tests). The journal is a
    separate role (`controller.adapters.journal.NoteStore`)."""

    def log(self, rev: str, /, *, max_count: int = ...) -> Sequence[CommitMessage]: ...

    def find_commit_that_set(
        self, head: str, path: str, predicate: Callable[[str | None], bool], /
    ) -> str | None: ...

    def read_file(self, commit: str, path: str, /) -> str | None: ...

    def write_with_retry(
        self, make_change: Callable[[str], WriteResult | None], /
    ) -> WriteOutcome: ...

    def commit_file_edit(
        self, base_commit: str, path: str, new_text: str, message: str,
        trailers: Sequence[tuple[str, str]] = ..., /,
    ) -> str: ...

    def revert_or_remove_canary(
        self, base: str, commit: str, path: str, model_name: str, message: str,
        trailers: Sequence[tuple[str, str]] = ..., /,
    ) -> RevertResult: ...


@dataclass
class RolloutStatus:
    """Where one canary stands (`controller.runtime.status` shows it)."""

    model: str
    version: int
    phase: str
    step: int
    steps: int
    weight_bp: int
    canary_commit: str = ""
    message: str = ""
    intervals: list[dict[str, Any]] = field(default_factory=list)
    due_at: float | None = None  # wall-clock time of this canary's next decision
    # The journal's other events (proposed, started, step, verdict), for the dashboard.
    events: list[dict[str, Any]] = field(default_factory=list)
    awaiting_merge: str = ""  # the branch its verdict waits on (write-back "branch")
    pull_request: str = ""  # the pull request it runs from (`--pull-requests`), or ""


# The phase of a failed canary that `analysis.onFailure: pause` holds for a person.
FAILED_HELD = "failed_held"
# The phase of a pull request's canary that passed: merging it promotes.
READY_TO_MERGE = "ready_to_merge"

# Journal events that people are told of: (kind, verdict outcome) -> notice event.
# Promotions and reverts are told when their commit is written (`_tell`).
_NOTICE_OF: dict[tuple[str, str], NoticeEvent] = {
    ("started", ""): "canary_started",
    ("paused", ""): "paused",
    ("step", ""): "step_advanced",
    ("verdict", "ready"): "ready_to_promote",
    ("verdict", "held"): "failed_held",
}


@dataclass
class Pending:
    """A verdict recorded in the journal and not yet written to git."""

    kind: str  # "promote" | "fail"
    model: str
    version: int
    path: str
    canary_commit: str
    summary: str
    # The analysis in trailer form (Rollouts-Intervals, Rollouts-Last-Interval).
    analysis: tuple[tuple[str, str], ...] = ()


@dataclass
class DriveResult:
    desired: DesiredState
    statuses: dict[str, RolloutStatus]
    pending: list[Pending]
    # When the earliest canary next needs a tick (an interval or a hold ends).
    next_due: float | None = None


@dataclass
class Preview:
    """What `drive` would reconcile to, and the canaries it would keep out of traffic."""

    desired: DesiredState
    held: dict[str, RolloutStatus]


def without_canary(model: DesiredModel) -> DesiredModel:
    canary = model.labels.get("canary")
    labels = {k: v for k, v in model.labels.items() if k != "canary"}
    keep = set(labels.values())
    versions = frozenset(v for v in model.versions if v != canary or v in keep)
    return DesiredModel(
        model.name, model.base_path, model.platform, versions, labels, None, model.transition
    )


class RolloutDriver:
    def __init__(
        self,
        git: RolloutGit,
        journal: NoteStore,
        provider: MetricsProvider | None,
        *,
        clock: Callable[[], float] = time.time,
        branch_writer: BranchWriter | None = None,
        notify: Callable[[Notice], None] | None = None,
        journal_home: Callable[[str, RolloutSpec], str] | None = None,
    ) -> None:
        """`branch_writer`: propose each verdict on a branch of its own (write-back
        "branch") instead of pushing it onto the followed branch. `journal_home`: where
        the journal of the canary a commit started lives (`PullRequestCanaries.
        journal_home`: a merged pull request's head; default: that commit)."""
        self.journal_home = journal_home or (lambda start, _spec: start)
        self.git = git
        self.journal = journal
        self.provider = provider
        self.clock = clock
        self.branch_writer = branch_writer
        # Told of each journaled step and written verdict (`runtime.notify.Notifier.send`).
        self.notify = notify or (lambda _notice: None)
        self._stable: dict[str, int | None] = {}  # per model, at its last decision
        # Verdicts whose write-back failure people were told of (once, not every retry).
        self._failure_told: set[tuple[str, int, str]] = set()
        # Per model: the branch its verdict waits on to be merged (write-back "branch").
        self.awaiting_merge: dict[str, str] = {}
        # Verdict commits that could not be written (push error, lost races, a taken
        # branch), counted by kind, for the controller's own metrics.
        self.write_failures: dict[str, int] = {}
        # Verdict commits written (or proposed on their branch), by kind.
        self.verdicts: dict[str, int] = {}
        self._start_commits: dict[tuple[str, str, int, int], str | None] = {}
        self._reverted: dict[str, Mapping[str, frozenset[int]]] = {}
        self._promotion_reverts: dict[tuple[str, str, int], bool] = {}
        self._warned: set[tuple[str, str, int]] = set()
        # A person's abort of a canary this driver ran is told once it is carried out.
        self.aborts = AbortWatch(git, journal, self.notify, clock)

    # -- per tick --------------------------------------------------------
    def drive(
        self,
        snapshot: Snapshot,
        observed: Sequence[ObservedTarget],
        pulls: Mapping[str, PullCanary] | None = None,
    ) -> DriveResult:
        """One tick for every canary of `snapshot`. `pulls`: the models whose canary
        runs from a pull request (`runtime.pulls`): journaled on its head; a pass is
        "ready to merge" and a failure only leaves traffic, neither writes a commit."""
        pulls = pulls or {}
        models = dict(snapshot.desired.models)
        statuses: dict[str, RolloutStatus] = {}
        pending: list[Pending] = []
        notes_dirty = False
        next_due: float | None = None
        running: dict[str, Running] = {}
        for name in sorted(models):
            plan = snapshot.canary_plan(name)
            if plan is None:
                continue
            document = snapshot.documents[name]
            pull = pulls.get(name)
            start = pull.head if pull is not None else self.start_commit(
                snapshot.commit, document.path, name, plan.version, _attempt(document.spec))
            held = self.held_back(snapshot, name, plan, start)
            if held is not None:
                models[name] = without_canary(models[name])
                statuses[name] = held
                self._warn_once(snapshot.commit, held)
                continue
            if start is None:
                log.warning("%s: cannot find the commit that started canary %s", name, plan.version)
                continue
            if pull is None:
                running[name] = Running(plan.version, start)
            journal = start if pull is not None else self.journal_home(start, document.spec)
            events = self._events(journal, plan)
            now = self.clock()
            state = fold(plan, events)
            weight = plan.steps[min(state.step, len(plan.steps) - 1)].weight_bp
            ready = canary_ready(name, plan.version, weight, observed,
                                 started=state.started_at is not None)
            load_error = canary_load_error(name, plan.version, observed)
            decision = decide(plan, events, ready=ready, now=now, load_error=load_error)
            recorded, status = self._act(snapshot, plan, decision, events, journal, now, pull)
            # What an interval just judged (a failure limit reached, a hold over)
            # is acted on in this same pass, not one tick later.
            for _ in range(3):
                if not recorded or decision.kind not in ("analyse", "start"):
                    break
                notes_dirty = True
                events = self._events(journal, plan)
                follow = decide(plan, events, ready=ready, now=now, load_error=load_error)
                if follow.kind in ("wait", "analyse", "wait_ready", "hold"):
                    status.due_at = follow.due_at
                    if follow.kind == "hold":
                        status.phase, status.message = "paused", follow.reason
                    break
                decision = follow
                recorded, status = self._act(snapshot, plan, decision, events, journal, now,
                                             pull)
            notes_dirty |= recorded
            if decision.kind in ("wait", "hold"):
                status.due_at = decision.due_at
            if status.due_at is not None:
                next_due = status.due_at if next_due is None else min(next_due, status.due_at)
            statuses[name] = status
            if decision.kind == "fail":
                models[name] = without_canary(models[name])
            elif decision.kind == "hold_failed":
                models[name] = held_out_of_traffic(models[name])
            else:
                models[name] = with_weight(models[name], status.weight_bp)
            if decision.kind in ("promote", "fail") and pull is None:
                pending.append(
                    Pending(decision.kind, name, plan.version, document.path, start,
                            status.message, analysis_trailers(events))
                )
        notes_dirty |= self.aborts.tick(snapshot.desired, running, observed)
        if notes_dirty:
            result = self.journal.push_notes()
            if not result.ok:
                log.warning("pushing notes failed: %s", result.detail)
        # A verdict proposed on its own branch stops waiting once its change is on
        # the followed branch (the spec no longer has that canary: nothing pending).
        still = {p.model for p in pending}
        self.awaiting_merge = {m: b for m, b in self.awaiting_merge.items() if m in still}
        for model, branch in self.awaiting_merge.items():
            if model in statuses:
                statuses[model].awaiting_merge = branch
        return DriveResult(
            DesiredState(snapshot.desired.commit, models), statuses, pending, next_due
        )

    def drive_preview(self, snapshot: Snapshot, observed: Sequence[ObservedTarget]) -> Preview:
        """The desired state `drive` would reconcile to, without acting or writing.

        What `rollouts plan` shows: a held-back canary (blocked or held) is out, a
        recorded failure is out, any other canary is at its journaled step's weight.
        """
        models = dict(snapshot.desired.models)
        held: dict[str, RolloutStatus] = {}
        for name in sorted(models):
            plan = snapshot.canary_plan(name)
            if plan is None or snapshot.documents[name].spec.spec.canary is None:
                continue
            start = self.start_commit(
                snapshot.commit, snapshot.documents[name].path, name, plan.version,
                _attempt(snapshot.documents[name].spec),
            )
            status = self.held_back(snapshot, name, plan, start)
            if status is not None:
                models[name] = without_canary(models[name])
                held[name] = status
                continue
            events = self._events(self.journal_home(start, snapshot.documents[name].spec),
                                  plan) if start else []
            state = fold(plan, events)
            if state.verdict == "fail":
                models[name] = without_canary(models[name])
            elif state.verdict == "held":
                models[name] = held_out_of_traffic(models[name])
            else:
                weight = plan.steps[min(state.step, len(plan.steps) - 1)].weight_bp
                models[name] = with_weight(models[name], weight)
        return Preview(DesiredState(snapshot.desired.commit, models), held)

    def held_back(
        self, snapshot: Snapshot, name: str, plan: CanaryPlan, start: str | None
    ) -> RolloutStatus | None:
        """Why the spec's canary is kept out of traffic, or None if it may run.

        A version the controller reverted before is "blocked" and a canary that a
        person's revert of its promotion brought back is "held", both until the
        spec says `canary.retry: true`.
        """
        canary_spec = snapshot.documents[name].spec.spec.canary
        if canary_spec is None:
            return None
        gate = history_gate(
            plan.version,
            canary_spec.retry,
            reverted=self.reverted_versions(snapshot.commit).get(name, frozenset()),
            # Looked up only when it can matter: a retry lifts the hold anyway.
            promotion_reverted=start is not None and not canary_spec.retry
            and self.reverts_promotion(start, name, plan.version),
        )
        if gate is None:
            return None
        return RolloutStatus(name, plan.version, gate.phase, 0, len(plan.steps), 0, start or "",
                             message=gate.message)

    def _warn_once(self, head: str, status: RolloutStatus) -> None:
        """Say why a canary is kept out, once per head (not on every tick)."""
        key = (head, status.model, status.version)
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s: canary %s %s: %s", status.model, status.version, status.phase,
                        status.message,
                        extra=fields("blocked", model=status.model, commit=status.canary_commit))

    def _events(self, journal: str, plan: CanaryPlan) -> list[Event]:
        """The events of `plan`'s current run in the notes of `journal` (a pull request
        canary's earlier runs, before a `baseline` or `stopped` line, are history)."""
        events = parse_journal(self.journal.notes(journal))
        return list(current_run(events, plan.model, plan.version).events)

    def _act(
        self,
        snapshot: Snapshot,
        plan: CanaryPlan,
        decision: Decision,
        events: list[Event],
        start: str,
        now: float,
        pull: PullCanary | None = None,
    ) -> tuple[bool, RolloutStatus]:
        model = snapshot.desired.models.get(plan.model)
        self._stable[plan.model] = model.labels.get("stable") if model else None
        status = RolloutStatus(
            plan.model,
            plan.version,
            decision.kind,
            decision.step,
            len(plan.steps),
            decision.weight_bp,
            start,
            intervals=[
                e.detail | {"outcome": e.outcome, "at": e.at}
                for e in events
                if e.kind == "interval"
            ],
            events=[
                {"kind": e.kind, "at": e.at, "step": e.step, "outcome": e.outcome}
                for e in events
                if e.kind != "interval"
            ],
            pull_request=pull.pull if pull is not None else "",
        )
        kind = decision.kind
        if kind == "wait_ready" and not any(
            e.kind in ("proposed", "started") for e in events
            if e.model == plan.model and e.version == plan.version
        ):
            self._note(start, Event("proposed", now, plan.model, plan.version),
                       f"canary seen; waiting for it to be ready "
                       f"(progressDeadline {plan.progress_deadline_s:g}s)")
            return True, status
        if kind == "start":
            if self.provider is not None:
                self.provider.mark(now)
            self._note(
                start,
                Event("started", now, plan.model, plan.version),
                f"canary ready, analysis starts at {decision.weight_bp / 100:g}%",
            )
            return True, status
        if kind == "analyse" and decision.window is not None:
            event = self._analyse(snapshot, plan, decision, now)
            self._note(start, event, event.detail.get("summary", event.outcome))
            status.intervals.append(event.detail | {"outcome": event.outcome, "at": event.at})
            return True, status
        if kind in ("pause", "resume"):
            state = fold(plan, events)
            held = now - (state.hold_started_at or now)
            self._note(
                start,
                Event("paused" if kind == "pause" else "resumed", now, plan.model,
                      plan.version, decision.step),
                (f"paused at step {decision.step + 1}/{len(plan.steps)}, weight "
                 f"{decision.weight_bp / 100:g}%, {held:.0f}s of the hold done"
                 if kind == "pause" else
                 f"resumed at step {decision.step + 1}/{len(plan.steps)}: the hold goes on"),
            )
            return True, status
        if kind == "hold":
            status.phase = "paused"
            status.message = decision.reason
            return False, status
        if kind == "advance":
            if self.provider is not None:
                self.provider.mark(now)
            self._note(
                start,
                Event("step", now, plan.model, plan.version, decision.step),
                f"step {decision.step + 1}/{len(plan.steps)}: weight {decision.weight_bp / 100:g}%",
            )
            return True, status
        if kind in ("promote", "fail", "ready_to_promote", "hold_failed"):
            recorded = fold(plan, events).verdict
            outcome = {"promote": "promote", "fail": "fail", "hold_failed": "held"}.get(
                kind, "ready")
            summary = verdict_summary(events, kind, decision.reason)
            notice: NoticeEvent | None = None
            detail: dict[str, Any] = {}
            if pull is not None and kind != "hold_failed":
                summary, notice = _pull_verdict(pull, kind, summary)
                detail = {"summary": summary, "pull": pull.pull}
                if kind != "fail":
                    status.phase = READY_TO_MERGE
            status.message = summary
            if kind == "hold_failed":
                status.phase = FAILED_HELD
            if recorded != outcome:
                # The analysis behind it goes with the notice (ready_to_promote,
                # failed_held), as the trailers do with a written verdict's.
                self._note(
                    start,
                    Event("verdict", now, plan.model, plan.version, decision.step, outcome,
                          detail),
                    summary, notice, analysis_trailers(events),
                )
                return True, status
        return False, status

    def _analyse(
        self, snapshot: Snapshot, plan: CanaryPlan, decision: Decision, now: float
    ) -> Event:
        assert decision.window is not None
        begin, end = decision.window
        stable = snapshot.desired.models[plan.model].labels.get("stable")
        criteria = snapshot.criteria(plan.model)
        base = Event("interval", now, plan.model, plan.version, decision.step)
        if self.provider is None or criteria is None:
            return _with(base, "skipped", {"summary": "no metrics provider configured"})
        versions = [plan.version] + ([stable] if stable is not None else [])
        reading = self.provider.read(plan.model, versions, begin, end)
        if reading.counter_reset or not reading.windows:
            # The provider could not measure this interval (a target restarted or
            # was unreachable, no baseline after a controller restart): the gap is
            # neither a pass nor a failure.
            self.provider.mark(now)
            reason = redact("; ".join(reading.problems)) or "no metrics"
            return _with(base, "skipped", {"summary": f"not measured: {reason}"})
        verdict = judge_interval(
            criteria,
            reading.window(plan.version),
            reading.window(stable) if stable is not None else None,
        )
        return _with(base, verdict.outcome, interval_detail(verdict, decision.weight_bp))

    def _note(self, commit: str, event: Event, summary: str,
              notice: NoticeEvent | None = None,
              analysis: Sequence[tuple[str, str]] = ()) -> None:
        # A journal entry is one line (concurrent note merges stay lossless).
        # Notes are pushed and public to everyone who can read the repo: a
        # provider's error may quote a URL with credentials in it.
        line = redact(journal_line(event, " ".join(summary.split())))
        # A failed interval and a failed verdict are news; the rest is progress.
        failed = event.outcome == "fail"
        log.log(logging.WARNING if failed else logging.INFO, "%s", line[: line.find("{")].strip(),
                extra=fields(event.kind, model=event.model, commit=commit))
        self.journal.add_note(commit, line)
        kind = notice or _NOTICE_OF.get(
            (event.kind, event.outcome if event.kind == "verdict" else ""))
        if kind is not None:
            self.notify(Notice(kind, event.model, event.at, event.version,
                               self._stable.get(event.model), commit, event.outcome,
                               summary=redact(" ".join(summary.split())),
                               details={k: redact(v) for k, v in analysis}))

    # -- writing verdicts to git ------------------------------------------
    def finish(self, pending: Pending) -> str | None:
        """Write the promotion or revert commit; returns its sha once it is on the
        followed branch, or None (not needed, failed, or proposed on its own branch)."""
        if pending.kind == "promote":
            make = self._promotion(pending)
        else:
            make = self._revert(pending)
        if self.branch_writer is not None:
            self._finish_on_branch(self.branch_writer, pending, make)
            return None
        try:
            outcome = self.git.write_with_retry(make)
        except GitError as err:
            log.error("%s: writing the %s failed: %s", pending.model, pending.kind, err,
                      extra=fields("write_failed", model=pending.model,
                                   commit=pending.canary_commit))
            self._write_failed(pending)
            return None
        if outcome.status is WriteStatus.WRITTEN:
            sha = outcome.sha or ""
            kind = "promotion" if pending.kind == "promote" else "revert"
            log.log(
                logging.INFO if pending.kind == "promote" else logging.WARNING,
                "%s: %s of canary %s pushed as commit %s", pending.model, kind, pending.version,
                sha[:12], extra=fields(kind, model=pending.model, commit=sha),
            )
            self._tell(pending, "promoted" if pending.kind == "promote" else "reverted", sha)
            self._count(self.verdicts, pending)
            return outcome.sha
        if outcome.status is WriteStatus.EXHAUSTED:
            log.warning(
                "%s: lost every push race writing the %s; will retry", pending.model, pending.kind,
                extra=fields("write_failed", model=pending.model, commit=pending.canary_commit),
            )
            self._write_failed(pending)
        return None

    def _write_failed(self, pending: Pending) -> None:
        self._count(self.write_failures, pending)
        self._tell(pending, "write_back_failed", pending.canary_commit)

    @staticmethod
    def _count(counts: dict[str, int], pending: Pending) -> None:
        counts[pending.kind] = counts.get(pending.kind, 0) + 1

    def _tell(self, pending: Pending, kind: NoticeEvent, commit: str) -> None:
        key = (pending.model, pending.version, pending.kind)
        if kind == "write_back_failed":
            if key in self._failure_told:
                return
            self._failure_told.add(key)
        else:
            self._failure_told.discard(key)
        self.notify(Notice(
            kind, pending.model, self.clock(), pending.version, self._stable.get(pending.model),
            commit, "pass" if pending.kind == "promote" else "fail",
            summary=redact(pending.summary), details=dict(pending.analysis),
        ))

    def _finish_on_branch(
        self, writer: BranchWriter, pending: Pending, make: Callable[[str], WriteResult | None]
    ) -> None:
        branch = verdict_branch(pending.model, pending.kind, pending.version)
        outcome = write_to_branch(writer, branch, pending.canary_commit, make)
        if outcome.status is BranchStatus.PUSHED:
            self._count(self.verdicts, pending)
            log.info(
                "%s: %s commit %s pushed to branch %s; the canary is held until it reaches %s",
                pending.model, pending.kind, outcome.sha[:12], branch, writer.branch,
            )
        elif outcome.status is BranchStatus.FAILED:
            log.warning("%s: proposing the %s on %s failed: %s", pending.model,
                        pending.kind, branch, redact(outcome.detail))
            self._write_failed(pending)
        if outcome.status in (BranchStatus.PUSHED, BranchStatus.WAITING):
            self.awaiting_merge[pending.model] = branch
        else:
            self.awaiting_merge.pop(pending.model, None)

    def _still_current(self, head: str, pending: Pending) -> bool:
        text = self.git.read_file(head, pending.path)
        if text is None:
            return False
        try:
            return yamledit.canary_version(text, pending.model) == pending.version
        except yamledit.YamlEditError:
            return False

    def _promotion(self, pending: Pending) -> Callable[[str], WriteResult | None]:
        def make(head: str) -> WriteResult | None:
            if not self._still_current(head, pending):
                return None  # someone changed this canary meanwhile: re-plan
            text = self.git.read_file(head, pending.path) or ""
            edited = yamledit.promote(text, pending.model)
            message = f"rollouts: promote {pending.model} to {pending.version}\n\n{pending.summary}"
            pairs = trailers.RolloutTrailers(
                model=pending.model,
                verdict="pass",
                promoted_version=pending.version,
                canary_commit=pending.canary_commit,
                extra=pending.analysis,
            ).to_pairs()
            sha = self.git.commit_file_edit(
                head, pending.path, edited, redact(message), _redacted(pairs)
            )
            return WriteResult(sha)

        return make

    def _revert(self, pending: Pending) -> Callable[[str], WriteResult | None]:
        def make(head: str) -> WriteResult | None:
            if not self._still_current(head, pending):
                return None
            message = (
                f"rollouts: revert {pending.model} canary {pending.version}\n\n{pending.summary}"
            )
            pairs = trailers.RolloutTrailers(
                model=pending.model,
                verdict="fail",
                reverted_version=pending.version,
                canary_commit=pending.canary_commit,
                extra=pending.analysis,
            ).to_pairs()
            result = self.git.revert_or_remove_canary(
                head, pending.canary_commit, pending.path, pending.model, redact(message),
                _redacted(pairs),
            )
            return WriteResult(result.sha)

        return make

    # -- history lookups (cached per head) --------------------------------
    def start_commit(
        self, head: str, path: str, model: str, version: int, attempt: int = 1
    ) -> str | None:
        """The commit that started this run of the canary: the one that set its version,
        or the later one that raised `canary.attempt` (a retry starts a fresh journal)."""
        key = (head, model, version, attempt)
        if key not in self._start_commits:

            def sets_version(text: str | None) -> bool:
                if text is None:
                    return False
                try:
                    return yamledit.canary_run(text, model) == (version, attempt)
                except yamledit.YamlEditError:
                    return False

            self._start_commits[key] = self.git.find_commit_that_set(head, path, sets_version)
        return self._start_commits[key]

    def reverts_promotion(self, commit: str, model: str, version: int) -> bool:
        """Whether `commit` is a `git revert` of our promotion of `model` to `version`."""
        key = (commit, model, version)
        if key not in self._promotion_reverts:
            found = False
            infos = self.git.log(commit, max_count=1)
            reverted_sha = reverted_commit(infos[0].message) if infos else None
            if reverted_sha is not None:
                try:
                    reverted = self.git.log(reverted_sha, max_count=1)
                except GitError:
                    reverted = []
                found = bool(reverted) and is_promotion_of(reverted[0].message, model, version)
            self._promotion_reverts[key] = found
        return self._promotion_reverts[key]

    def reverted_versions(self, head: str) -> Mapping[str, frozenset[int]]:
        if head not in self._reverted:
            messages = [info.message for info in self.git.log(head, max_count=1000)]
            self._reverted = {head: trailers.auto_reverted_versions(messages)}
        return self._reverted[head]


def _pull_verdict(pull: PullCanary, kind: str, summary: str) -> tuple[str, NoticeEvent]:
    """A pull request canary's verdict in words, and what people are told: a pass is
    ready to merge; a failure left traffic, and there is nothing on the followed branch
    to revert."""
    if kind == "fail":
        return (f"{summary} Pull request {pull.pull}'s canary is out of traffic; the followed "
                "branch is untouched (nothing to revert).", "reverted")
    return f"{summary} Pull request {pull.pull} is ready to merge: merging promotes.", \
        "ready_to_merge"


def _attempt(spec: RolloutSpec) -> int:
    canary = spec.spec.canary
    return canary.attempt if canary is not None else 1


def _with(event: Event, outcome: str, detail: dict[str, Any]) -> Event:
    return Event(event.kind, event.at, event.model, event.version, event.step, outcome, detail)


def _redacted(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(key, redact(value)) for key, value in pairs]
