"""Test helpers: a bare git remote and a person's clone that commits and pushes specs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

ENV = {
    "GIT_AUTHOR_NAME": "Pat Person",
    "GIT_AUTHOR_EMAIL": "pat@example.test",
    "GIT_COMMITTER_NAME": "Pat Person",
    "GIT_COMMITTER_EMAIL": "pat@example.test",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
    "PATH": "/usr/bin:/bin:/usr/local/bin",
}


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=ENV, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


def rollouts(cwd: Path, *args: str,
             env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`rollouts ARGS` (this tree's) run in `cwd` as a person would, with git's identity
    from ENV (or `env` on top of it)."""
    full = ENV | {"PYTHONPATH": str(REPO), "PATH": os.environ["PATH"]} | dict(env or {})
    return subprocess.run([sys.executable, "-m", "controller", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=120, check=False)


class Person:
    """A clone of the remote where a person edits rollouts/ and pushes to main."""

    def __init__(self, root: Path) -> None:
        self.remote = root / "remote.git"
        self.clone = root / "person"
        git(root, "init", "--bare", "-q", "-b", "main", str(self.remote))
        git(root, "clone", "-q", str(self.remote), str(self.clone))
        git(self.clone, "checkout", "-q", "-b", "main")

    @property
    def url(self) -> str:
        return str(self.remote)

    def write(self, relpath: str, text: str, message: str) -> str:
        path = self.clone / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        git(self.clone, "add", relpath)
        git(self.clone, "commit", "-q", "-m", message)
        return self.push()

    def remove(self, relpath: str, message: str) -> str:
        git(self.clone, "rm", "-q", relpath)
        git(self.clone, "commit", "-q", "-m", message)
        return self.push()

    def push(self) -> str:
        git(self.clone, "push", "-q", "origin", "HEAD:main")
        return git(self.clone, "rev-parse", "HEAD")

    def pull(self) -> str:
        git(self.clone, "pull", "-q", "--no-rebase", "origin", "main")
        return git(self.clone, "rev-parse", "HEAD")

    def revert(self, sha: str) -> str:
        git(self.clone, "revert", "--no-edit", sha)
        return self.push()

    def push_pull(self, number: int, relpath: str, text: str, message: str) -> str:
        """Commit `text` on branch pr<N> off main and push it as GitHub keeps a pull
        request's head (`refs/pull/N/head`); a second push is the pull request changing."""
        git(self.clone, "checkout", "-q", "-B", f"pr{number}", "main")
        path = self.clone / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        git(self.clone, "add", relpath)
        git(self.clone, "commit", "-q", "-m", message)
        git(self.clone, "push", "-q", "-f", "origin", f"HEAD:refs/pull/{number}/head")
        head = git(self.clone, "rev-parse", "HEAD")
        git(self.clone, "checkout", "-q", "main")
        return head

    def merge_pull(self, number: int) -> str:
        """Merge pull request N into main with a merge commit, as a forge's button does."""
        self.pull()
        git(self.clone, "merge", "-q", "--no-ff", "-m", f"Merge pull request #{number}",
            f"pr{number}")
        return self.push()

    def close_pull(self, number: int) -> None:
        """Close pull request N unmerged: its head ref is gone."""
        git(self.clone, "push", "-q", "origin", f":refs/pull/{number}/head")

    def remote_log(self) -> list[str]:
        """Subjects on the remote's main, newest first."""
        return git(self.remote, "log", "--format=%s", "main").splitlines()

    def remote_file(self, relpath: str) -> str:
        return git(self.remote, "show", f"main:{relpath}")

    def remote_head(self) -> str:
        return git(self.remote, "rev-parse", "main")


def spec(
    name: str = "hp2",
    stable: int = 1,
    canary: int | None = None,
    extra: str = "",
    canary_block: str = "",
) -> str:
    text = (
        "# yaml-language-server: $schema=../schemas/rollout.schema.json\n"
        "apiVersion: rollouts/v1\n"
        "kind: ModelRollout\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        f"  model: {{name: {name}}}  # the model's directory under the model root\n"
        f"  stable: {stable}  # what everyone gets\n"
    )
    if canary is not None:
        text += f"  canary:\n    version: {canary}\n" + (
            canary_block or "    split: {hashKey: x-user-id}\n    steps: [{weight: 50, hold: 1h}]\n"
        )
    return text + extra
