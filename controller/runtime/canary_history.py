"""What git history says about a canary, cached per head: where its run started,
whether a person reverted its promotion, which versions the controller reverted.

The rollout driver asks these every tick; each answer is fixed for a given head
(or commit), so it is looked up once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from controller.adapters.gitresults import GitError
from controller.decide import trailers
from controller.decide.gates import is_promotion_of, reverted_commit
from controller.spec import yamledit

__all__ = ["CanaryHistory", "CommitMessage", "GitLog", "HistoryGit"]


class CommitMessage(Protocol):
    @property
    def sha(self) -> str: ...

    @property
    def message(self) -> str: ...


class GitLog(Protocol):
    """`git log` from a revision, newest first (`controller.adapters.gitrepo.GitRepo.log`)."""

    def log(self, rev: str, /, *, max_count: int = ...) -> Sequence[CommitMessage]: ...


class HistoryGit(GitLog, Protocol):
    """The git reads of canary history (`controller.adapters.gitrepo.GitRepo`, or a fake)."""

    def find_commit_that_set(
        self, head: str, path: str, predicate: Callable[[str | None], bool], /
    ) -> str | None: ...


class CanaryHistory:
    """Canary history lookups on `git`, each cached by the commit it is asked at."""

    def __init__(self, git: HistoryGit) -> None:
        self.git = git
        self._start_commits: dict[tuple[str, str, int, int], str | None] = {}
        self._reverted: dict[str, Mapping[str, frozenset[int]]] = {}
        self._promotion_reverts: dict[tuple[str, str, int], bool] = {}

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
