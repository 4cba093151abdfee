"""Reading a commit of the controller's clone: spec files, one file, history.

Owns: the spec files under a folder at a commit, one file's text, `git log` as
`CommitInfo` records, the commit that set a file's current state, and which files
each first-parent commit changed since a time. Nothing here writes.

Invariant: specs are read from commit objects, never from a working tree, so a
dirty clone cannot change what is applied; a missing folder is `PathNotFound`, never
"no models" (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import git

from controller.adapters.gitclone import GitClone, clean_relpath
from controller.adapters.gitresults import CommitInfo, FileChanges, GitError, PathNotFound
from controller.adapters.redact import redact

__all__ = ["GitReader"]

_YAML_SUFFIXES = (".yaml", ".yml")
_REGULAR_FILE_MODES = (0o100644, 0o100755)


class GitReader(GitClone):
    """The clone's reads; every public method takes the clone's lock."""

    def read_tree(self, commit: str, folder: str) -> list[tuple[str, str]]:
        """(path, text) of every *.yaml / *.yml under `folder` at `commit`, sorted by path.

        Paths are repository-relative. Symlinks and submodules are skipped: their blob is
        not a spec. Raises PathNotFound if the folder is absent (fail closed: a missing
        folder must not read as "no models").
        """
        with self._lock:
            tree = self._commit(commit).tree
            folder = clean_relpath(folder)
            if folder:
                try:
                    tree = tree[folder]
                except KeyError:
                    raise PathNotFound(f"{folder!r} not found at {commit[:12]}") from None
                if not isinstance(tree, git.Tree):
                    raise PathNotFound(f"{folder!r} is not a folder at {commit[:12]}")
            files = []
            for item in tree.traverse():
                if not isinstance(item, git.Blob) or item.mode not in _REGULAR_FILE_MODES:
                    continue
                item_path = str(item.path)
                if item_path.lower().endswith(_YAML_SUFFIXES):
                    files.append((item_path, self._decode(item, commit)))
            return sorted(files)

    def read_file(self, commit: str, path: str) -> str | None:
        """The text of `path` at `commit`, or None when it does not exist there."""
        with self._lock:
            try:
                item = self._commit(commit).tree[clean_relpath(path)]
            except KeyError:
                return None
            if not isinstance(item, git.Blob):
                return None
            return self._decode(item, commit)

    def _commit(self, commit: str) -> git.Commit:
        try:
            return self.repo.commit(self._resolve(commit))
        except (ValueError, git.BadName) as exc:
            raise GitError(f"unknown commit {commit!r}: {redact(str(exc))}") from None

    @staticmethod
    def _decode(blob: git.Blob, commit: str) -> str:
        try:
            return bytes(blob.data_stream.read()).decode("utf-8")
        except UnicodeDecodeError:
            raise GitError(f"{blob.path} at {commit[:12]} is not UTF-8 text") from None

    def log(
        self,
        rev: str | None = None,
        *,
        paths: Sequence[str] = (),
        max_count: int = 200,
        first_parent: bool = False,
    ) -> list[CommitInfo]:
        """Commits reachable from `rev` (default origin/<branch>), newest first."""
        with self._lock:
            commits = self.repo.iter_commits(
                rev or self.remote_ref,
                [clean_relpath(p) for p in paths],
                max_count=max_count,
                # gitpython turns first_parent=True into --first-parent; False adds nothing
                first_parent=first_parent,
            )
            return [_info(commit) for commit in commits]

    def find_commit_that_set(
        self, head: str, path: str, predicate: Callable[[str | None], bool], max_count: int = 500
    ) -> str | None:
        """The commit on head's first-parent line that made `predicate(file text)` true.

        Walks the commits that changed `path`, newest first, while the predicate holds,
        and returns the oldest of that run: e.g. the commit (a merge, for a merged pull
        request) that set the canary version now in the file. None if it does not hold
        at `head`. The text passed is None where the file does not exist.
        """
        with self._lock:
            found: str | None = None
            if not predicate(self.read_file(head, path)):
                return None
            for info in self.log(head, paths=[path], max_count=max_count, first_parent=True):
                if not predicate(self.read_file(info.sha, path)):
                    break
                found = info.sha
            return found

    def file_changes(self, head: str, folder: str, since: float) -> list[FileChanges]:
        """Commits on head's first-parent line committed at or after `since` (unix
        seconds) that changed files under `folder`, newest first, with those files
        (repository-relative). One git process, however many files the folder holds."""
        with self._lock:
            out = self._run(
                "log", "--first-parent", "-m", f"--since=@{int(since)}", "--name-only",
                "--format=%x1e%H %P%x1f%ct", self._resolve(head), "--",
                clean_relpath(folder) or ".",
            )
        found = []
        for record in out.split("\x1e")[1:]:
            header, _, names = record.partition("\n")
            shas, _, when = header.partition("\x1f")
            sha, *parents = shas.split()
            paths = tuple(line.strip() for line in names.splitlines() if line.strip())
            found.append(FileChanges(sha, parents[0] if parents else None, int(when), paths))
        return found


def _info(commit: git.Commit) -> CommitInfo:
    message = commit.message
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return CommitInfo(
        sha=commit.hexsha,
        parents=tuple(parent.hexsha for parent in commit.parents),
        author=f"{commit.author.name} <{commit.author.email}>",
        committed_at=int(commit.committed_date),
        message=text,
    )
