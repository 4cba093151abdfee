"""Canaries from pull requests, run: which ones the driver runs on top of the followed branch.

Per reconcile tick, `PullRequestCanaries.tick(snapshot, now)`:

1. Every open pull request (fetched by `--pull-requests`, not on the followed branch)
   is read at its head and at its merge base (cached by sha). It is a candidate when
   its specs are valid (as `rollouts validate` checks any commit), its change only adds
   or bumps canary blocks (`decide.pull_requests.candidacy`) and each canary composes
   on the followed branch's current spec (`on_top_of`).
2. The journal in the notes of its head says how each canary's current run stands;
   `select` keeps one canary per model; the others wait, with the reason.
3. A run that has to (re)start (a first run, or stable changed on the followed
   branch) gets a `baseline` line naming the stable it runs against; a canary that
   stopped running (its pull request closed or changed) gets a `stopped` line.
4. What comes out: the followed branch's snapshot with the running canaries composed
   in, which model runs which pull request's head (for the driver), and every pull
   request's status.

`journal_home` tells the driver where the journal of a canary that reached the
followed branch by a merge lives: on the merged pull request's head when that head ran
the same canary (model, version and every canary field), so the run continues.

What it keeps in memory is the last tick's running canaries (to see which stopped);
everything else comes from git and the notes, so a restarted controller resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from controller.adapters.gitresults import GitError, PathNotFound
from controller.adapters.journal import NoteStore, journal_line, parse_journal
from controller.adapters.pulls import PullHead
from controller.adapters.redact import redact
from controller.decide.desired import Snapshot
from controller.decide.progress import Event
from controller.decide.pull_requests import (
    Candidacy,
    Proposal,
    Run,
    candidacy,
    compose,
    current_run,
    on_top_of,
    pull_order,
    restart_reason,
    run_state,
    same_canary,
    select,
    stops,
)
from controller.runtime.logfields import fields
from controller.spec.load import load_texts
from controller.spec.model import RolloutSpec

__all__ = ["PullCanary", "PullRequestCanaries", "PullSource", "PullStatus", "PullView"]

log = logging.getLogger(__name__)


class PullSource(Protocol):
    """The pull request refs of the controller's clone
    (`controller.adapters.pulls.PullRequestRefs`, or a fake in tests)."""

    def heads(self) -> Sequence[PullHead]: ...

    def brought_by(self, commit: str, /) -> Sequence[PullHead]: ...

    def read_tree(self, commit: str, folder: str, /) -> list[tuple[str, str]]: ...


@dataclass(frozen=True)
class PullCanary:
    """The pull request whose canary of a model runs now, and the head it runs from
    (its journal is in that commit's notes)."""

    pull: str
    head: str


@dataclass(frozen=True)
class PullStatus:
    """Where one pull request (and one of its canaries) stands, for `rollouts status`.

    phase: running | ready_to_merge | waiting | failed | not_candidate."""

    pull: str
    head: str
    phase: str
    model: str = ""
    version: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class PullView:
    snapshot: Snapshot  # the followed branch's, with the running canaries composed in
    running: Mapping[str, PullCanary]  # by model
    pulls: tuple[PullStatus, ...]


_Specs = tuple[dict[str, RolloutSpec], str]  # specs by model, or why they cannot be read


class PullRequestCanaries:
    def __init__(
        self,
        source: PullSource,
        journal: NoteStore,
        specs_dir: str,
        model_root: str,
    ) -> None:
        self.source = source
        self.journal = journal
        self.specs_dir = specs_dir
        self.model_root = model_root
        self._heads: tuple[PullHead, ...] | None = None
        self._specs_at: dict[str, _Specs] = {}
        self._candidacies: dict[tuple[str, str | None], Candidacy] = {}
        self._homes: dict[tuple[str, str, str], str] = {}
        self._previous: dict[str, Proposal] = {}

    # -- after each git sync ------------------------------------------------
    def refresh(self) -> bool:
        """Read the pull request refs the last sync fetched; True when any moved."""
        heads = tuple(self.source.heads())
        moved = heads != self._heads
        self._heads = heads
        return moved

    # -- per tick -------------------------------------------------------------
    def tick(self, snapshot: Snapshot, now: float) -> PullView:
        if self._heads is None:
            self.refresh()
        heads = self._heads or ()
        followed = {name: plan.version for name in snapshot.documents
                    if (plan := snapshot.canary_plan(name)) is not None}
        statuses: list[PullStatus] = []
        proposals: list[Proposal] = []
        composed: dict[tuple[str, str], RolloutSpec] = {}
        runs: dict[tuple[str, str], Run] = {}
        for head in sorted((h for h in heads if not h.merged), key=lambda h: pull_order(h.pull)):
            found = self._candidacy(head)
            if not found.candidate:
                statuses.append(PullStatus(head.pull, head.head, "not_candidate",
                                           reason=found.reason))
                continue
            events = parse_journal(self.journal.notes(head.head))
            for model, canary in sorted(found.canaries.items()):
                document = snapshot.documents.get(model)
                spec, problem = (on_top_of(document.spec, canary) if document is not None
                                 else (None, "no spec of it on the followed branch"))
                if spec is None:
                    statuses.append(PullStatus(head.pull, head.head, "not_candidate", model,
                                               canary.version, f"{model}: {problem}"))
                    continue
                run = current_run(events, model, canary.version)
                proposals.append(Proposal(head.pull, head.head, model, canary, run_state(run)))
                composed[(head.pull, model)], runs[(head.pull, model)] = spec, run
        selection = select(proposals, followed)
        dirty = False
        running: dict[str, PullCanary] = {}
        for model, proposal in sorted(selection.running.items()):
            key = (proposal.pull, model)
            stable = composed[key].spec.stable
            restart = restart_reason(runs[key], stable)
            if restart:
                self._note(proposal.head, Event(
                    "baseline", now, model, proposal.canary.version,
                    detail={"stable": stable, "pull": proposal.pull}),
                    f"pull request {proposal.pull}: {restart}")
                dirty = True
            running[model] = PullCanary(proposal.pull, proposal.head)
            passed = proposal.state == "passed" and not restart
            statuses.append(PullStatus(
                proposal.pull, proposal.head, "ready_to_merge" if passed else "running", model,
                proposal.canary.version,
                "passed: merging promotes" if passed else f"runs on top of stable v{stable}"))
        statuses += [PullStatus(w.proposal.pull, w.proposal.head, "waiting", w.proposal.model,
                                w.proposal.canary.version, w.reason)
                     for w in selection.waiting]
        statuses += [PullStatus(f.pull, f.head, "failed", f.model, f.canary.version,
                                _failure(runs[(f.pull, f.model)]))
                     for f in selection.failed]
        dirty |= self._stop_the_gone(heads, selection.running,
                                     {(f.pull, f.head) for f in selection.failed}, followed, now)
        if dirty:
            result = self.journal.push_notes()
            if not result.ok:
                log.warning("pushing notes failed: %s", result.detail)
        specs = {model: composed[(p.pull, model)] for model, p in selection.running.items()}
        statuses.sort(key=lambda s: (pull_order(s.pull), s.model))
        return PullView(compose(snapshot, specs, self.model_root), running, tuple(statuses))

    def _stop_the_gone(self, heads: Sequence[PullHead], running: Mapping[str, Proposal],
                       failed: set[tuple[str, str]], followed: Mapping[str, int],
                       now: float) -> bool:
        """Journal a `stopped` line for each canary that ran last tick and no longer
        runs (a failed one ended with its verdict: nothing to stop)."""
        previous = {model: p for model, p in self._previous.items()
                    if (p.pull, p.head) not in failed}
        self._previous = dict(running)
        found = stops(previous, running, {h.pull: h.head for h in heads},
                      [h.pull for h in heads if h.merged], followed)
        for stop in found:
            log.warning("%s: canary %s of pull request %s stopped: %s", stop.model,
                        stop.version, stop.pull, stop.reason,
                        extra=fields("stopped", model=stop.model, commit=stop.head))
            self._note(stop.head, Event("stopped", now, stop.model, stop.version,
                                        detail={"pull": stop.pull, "reason": stop.reason}),
                       f"{stop.reason}: the canary is out of traffic and unloaded")
        return bool(found)

    # -- where a merged canary's journal is ------------------------------------
    def journal_home(self, start: str, spec: RolloutSpec) -> str:
        """The commit whose notes hold the journal of `spec`'s canary, which the
        followed branch's commit `start` set: the head of a pull request that `start`
        merged and that ran this same canary, else `start` itself."""
        canary = spec.spec.canary
        if canary is None:
            return start
        model = spec.spec.model.name
        key = (start, model, canary.model_dump_json())
        if key not in self._homes:
            self._homes[key] = self._find_home(start, spec, model, canary.version)
        return self._homes[key]

    def _find_home(self, start: str, spec: RolloutSpec, model: str, version: int) -> str:
        found: list[tuple[float, str]] = []
        try:
            merged = self.source.brought_by(start)
        except GitError as err:
            log.warning("reading the pull requests %s merged failed: %s", start[:12],
                        redact(str(err)))
            return start
        for head in merged:
            there = self._specs(head.head)[0].get(model)
            if not same_canary(there, spec):
                continue
            run = current_run(parse_journal(self.journal.notes(head.head)), model, version)
            if run.events:
                found.append((max(e.at for e in run.events), head.head))
        if not found:
            return start
        home = max(found)[1]
        log.info("%s: canary %s continues the journal of the merged pull request head %s",
                 model, version, home[:12], extra=fields("merged", model=model, commit=start))
        return home

    # -- reading a pull request ------------------------------------------------
    def _candidacy(self, head: PullHead) -> Candidacy:
        key = (head.head, head.merge_base)
        if key not in self._candidacies:
            if len(self._candidacies) > 1024:  # heads come and go; keep the cache bounded
                self._candidacies.clear()
            self._candidacies[key] = self._read_candidacy(head)
        return self._candidacies[key]

    def _read_candidacy(self, head: PullHead) -> Candidacy:
        if head.merge_base is None:
            return Candidacy(reason="no history in common with the followed branch")
        after, problem = self._specs(head.head)
        if problem:
            return Candidacy(reason=f"invalid specs at {head.head[:12]}: {problem}")
        before, problem = self._specs(head.merge_base, strict=False)
        if problem:
            return Candidacy(reason=f"the merge base {head.merge_base[:12]}: {problem}")
        return candidacy(before, after)

    def _specs(self, commit: str, *, strict: bool = True) -> _Specs:
        """The specs at `commit` by model, validated as every commit is; with `strict`
        (a pull request's head) any problem makes them unreadable."""
        key = f"{commit}:{strict}"
        if key not in self._specs_at:
            if len(self._specs_at) > 1024:
                self._specs_at.clear()
            self._specs_at[key] = self._read_specs(commit, strict)
        return self._specs_at[key]

    def _read_specs(self, commit: str, strict: bool) -> _Specs:
        try:
            items = self.source.read_tree(commit, self.specs_dir)
        except PathNotFound:
            items = []
        except GitError as err:
            return {}, redact(str(err))
        loaded = load_texts(items)
        if strict and loaded.problems:
            more = len(loaded.problems) - 1
            return {}, str(loaded.problems[0]) + (f" (and {more} more)" if more else "")
        return {doc.spec.spec.model.name: doc.spec for doc in loaded.documents}, ""

    def _note(self, commit: str, event: Event, summary: str) -> None:
        self.journal.add_note(commit, redact(journal_line(event, " ".join(summary.split()))))


def _failure(run: Run) -> str:
    """Why a pull request canary failed: its verdict's summary, as journaled."""
    for event in reversed(run.events):
        if event.kind == "verdict" and event.outcome == "fail":
            return str(event.detail.get("summary") or "analysis failed")
    return "analysis failed"
