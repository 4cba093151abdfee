"""A person's checkout of the specs repo, driven with their own `git` (subprocess).

`rollouts promote | abort | retry` run where a person works: commits carry the
person's git identity and signing settings, and pushes use their credentials. With
`--repo URL` the command clones into a temporary directory first. Only what the
actions need: the top level, the branch, history messages, commit one file, push.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["Checkout", "CheckoutError"]

_SEPARATOR = "\x1e"  # record separator: never in a commit message
_TIMEOUT_S = 120.0  # a push over a slow link; a hung git must not hang the command


class CheckoutError(RuntimeError):
    """A git command failed; the message has git's own words."""


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
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise CheckoutError(f"git {' '.join(args[:2])}: {detail[-1] if detail else 'failed'}")
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

    def push(self, remote: str, refspec: str) -> None:
        self.git("push", "-q", remote, refspec)
