"""Where verdict commits go: straight to the followed branch, or each to a branch of its own.

`push` (the default) pushes a promotion or revert onto the followed branch, as a
fast-forward with retries on lost races. `branch` pushes it to
``rollouts/<model>/<promote|revert>-<version>`` instead, for a bot or a person to merge
where the followed branch is protected (required reviews or status checks). Until that
commit's change reaches the followed branch the canary stays as the verdict left it: a
passed canary keeps its weight and labels; a failed one stays out of traffic (it left
traffic before its revert was written, as in `push` mode). Nothing is ever
force-pushed: a branch of that name already holding another canary's verdict is
reported, not overwritten.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from controller.adapters.gitresults import (
    CommitInfo,
    GitError,
    NothingToCommit,
    PushResult,
    WriteResult,
)
from controller.decide import trailers
from controller.decide.verdict_text import WRITE_BACK_MODES, verdict_branch

__all__ = [
    "WRITE_BACK_MODES", "BranchOutcome", "BranchStatus", "BranchWriter", "verdict_branch",
    "write_to_branch",
]


class BranchWriter(Protocol):
    """The git roles of proposing a verdict on a branch (`GitRepo` plays them)."""

    @property
    def branch(self) -> str: ...

    def sync(self) -> str: ...

    def fetch_branch(self, branch: str) -> str | None: ...

    def push_branch(self, sha: str, branch: str) -> PushResult: ...

    def log(self, rev: str | None = ..., *, max_count: int = ...) -> Sequence[CommitInfo]: ...

log = logging.getLogger(__name__)

class BranchStatus(enum.Enum):
    PUSHED = "pushed"  # the verdict commit is now on its branch
    WAITING = "waiting"  # pushed earlier; waiting for it to reach the followed branch
    REPLAN = "replan"  # the followed branch already changed this canary
    FAILED = "failed"  # the push failed, or the branch holds another verdict


@dataclass(frozen=True)
class BranchOutcome:
    status: BranchStatus
    branch: str
    sha: str = ""
    detail: str = ""


def write_to_branch(
    git: BranchWriter,
    branch: str,
    canary_commit: str,
    make_change: Callable[[str], WriteResult | None],
) -> BranchOutcome:
    """Build the verdict commit on the followed branch's head and push it to `branch`.

    A branch that already carries this canary's verdict (its tip's
    Rollouts-Canary-Commit trailer names `canary_commit`) is left alone: proposing
    it once is enough, and the merge may be hours away.
    """
    try:
        tip = git.fetch_branch(branch)
        if tip is not None:
            tip_info = git.log(tip, max_count=1)
            parsed = trailers.RolloutTrailers.from_message(tip_info[0].message if tip_info else "")
            if parsed.canary_commit == canary_commit:
                return BranchOutcome(BranchStatus.WAITING, branch, tip)
            return BranchOutcome(
                BranchStatus.FAILED, branch, tip,
                f"branch {branch} already exists with another canary's verdict "
                f"({tip[:12]}); delete it to let this verdict be proposed",
            )
        head = git.sync()
        try:
            change = make_change(head)
        except NothingToCommit:
            change = None
        if change is None:
            return BranchOutcome(BranchStatus.REPLAN, branch)
        result = git.push_branch(change.sha, branch)
    except GitError as err:
        return BranchOutcome(BranchStatus.FAILED, branch, detail=str(err))
    if not result.ok:
        return BranchOutcome(BranchStatus.FAILED, branch, change.sha, result.detail)
    return BranchOutcome(BranchStatus.PUSHED, branch, change.sha)
