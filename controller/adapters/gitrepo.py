"""The controller's commits: spec edits and reverts on its clone, and publishing them.

Owns: a commit whose only change is one file's new text (the promotion, the canary
removed), `git revert` of the commit that started a canary (`-m 1` for a merge) with a
spec-edit fallback when it conflicts, and `write_with_retry`: fetch, build the commit
on the new head, push, and on a lost race do it again. `GitRepo` is the whole git
layer in one object: the clone (`controller.adapters.gitclone`), its reads
(`controller.adapters.gitread`) and these writes; the values it answers and raises
are `controller.adapters.gitresults`'.

Invariants:
- Every commit is built on an explicit base commit: spec edits through a private index
  file (no working tree at all); reverts after a forced, detached checkout of the base
  plus `reset --hard` and `clean`, so stray files can never leak into a commit.
- Commits are signed with git's own signing when the clone has a `Signing` key
  (`commit-tree -S`): protected branches that require signed commits accept them; a key
  git cannot use is a GitError naming it, never an unsigned commit.
- A lost push race is redone on the new head, never forced; a change the head already
  has is `REPLAN`, and nothing is written.

All public methods take the instance's lock: the runner's jobs may share one GitRepo.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from controller.adapters.gitclone import clean_relpath
from controller.adapters.gitread import GitReader
from controller.adapters.gitresults import (
    GitError,
    NothingToCommit,
    PathNotFound,
    RevertConflict,
    RevertResult,
    WriteOutcome,
    WriteResult,
    WriteStatus,
)
from controller.adapters.redact import redact
from controller.decide import trailers as trailers_mod
from controller.spec import yamledit

__all__ = ["GitRepo"]

log = logging.getLogger(__name__)


class GitRepo(GitReader):
    """A clone of `url` in `workdir`, tracking `branch`.

    `url` may be anything git accepts (a path, file://, https://, ssh). Prefer git's own
    credential mechanisms; a URL with inline credentials works but is stored in the
    clone's config and is redacted from every message.
    """

    def _commit_tree(self, tree: str, parent: str, message: str) -> str:
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=self.repo.git_dir, suffix=".msg", delete=False
        ) as handle:
            handle.write(message)
        try:
            # -S signs with user.signingkey in gpg.format; a key git cannot use is a
            # GitError naming it, never an unsigned commit on a branch that needs one.
            sign = "-S" if self.signing is not None else "--no-gpg-sign"
            return self._run("commit-tree", sign, tree, "-p", parent, "-F", handle.name)
        finally:
            os.unlink(handle.name)

    # --- writing commits -------------------------------------------------------------

    def commit_file_edit(
        self,
        base_commit: str,
        path: str,
        new_text: str,
        message: str,
        trailers: Sequence[tuple[str, str]] = (),
    ) -> str:
        """A local commit on `base_commit` whose only change is `path` := `new_text`.

        Built through a private index file, so neither the working tree nor the shared
        index is involved. Raises NothingToCommit if the file already has that text.
        """
        with self._lock:
            base = self._resolve(base_commit)
            rel = clean_relpath(path)
            if not rel:
                raise ValueError("a file path is required")
            mode = self._mode_of(base, rel)
            index_file = os.path.join(self.repo.git_dir, "rollouts-edit.index")
            env = {"GIT_INDEX_FILE": index_file}
            try:
                self._run("read-tree", base, env=env)
                blob = self._hash_blob(new_text.encode("utf-8"))
                self._run(
                    "update-index",
                    "--add",
                    "--cacheinfo",
                    f"{mode},{blob},{rel}",
                    env=env,
                )
                tree = self._run("write-tree", env=env)
            finally:
                if os.path.exists(index_file):
                    os.unlink(index_file)
            if tree == self._run("rev-parse", f"{base}^{{tree}}"):
                raise NothingToCommit(f"{rel} at {base[:12]} already has that content")
            sha = self._commit_tree(tree, base, trailers_mod.build_message(message, trailers))
            log.info("committed %s on %s: %s", sha[:12], base[:12], message.split("\n")[0])
            return sha

    def _hash_blob(self, data: bytes) -> str:
        with tempfile.NamedTemporaryFile(dir=self.repo.git_dir, delete=False) as handle:
            handle.write(data)
        try:
            return self._run("hash-object", "-w", "--", handle.name)
        finally:
            os.unlink(handle.name)

    def _mode_of(self, base: str, rel: str) -> str:
        listing = self._run("ls-tree", base, "--", rel)
        if not listing:
            return "100644"
        mode = listing.split(None, 1)[0]
        if mode not in ("100644", "100755"):
            raise GitError(f"{rel} at {base[:12]} is not a regular file (mode {mode})")
        return mode

    @contextmanager
    def _clean_checkout(self, base: str) -> Iterator[None]:
        """Detached, forced checkout of `base` with no untracked files; cleaned after."""
        self._run("checkout", "--detach", "--force", base)
        self._run("reset", "--hard", base)
        self._run("clean", "-ffdxq")
        try:
            yield
        finally:
            self._try("reset", "--hard", base)
            self._try("clean", "-ffdxq")

    def revert(
        self,
        commit: str,
        message: str,
        trailers: Sequence[tuple[str, str]] = (),
        *,
        base: str | None = None,
    ) -> str:
        """A local `git revert` of `commit` on `base` (default origin/<branch>).

        A merge commit is reverted against its first parent (`-m 1`: the branch it was
        merged into). The message is the caller's, plus git's "This reverts commit X."
        line and the trailers. Raises RevertConflict or NothingToCommit.
        """
        with self._lock:
            base = self._resolve(base or self.remote_ref)
            target = self._commit(commit)
            args = ["revert", "--no-commit"]
            if len(target.parents) > 1:
                args += ["-m", "1"]
            with self._clean_checkout(base):
                status, _, err = self._try(*args, target.hexsha)
                if status != 0:
                    conflicted = self._try("diff", "--name-only", "--diff-filter=U")[1].split()
                    self._try("revert", "--quit")
                    if conflicted or "conflict" in err.lower():
                        raise RevertConflict(
                            f"reverting {target.hexsha[:12]} onto {base[:12]} conflicts in "
                            f"{', '.join(conflicted) or 'the tree'}"
                        )
                    raise GitError(redact(f"git revert failed (exit {status}): {err.strip()}"))
                self._try("revert", "--quit")  # drop sequencer state; the index stays
                tree = self._run("write-tree")
            if tree == self._run("rev-parse", f"{base}^{{tree}}"):
                raise NothingToCommit(f"{target.hexsha[:12]} is already undone at {base[:12]}")
            body = message.rstrip("\n")
            reverts_line = f"This reverts commit {target.hexsha}."
            if reverts_line not in body:
                body = f"{body}\n\n{reverts_line}"
            sha = self._commit_tree(tree, base, trailers_mod.build_message(body, trailers))
            log.info("reverted %s on %s as %s", target.hexsha[:12], base[:12], sha[:12])
            return sha

    def revert_or_remove_canary(
        self,
        base: str,
        commit: str,
        path: str,
        model_name: str,
        message: str,
        trailers: Sequence[tuple[str, str]] = (),
    ) -> RevertResult:
        """Revert the commit that started a canary; on conflict, remove the canary from the
        spec file instead, with the same message. Raises NothingToCommit when the base
        has neither anything to revert nor a canary to remove."""
        with self._lock:
            try:
                return RevertResult(self.revert(commit, message, trailers, base=base), "revert")
            except RevertConflict as conflict:
                log.warning("%s; removing the canary of %s by a spec edit", conflict, model_name)
            text = self.read_file(base, path)
            if text is None:
                raise PathNotFound(f"{path} not found at {base[:12]}")
            edited = yamledit.remove_canary(text, model_name)
            sha = self.commit_file_edit(base, path, edited, message, trailers)
            return RevertResult(sha, "edit")

    def write_with_retry(
        self, make_change: Callable[[str], WriteResult | None], attempts: int = 5
    ) -> WriteOutcome:
        """Fetch, `make_change(head)`, push; on a lost race fetch and redo on the new head.

        `make_change` builds a local commit on the sha it is given (commit_file_edit,
        revert, ...) and returns it, or returns None (or raises NothingToCommit) when the
        head already changed what it was about to change: then nothing is written and
        the caller re-plans. A push error other than a race raises GitError.
        """
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        with self._lock:
            head = ""
            for attempt in range(1, attempts + 1):
                head = self.sync()
                try:
                    change = make_change(head)
                except NothingToCommit:
                    change = None
                if change is None:
                    return WriteOutcome(WriteStatus.REPLAN, None, head, attempt)
                result = self.push(change.sha)
                if result.ok:
                    return WriteOutcome(WriteStatus.WRITTEN, change.sha, head, attempt)
                if result.error:
                    raise GitError(f"push to {self.display_url} failed: {result.detail}")
            return WriteOutcome(WriteStatus.EXHAUSTED, None, head, attempts)
