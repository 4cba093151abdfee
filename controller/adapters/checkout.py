"""A person's checkout of the specs repo, driven with their own `git` (subprocess).

`rollouts promote | abort | retry` run where a person works: commits carry the
person's git identity and signing settings, and pushes use their credentials. With
`--repo URL` the command clones into a temporary directory first. Only what the
actions need: the top level, the branch, history messages, whether the remote
has moved on, commit one file, push.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["Checkout", "CheckoutError"]

_SEPARATOR = "\x1e"  # record separator: never in a commit message
_TIMEOUT_S = 120.0  # a push over a slow link; a hung git must not hang the command


class CheckoutError(RuntimeError):
    """A git command failed; the message has git's own words."""


def _why(output: str) -> str:
    """git's own reason for failing: the remote's words and git's error lines, not the
    hints after them (a rejected push ends with "hint: See the 'Note about
    fast-forwards'...")."""
    lines = [" ".join(line.split()) for line in output.strip().splitlines()]
    said = [line for line in lines if line.startswith(("remote:", "error:", "fatal:", "!"))]
    if not said:
        said = [line for line in lines if line and not line.startswith("hint:")][-1:]
    return "; ".join(said) or "failed"


class Checkout:
    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def _git(cwd: Path, *args: str) -> str:
        try:
            result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                                    timeout=_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise CheckoutError(f"git {args[0]}: {err}") from err
        if result.returncode != 0:
            raise CheckoutError(f"git {' '.join(args[:2])}: {_why(result.stderr or result.stdout)}")
        return result.stdout

    @classmethod
    def find(cls, start: Path) -> Checkout:
        """The checkout holding `start`; CheckoutError when it is not in one."""
        top = cls._git(start, "rev-parse", "--show-toplevel").strip()
        return cls(Path(top))

    @classmethod
    def clone(cls, url: str, into: Path, branch: str) -> Checkout:
        cls._git(into.parent, "clone", "-q", "--branch", branch, url, str(into))
        return cls(into)

    def git(self, *args: str) -> str:
        return self._git(self.root, *args)

    def branch(self) -> str:
        return self.git("rev-parse", "--abbrev-ref", "HEAD").strip()

    def identity(self) -> str:
        """`Name <email>` of whoever commits here (git's configuration and GIT_* vars)."""
        ident = self.git("var", "GIT_AUTHOR_IDENT").strip()  # "Name <email> time zone"
        return ident.rsplit(" ", 2)[0]

    def messages(self, limit: int = 5000) -> list[str]:
        out = self.git("log", f"--max-count={limit}", f"--format=%B{_SEPARATOR}")
        return [m.strip() for m in out.split(_SEPARATOR) if m.strip()]

    def is_shallow(self) -> bool:
        return self.git("rev-parse", "--is-shallow-repository").strip() == "true"

    def commit(self, path: Path, message: str) -> str:
        """Commit `path` (already written) alone; returns the new commit's sha."""
        relative = str(path.resolve().relative_to(self.root.resolve()))
        self.git("add", "--", relative)
        self.git("commit", "-q", "-m", message, "--", relative)
        return self.git("rev-parse", "HEAD").strip()

    def new_branch(self, name: str) -> None:
        self.git("checkout", "-q", "-b", name)

    def switch(self, name: str) -> None:
        self.git("checkout", "-q", name)

    def behind(self, remote: str, branch: str) -> int:
        """How many commits `remote`'s `branch` has that HEAD lacks, fetched now; 0 when
        the remote has no such branch (nothing to be behind of)."""
        self.git("fetch", "-q", remote)
        ref = f"refs/remotes/{remote}/{branch}"
        try:
            self.git("rev-parse", "--verify", "-q", ref)
        except CheckoutError:
            return 0
        return int(self.git("rev-list", "--count", f"HEAD..{ref}").strip())

    def push(self, remote: str, refspec: str) -> None:
        self.git("push", "-q", remote, refspec)
