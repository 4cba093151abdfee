"""Writes a recorded verdict to git: the promotion edit or the revert of the canary.

A verdict is journaled first (`controller.runtime.rollout`); writing it here is
idempotent: each attempt starts from the followed branch's new head and writes
nothing when the spec no longer has that canary (someone changed it meanwhile).
On the followed branch (`write_with_retry`), or with write-back "branch" proposed
on a branch of its own (`controller.runtime.writeback`), the canary held until it
is merged. People are told of each written verdict, and once of a write that
failed; the counts feed the controller's own metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from controller.adapters.gitresults import (
    GitError,
    RevertResult,
    WriteOutcome,
    WriteResult,
    WriteStatus,
)
from controller.adapters.redact import redact
from controller.decide import trailers
from controller.decide.notices import Event as NoticeEvent
from controller.decide.notices import Notice
from controller.runtime.logfields import fields
from controller.runtime.writeback import (
    BranchStatus,
    BranchWriter,
    verdict_branch,
    write_to_branch,
)
from controller.spec import yamledit

__all__ = ["Pending", "VerdictGit", "VerdictWriter"]

log = logging.getLogger(__name__)


class VerdictGit(Protocol):
    """The git roles of writing a verdict (`controller.adapters.gitrepo.GitRepo`, or a fake)."""

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


class VerdictWriter:
    def __init__(
        self,
        git: VerdictGit,
        *,
        notify: Callable[[Notice], None],
        stable_of: Callable[[str], int | None],
        clock: Callable[[], float] = time.time,
        branch_writer: BranchWriter | None = None,
    ) -> None:
        """`stable_of`: a model's stable version, for what people are told. `branch_writer`:
        propose each verdict on a branch of its own (write-back "branch") instead of
        pushing it onto the followed branch."""
        self.git = git
        self.notify = notify
        self.stable_of = stable_of
        self.clock = clock
        self.branch_writer = branch_writer
        # Verdicts whose write-back failure people were told of (once, not every retry).
        self._failure_told: set[tuple[str, int, str]] = set()
        # Per model: the branch its verdict waits on to be merged (write-back "branch").
        self.awaiting_merge: dict[str, str] = {}
        # Verdict commits that could not be written (push error, lost races, a taken
        # branch), counted by kind, for the controller's own metrics.
        self.write_failures: dict[str, int] = {}
        # Verdict commits written (or proposed on their branch), by kind.
        self.verdicts: dict[str, int] = {}

    def keep_awaiting(self, models: set[str]) -> dict[str, str]:
        """Stop waiting on the branch of a verdict no longer pending (its change is on the
        followed branch: the spec no longer has that canary); the rest, per model."""
        self.awaiting_merge = {m: b for m, b in self.awaiting_merge.items() if m in models}
        return self.awaiting_merge

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
            kind, pending.model, self.clock(), pending.version, self.stable_of(pending.model),
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


def _redacted(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(key, redact(value)) for key, value in pairs]
