"""The controller's working clone: one git clone in its state directory, driven by gitpython.

Owns: creating (or adopting only a clone it made) the clone, its identity and
signing configuration, running git in it (a timeout on the network, messages
redacted, git pinned to English), fetching the followed branch and the extra refs
other adapters register (`also_fetch`), and pushing without ever force-pushing.
`controller.adapters.gitread` reads commits from it and `controller.adapters.gitrepo`
writes the controller's commits; the analysis notes are `controller.adapters.journal`'s,
on this same clone (`also_fetch`, `run`, `push_ref`).

Invariants:
- Nothing is force-pushed. A rejected push (someone else pushed first) is a normal,
  typed outcome (`PushStatus.REJECTED`), told apart from auth, hook or network errors.
- The configured identity is author and committer of every commit in the clone (the
  process environment cannot override it); with a `Signing` key the clone is set up
  for git's own signing (`user.signingkey`, `gpg.format` ssh or openpgp).
- No error message or log line carries credentials: every text that can hold a URL goes
  through `controller.adapters.redact`.

All public methods take the instance's lock: the runner's jobs may share one clone.
"""

from __future__ import annotations

import logging
import os
import posixpath
import threading
from collections.abc import Callable
from pathlib import Path

import git

from controller.adapters.gitresults import GitError, PushResult, PushStatus, Signing
from controller.adapters.redact import RedactingFilter, redact

__all__ = ["GitClone", "clean_relpath"]

log = logging.getLogger(__name__)

_MARKER = ("rollouts", "managed")  # config key marking a clone this module created
# Git's own messages are parsed (push rejections, conflicts): pin them to English and
# never let git wait for a password on a terminal nobody watches.
_GIT_ENV = {"LC_ALL": "C", "LANGUAGE": "C", "GIT_TERMINAL_PROMPT": "0"}
# gitpython's logger (it logs whole command lines, URLs included) and the git layer's own.
_REDACTED_LOGGERS = ("git", __name__, "controller.adapters.gitread", "controller.adapters.gitrepo")


def _redacted_error(exc: git.GitCommandError, action: str) -> str:
    stderr = (exc.stderr or "").strip().removeprefix("stderr:").strip().strip("'").strip()
    return redact(f"git {action} failed (exit {exc.status}): {stderr or 'no output'}")


def clean_relpath(path: str) -> str:
    """A repository-relative POSIX path; refuses absolute paths and `..`."""
    normal = posixpath.normpath(path.replace("\\", "/")).lstrip("/") if path else ""
    if normal in ("", "."):
        return ""
    if normal == ".." or normal.startswith("../") or path.startswith("/"):
        raise ValueError(f"not a path inside the repository: {path!r}")
    return normal


class GitClone:
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
        return (f"{type(self).__name__}({redact(self.url)!r}, {str(self.workdir)!r}, "
                f"branch={self.branch!r})")

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

    # --- fetching and pushing --------------------------------------------------------

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


def _is_race(out: str, err: str) -> bool:
    """A push lost to a concurrent update (as opposed to auth, hooks or the network)."""
    text = f"{out}\n{err}".lower()
    if "[rejected]" in text and ("fetch first" in text or "non-fast-forward" in text):
        return True
    # Two pushes landing at the same instant: the loser's ref lock or CAS fails remotely.
    return "[remote rejected]" in text and ("cannot lock ref" in text or "failed to update" in text)


_filter_lock = threading.Lock()
_filter_installed = False


def _install_log_filter() -> None:
    """gitpython logs whole command lines (URLs included) at debug level: redact them."""
    global _filter_installed
    with _filter_lock:
        if not _filter_installed:
            for name in _REDACTED_LOGGERS:
                logging.getLogger(name).addFilter(RedactingFilter())
            _filter_installed = True
