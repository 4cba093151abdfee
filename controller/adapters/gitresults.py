"""What the controller's git layer answers and raises: plain values, no git.

The error taxonomy, the outcomes of pushes, writes and reverts, the commit and
file-change records history reads return, and the signing setting. The runtime's
git roles (Protocols) and their fakes in tests need only these, not a clone.

Errors::

    GitError                  a git command failed (message redacted)
    +-- NothingToCommit       the change is already in the base: nothing to write
    +-- RevertConflict        `git revert` conflicted (callers fall back to a spec edit)
    +-- PathNotFound          a folder or file is missing at that commit
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "CommitInfo",
    "FileChanges",
    "GitError",
    "NothingToCommit",
    "PathNotFound",
    "PushResult",
    "PushStatus",
    "RevertConflict",
    "RevertResult",
    "Signing",
    "WriteOutcome",
    "WriteResult",
    "WriteStatus",
]


class GitError(Exception):
    """A git operation failed. The message is redacted; the original error is not chained,
    because its text (the command line) can hold the remote URL's credentials."""


class NothingToCommit(GitError):
    """The requested change is already in the base commit."""


class RevertConflict(GitError):
    """Reverting the commit onto the base conflicts."""


class PathNotFound(GitError):
    """A folder or file is absent at the requested commit."""


class PushStatus(enum.Enum):
    OK = "ok"
    REJECTED = "rejected"  # not a fast-forward: someone pushed first; fetch and redo
    ERROR = "error"  # anything else (auth, hook, network): retry later, do not redo


@dataclass(frozen=True)
class PushResult:
    status: PushStatus
    detail: str = ""  # git's redacted explanation when not ok

    @property
    def ok(self) -> bool:
        return self.status is PushStatus.OK

    @property
    def rejected(self) -> bool:
        return self.status is PushStatus.REJECTED

    @property
    def error(self) -> bool:
        return self.status is PushStatus.ERROR


@dataclass(frozen=True)
class WriteResult:
    """What a `make_change` callback built: a local commit on the base it was given."""

    sha: str


class WriteStatus(enum.Enum):
    WRITTEN = "written"  # the commit is on the remote branch
    REPLAN = "replan"  # the head already has (or changed) this: nothing was written
    EXHAUSTED = "exhausted"  # every attempt lost a push race


@dataclass(frozen=True)
class WriteOutcome:
    status: WriteStatus
    sha: str | None  # the pushed commit when WRITTEN
    head: str  # the remote head the last attempt started from
    attempts: int


@dataclass(frozen=True)
class RevertResult:
    sha: str
    method: str  # "revert" (a real `git revert`) or "edit" (the canary removed by a spec edit)


@dataclass(frozen=True)
class Signing:
    """Sign every commit with git's own signing: `key` is an SSH key file (format "ssh")
    or an OpenPGP key id (format "openpgp"), exactly what `user.signingkey` takes."""

    key: str
    format: str = "ssh"

    def __post_init__(self) -> None:
        if self.format not in ("ssh", "openpgp"):
            raise ValueError(f"signing format {self.format!r}: expected ssh or openpgp")
        if not self.key.strip():
            raise ValueError("a signing key is required")


@dataclass(frozen=True)
class FileChanges:
    """One first-parent commit and the files it changed against its first parent."""

    sha: str
    parent: str | None  # None for a root commit
    committed_at: int  # unix seconds
    paths: tuple[str, ...]


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    parents: tuple[str, ...]
    author: str  # "Name <email>"
    committed_at: int  # unix seconds
    message: str

    @property
    def subject(self) -> str:
        return self.message.split("\n", 1)[0]
