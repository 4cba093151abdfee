"""The controller's git layer: one working clone in its state directory, driven by gitpython.

Owns: clone-once-then-fetch, reading spec files from a commit's tree, writing the
controller's commits (a spec edit, or a `git revert` with a spec-edit fallback), pushing
them without ever force-pushing. The analysis notes are `controller.adapters.journal`'s,
on this same clone (`also_fetch`, `run`, `push_ref`).

Invariants:
- Specs are read from commit objects (`read_tree`), never from a working tree, so a
  dirty clone cannot change what is applied.
- Every commit is built on an explicit base commit: spec edits through a private index
  file (no working tree at all); reverts after a forced, detached checkout of the base
  plus `reset --hard` and `clean`, so stray files can never leak into a commit.
- Nothing is force-pushed. A rejected push (someone else pushed first) is a normal,
  typed outcome; `write_with_retry` fetches and redoes the change on the new head.
- Every commit carries the configured identity as author and committer (the process
  environment cannot override it) and, with a `Signing` key, git's own signature
  (`user.signingkey`, `gpg.format` ssh or openpgp): protected branches that require
  signed commits accept them.
- No error message or log line carries credentials: every text that can hold a URL goes
  through `controller.adapters.redact`.

Errors::

    GitError                  a git command failed (message redacted)
    +-- NothingToCommit       the change is already in the base: nothing to write
    +-- RevertConflict        `git revert` conflicted (callers fall back to a spec edit)
    +-- PathNotFound          a folder or file is missing at that commit

All public methods take the instance's lock: the runner's jobs may share one GitRepo.
"""

from __future__ import annotations

import enum
import logging
import os
import posixpath
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import git

from controller.adapters.redact import RedactingFilter, redact
from controller.decide import trailers as trailers_mod
from controller.spec import yamledit

