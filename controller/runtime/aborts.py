"""Telling people that a person's `rollouts abort` has been carried out.

An abort is a commit with a `Rollouts-Action: abort` trailer that removes the canary
from the spec (`controller.decide.actions`). The controller carries it out like any
other spec change: the targets unload the canary and serve stable. `AbortWatch`
notices when a canary the driver was running leaves the spec, looks for the abort
commit among the commits the new head brought, and once no reachable target still
has the version loaded it journals an `aborted` event on the canary's start commit
(the run's journal ends with it) and sends the `aborted` notice, once.

What it remembers (the canaries of the last tick and the head they were read at) is
in memory only: a controller restarted between the abort commit and its first sight
of it does not tell that abort.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from controller.adapters.journal import NoteStore, journal_line
from controller.adapters.redact import redact
from controller.decide import trailers
from controller.decide.actions import ACTION, REASON, REQUESTED_BY
from controller.decide.fleet import DesiredState, ObservedTarget
from controller.decide.gates import canary_unloaded
from controller.decide.notices import Notice
from controller.decide.progress import Event
from controller.runtime.canary_history import GitLog

__all__ = ["AbortWatch", "Running"]

# How far back `old..new` is read for abort commits: a poll brings a few commits.
_SCAN = 200


@dataclass(frozen=True)
class Running:
    """A canary the driver ran in a tick: its version and the commit that started it."""

    version: int
    start: str


@dataclass(frozen=True)
class _Abort:
    model: str
    version: int
    start: str
    commit: str
    by: str
    reason: str


class AbortWatch:
    def __init__(self, git: GitLog, journal: NoteStore, notify: Callable[[Notice], None],
                 clock: Callable[[], float]) -> None:
        self.git = git
        self.journal = journal
        self.notify = notify
        self.clock = clock
        self._head = ""
        self._running: dict[str, Running] = {}
        self._waiting: dict[str, _Abort] = {}

    def tick(self, desired: DesiredState, running: Mapping[str, Running],
             observed: Sequence[ObservedTarget]) -> bool:
        """One tick of the driver at `desired` (its commit is the head) with the canaries
        `running` now; True when a journal line was added (the caller pushes the notes)."""
        head = desired.commit
        gone = {m: r for m, r in self._running.items() if running.get(m) != r}
        if gone and self._head and head != self._head:
            self._waiting.update(self._aborts(f"{self._head}..{head}", gone))
        self._head, self._running = head, dict(running)
        told = False
        for model, abort in sorted(self._waiting.items()):
            if model in running:
                del self._waiting[model]  # a canary again: that abort is history
            elif canary_unloaded(model, abort.version, observed):
                del self._waiting[model]
                model_now = desired.models.get(model)
                self._tell(abort, model_now.labels.get("stable") if model_now else None)
                told = True
        return told

    def _aborts(self, revs: str, gone: Mapping[str, Running]) -> dict[str, _Abort]:
        found: dict[str, _Abort] = {}
        # Oldest first, so a later abort of the same model wins.
        for info in reversed(self.git.log(revs, max_count=_SCAN)):
            parsed = trailers.RolloutTrailers.from_message(info.message)
            run = gone.get(parsed.model or "")
            actions = trailers.trailer_values(info.message, ACTION)
            if run is None or "abort" not in actions or parsed.canary_version != run.version:
                continue
            found[parsed.model or ""] = _Abort(
                parsed.model or "", run.version, run.start, info.sha,
                " ".join(trailers.trailer_values(info.message, REQUESTED_BY)),
                " ".join(trailers.trailer_values(info.message, REASON)),
            )
        return found

    def _tell(self, abort: _Abort, stable: int | None) -> None:
        now = self.clock()
        by = f" by {abort.by}" if abort.by else ""
        summary = (f"canary {abort.version} aborted{by} in commit {abort.commit[:12]}: "
                   f"unloaded, every target serves stable"
                   + (f" {stable}" if stable is not None else "")
                   + (f". Reason: {abort.reason}" if abort.reason else ""))
        event = Event("aborted", now, abort.model, abort.version, outcome="abort",
                      detail={"commit": abort.commit, "requestedBy": abort.by})
        self.journal.add_note(abort.start, redact(journal_line(event, summary)))
        details = {REQUESTED_BY: abort.by} if abort.by else {}
        if abort.reason:
            details[REASON] = abort.reason
        self.notify(Notice("aborted", abort.model, now, abort.version, stable, abort.commit,
                           "abort", summary=redact(summary), details=details))
