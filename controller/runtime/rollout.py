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

The driver's git reads of history are `canary_history`'s, writing a verdict to git
is `verdicts`', and what it reports per canary is `rollout_status`'.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from controller.adapters.journal import NoteStore, journal_line, parse_journal
from controller.adapters.metrics import MetricsProvider
from controller.adapters.redact import redact
from controller.decide.analysis import judge_interval
from controller.decide.desired import Snapshot, held_out_of_traffic, with_weight
from controller.decide.fleet import DesiredModel, DesiredState, ObservedTarget
from controller.decide.gates import canary_load_error, canary_ready, history_gate
from controller.decide.notices import Event as NoticeEvent
from controller.decide.notices import Notice
from controller.decide.progress import CanaryPlan, Decision, Event, decide, fold
from controller.decide.pull_requests import current_run
from controller.decide.verdict_text import analysis_trailers, interval_detail, verdict_summary
from controller.runtime.aborts import AbortWatch, Running
from controller.runtime.canary_history import CanaryHistory, HistoryGit
from controller.runtime.logfields import fields
from controller.runtime.pulls import PullCanary
from controller.runtime.rollout_status import FAILED_HELD, READY_TO_MERGE, RolloutStatus
from controller.runtime.verdicts import Pending, VerdictGit, VerdictWriter
from controller.runtime.writeback import BranchWriter
from controller.spec.model import RolloutSpec

log = logging.getLogger(__name__)


class RolloutGit(HistoryGit, VerdictGit, Protocol):
    """The git roles the driver plays: reading spec history (`canary_history`) and writing
    its verdicts (`verdicts`); `controller.adapters.gitrepo.GitRepo`, or a fake in tests.
    The journal is a separate role (`controller.adapters.journal.NoteStore`)."""


# Journal events that people are told of: (kind, verdict outcome) -> notice event.
# Promotions and reverts are told when their commit is written (`verdicts`).
_NOTICE_OF: dict[tuple[str, str], NoticeEvent] = {
    ("started", ""): "canary_started",
    ("paused", ""): "paused",
    ("step", ""): "step_advanced",
    ("verdict", "ready"): "ready_to_promote",
    ("verdict", "held"): "failed_held",
}


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
        self.journal = journal
        self.provider = provider
        self.clock = clock
        # Told of each journaled step and written verdict (`runtime.notify.Notifier.send`).
        self.notify = notify or (lambda _notice: None)
        self._stable: dict[str, int | None] = {}  # per model, at its last decision
        self.history = CanaryHistory(git)
        # Through `self.notify`, so whoever replaces it is told of written verdicts too.
        self.writer = VerdictWriter(git, notify=lambda notice: self.notify(notice),
                                    stable_of=self._stable.get, clock=clock,
                                    branch_writer=branch_writer)
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
            start = pull.head if pull is not None else self.history.start_commit(
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
        awaiting = self.writer.keep_awaiting({p.model for p in pending})
        for model, branch in awaiting.items():
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
            start = self.history.start_commit(
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
            reverted=self.history.reverted_versions(snapshot.commit).get(name, frozenset()),
            # Looked up only when it can matter: a retry lifts the hold anyway.
            promotion_reverted=start is not None and not canary_spec.retry
            and self.history.reverts_promotion(start, name, plan.version),
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

    # -- writing verdicts to git (`verdicts`) ------------------------------
    def finish(self, pending: Pending) -> str | None:
        """Write the promotion or revert commit; returns its sha once it is on the
        followed branch, or None (not needed, failed, or proposed on its own branch)."""
        return self.writer.finish(pending)

    @property
    def awaiting_merge(self) -> dict[str, str]:
        """Per model: the branch its verdict waits on to be merged (write-back "branch")."""
        return self.writer.awaiting_merge

    @property
    def write_failures(self) -> dict[str, int]:
        """Verdict commits that could not be written, by kind."""
        return self.writer.write_failures

    @property
    def verdicts(self) -> dict[str, int]:
        """Verdict commits written (or proposed on their branch), by kind."""
        return self.writer.verdicts


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