__all__ = [
    "CommitInfo",
    "FileChanges",
    "GitError",
    "GitRepo",
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

log = logging.getLogger(__name__)

_MARKER = ("rollouts", "managed")  # config key marking a clone this module created
_YAML_SUFFIXES = (".yaml", ".yml")
_REGULAR_FILE_MODES = (0o100644, 0o100755)
# Git's own messages are parsed (push rejections, conflicts): pin them to English and
# never let git wait for a password on a terminal nobody watches.
_GIT_ENV = {"LC_ALL": "C", "LANGUAGE": "C", "GIT_TERMINAL_PROMPT": "0"}


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


def _redacted_error(exc: git.GitCommandError, action: str) -> str:
    stderr = (exc.stderr or "").strip().removeprefix("stderr:").strip().strip("'").strip()
    return redact(f"git {action} failed (exit {exc.status}): {stderr or 'no output'}")


def _clean_relpath(path: str) -> str:
    """A repository-relative POSIX path; refuses absolute paths and `..`."""
    normal = posixpath.normpath(path.replace("\\", "/")).lstrip("/") if path else ""
    if normal in ("", "."):
        return ""
    if normal == ".." or normal.startswith("../") or path.startswith("/"):
        raise ValueError(f"not a path inside the repository: {path!r}")
    return normal


class GitRepo:
    """A clone of `url` in `workdir`, tracking `branch`.

    `url` may be anything git accepts (a path, file://, https://, ssh). Prefer git's own
    credential mechanisms; a URL with inline credentials works but is stored in the
    clone's config and is redacted from every message.
    """

    def __init__(
        self,
        url: str,
        workdir: str | os.PathLike[str],
        branch: str = "main",
        *,
        identity: tuple[str, str] = ("rollouts-controller", "rollouts@localhost"),
        signing: Signing | None = None,
        timeout: float = 60.0,
    ) -> None:
        if url.startswith("-") or url.lower().startswith("ext::"):
            # a leading dash would be read as an option; ext:: runs arbitrary commands
            raise ValueError(f"refusing git URL {redact(url)!r}")
        if not branch or branch.startswith("-") or any(c.isspace() for c in branch):
            raise ValueError(f"not a branch name: {branch!r}")
        self.url = url
        self.workdir = Path(workdir)
        self.branch = branch
        self.identity = identity
        self.signing = signing
        self.timeout = timeout
        self._lock = threading.RLock()
        self._repo: git.Repo | None = None
        # Extra refs fetched by every sync, each with what to run after (the notes journal).
        self._fetch_hooks: list[tuple[str, Callable[[], None]]] = []
        _install_log_filter()

    def __repr__(self) -> str:
        return f"GitRepo({redact(self.url)!r}, {str(self.workdir)!r}, branch={self.branch!r})"

    @property
    def display_url(self) -> str:
        return redact(self.url)

    @property
    def remote_ref(self) -> str:
        return f"refs/remotes/origin/{self.branch}"

    # --- plumbing --------------------------------------------------------------------

    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            self._repo = self._open_or_init()
        return self._repo

    def _open_or_init(self) -> git.Repo:
        # Writes run `reset --hard` and `clean -ffdx` here: refuse any directory this
        # class did not create, so a mistyped --state-dir cannot wipe a person's checkout.
        if (self.workdir / ".git").exists():
            repo = git.Repo(self.workdir)
            with repo.config_reader() as reader:
                managed = reader.get_value(_MARKER[0], _MARKER[1], default="")
            if str(managed).lower() != "true":
                raise GitError(f"{self.workdir} is a git clone the controller did not create")
        else:
            if self.workdir.exists() and any(self.workdir.iterdir()):
                raise GitError(f"{self.workdir} is not empty and not a controller clone")
            self.workdir.mkdir(parents=True, exist_ok=True)
            # init + fetch instead of clone: one code path for the first and every later
            # sync, and every network call goes through `_run` (timeout, redaction).
            repo = git.Repo.init(self.workdir)
        name, email = self.identity
        # The identity is the configured one even where the controller's environment
        # sets GIT_AUTHOR_* or GIT_COMMITTER_* (git prefers those over user.name).
        repo.git.update_environment(
            **_GIT_ENV,
            GIT_AUTHOR_NAME=name,
            GIT_AUTHOR_EMAIL=email,
            GIT_COMMITTER_NAME=name,
            GIT_COMMITTER_EMAIL=email,
        )
        with repo.config_writer() as config:
            config.set_value(_MARKER[0], _MARKER[1], "true")
            config.set_value("user", "name", name)
            config.set_value("user", "email", email)
            config.set_value("core", "hooksPath", os.devnull)  # no hook runs in our clone
            config.set_value("gc", "auto", "0")  # no background gc racing our commands
            if self.signing is not None:
                config.set_value("user", "signingkey", self.signing.key)
                config.set_value("gpg", "format", self.signing.format)
                config.set_value("commit", "gpgsign", "true")
            else:
                config.set_value("commit", "gpgsign", "false")
        remotes = {remote.name for remote in repo.remotes}
        try:
            if "origin" in remotes:
                repo.git.remote("set-url", "origin", self.url)
            else:
                repo.git.remote("add", "origin", self.url)
        except git.GitCommandError as exc:
            raise GitError(_redacted_error(exc, "remote")) from None
        return repo

    def _run(self, *args: str, network: bool = False, **kwargs: object) -> str:
        """`git <args>` in the clone; GitCommandError becomes a redacted GitError."""
        try:
            if network:
                kwargs["kill_after_timeout"] = self.timeout
            return str(self.repo.git.execute(["git", *args], **kwargs))  # type: ignore[call-overload]
        except git.GitCommandError as exc:
            raise GitError(_redacted_error(exc, args[0])) from None

    def _try(self, *args: str, **kwargs: object) -> tuple[int, str, str]:
        """`git <args>` returning (status, stdout, stderr) instead of raising."""
        status, out, err = self.repo.git.execute(  # type: ignore[call-overload]
            ["git", *args], with_extended_output=True, with_exceptions=False, **kwargs
        )
        return int(status), str(out), str(err)

    def _resolve(self, rev: str) -> str:
        status, out, _ = self._try("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        if status != 0:
            raise GitError(f"unknown commit {rev!r}")
        return out.strip()

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

    # --- for the other adapters on this clone (the notes journal) --------------------

    @property
    def lock(self) -> threading.RLock:
        """Held by every public method; hold it across several plumbing calls."""
        return self._lock

    def also_fetch(self, refspec: str, after: Callable[[], None]) -> None:
        """Fetch `refspec` in every `sync` too, then call `after` (under the lock)."""
        with self._lock:
            self._fetch_hooks.append((refspec, after))

    def run(self, *args: str, network: bool = False) -> str:
        """`git <args>` in the clone; a failure raises a redacted GitError."""
        with self._lock:
            return self._run(*args, network=network)

    def try_run(self, *args: str) -> tuple[int, str, str]:
        """`git <args>` in the clone as (status, stdout, stderr); never raises."""
        with self._lock:
            return self._try(*args)

    def resolve(self, rev: str) -> str:
        """The commit sha `rev` names; GitError if none."""
        with self._lock:
            return self._resolve(rev)

    def push_ref(self, refspec: str) -> PushResult:
        """Push one refspec to origin (never forced); a lost race is REJECTED."""
        with self._lock:
            return self._push(refspec)

    # --- sync and read ---------------------------------------------------------------

    def sync(self) -> str:
        """Fetch the branch and the notes; return the sha of origin/<branch>."""
        with self._lock:
            self._run(
                "fetch",
                "--prune",
                "--no-tags",
                "origin",
                f"+refs/heads/{self.branch}:{self.remote_ref}",
                *(refspec for refspec, _ in self._fetch_hooks),
                network=True,
            )
            for _, after in self._fetch_hooks:
                after()
            head = self._resolve(self.remote_ref)
            log.debug("synced %s %s at %s", self.display_url, self.branch, head)
            return head

    def head(self) -> str:
        """The last fetched sha of origin/<branch> (no network)."""
        with self._lock:
            return self._resolve(self.remote_ref)

    def read_tree(self, commit: str, folder: str) -> list[tuple[str, str]]:
        """(path, text) of every *.yaml / *.yml under `folder` at `commit`, sorted by path.

        Paths are repository-relative. Symlinks and submodules are skipped: their blob is
        not a spec. Raises PathNotFound if the folder is absent (fail closed: a missing
        folder must not read as "no models").
        """
        with self._lock:
            tree = self._commit(commit).tree
            folder = _clean_relpath(folder)
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
                item = self._commit(commit).tree[_clean_relpath(path)]
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
                [_clean_relpath(p) for p in paths],
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
                _clean_relpath(folder) or ".",
            )
        found = []
        for record in out.split("\x1e")[1:]:
            header, _, names = record.partition("\n")
            shas, _, when = header.partition("\x1f")
            sha, *parents = shas.split()
            paths = tuple(line.strip() for line in names.splitlines() if line.strip())
            found.append(FileChanges(sha, parents[0] if parents else None, int(when), paths))
        return found

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
            rel = _clean_relpath(path)
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

    # --- pushing ---------------------------------------------------------------------

    def push(self, sha: str) -> PushResult:
        """Push `sha` to origin/<branch> as a fast-forward; never forces."""
        with self._lock:
            return self._push(f"{self._resolve(sha)}:refs/heads/{self.branch}")

    def _push(self, refspec: str) -> PushResult:
        if refspec.startswith("+"):
            raise ValueError("the controller never force-pushes")
        status, out, err = self._try(
            "push", "--porcelain", "origin", refspec, kill_after_timeout=self.timeout
        )
        if status == 0:
            return PushResult(PushStatus.OK)
        detail = redact(" ".join(f"{out}\n{err}".split()))
        if _is_race(out, err):
            log.info("push of %s rejected (someone pushed first): %s", refspec, detail)
            return PushResult(PushStatus.REJECTED, detail)
        log.warning("push of %s failed: %s", refspec, detail)
        return PushResult(PushStatus.ERROR, detail)

    def push_branch(self, sha: str, branch: str) -> PushResult:
        """Push `sha` to refs/heads/`branch` on origin (creating it); never forces."""
        if not branch or branch.startswith("-") or any(c.isspace() for c in branch):
            raise ValueError(f"not a branch name: {branch!r}")
        with self._lock:
            return self._push(f"{self._resolve(sha)}:refs/heads/{branch}")

    def fetch_branch(self, branch: str) -> str | None:
        """Fetch origin's `branch` into refs/remotes/origin/; its sha, None if absent."""
        with self._lock:
            listing = self._run(
                "ls-remote", "--heads", "origin", f"refs/heads/{branch}", network=True
            )
            if not listing.strip():
                return None
            self._run(
                "fetch", "--no-tags", "origin",
                f"+refs/heads/{branch}:refs/remotes/origin/{branch}", network=True,
            )
            return self._resolve(f"refs/remotes/origin/{branch}")

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

def _is_race(out: str, err: str) -> bool:
    """A push lost to a concurrent update (as opposed to auth, hooks or the network)."""
    text = f"{out}\n{err}".lower()
    if "[rejected]" in text and ("fetch first" in text or "non-fast-forward" in text):
        return True
    # Two pushes landing at the same instant: the loser's ref lock or CAS fails remotely.
    return "[remote rejected]" in text and ("cannot lock ref" in text or "failed to update" in text)


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


_filter_lock = threading.Lock()
_filter_installed = False


def _install_log_filter() -> None:
    """gitpython logs whole command lines (URLs included) at debug level: redact them."""
    global _filter_installed
    with _filter_lock:
        if not _filter_installed:
            for name in ("git", __name__):
                logging.getLogger(name).addFilter(RedactingFilter())
            _filter_installed = True
