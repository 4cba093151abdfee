"""The demo's workspace: a temporary GitOps world on the local disk.

    <root>/
      remote.git/     bare repository: the "GitHub" both the person and the controller push to
      person/         a person's clone: edits rollouts/<model>.yaml, commits, pushes, reverts
      models/<model>/ the model root the server loads versions from (1/ .. 4/)
      state/          the controller's own clone
      logs/           the server's output

Git runs with a fixed identity and without the user's global or system config,
so a `commit.gpgsign` or a hook of theirs cannot break (or sign) demo commits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from controller.spec.durations import format_duration

PERSON = ("Pat Person", "pat@example.test")
NOTES_REF = "refs/notes/rollouts"
GIT_TIMEOUT_S = 30.0


class WorkspaceError(RuntimeError):
    """A git command of the demo failed; the message carries git's stderr."""


@dataclass(frozen=True)
class Timings:
    """How fast the demo's canaries move; `--fast` uses FAST (CI), otherwise NORMAL."""

    interval_s: float
    holds_s: tuple[float, ...]  # one per step
    weights: tuple[int, ...]  # percent of users on the canary, per step
    min_requests: int
    failure_limit: int
    poll_s: float
    reconcile_s: float
    # A dark launch's weight-0 step: long enough for `failure_limit` intervals
    # and then some, so a wrong version is always caught inside it.
    dark_hold_s: float = 30.0


NORMAL = Timings(
    interval_s=5, holds_s=(15, 15, 15), weights=(10, 25, 50), min_requests=30,
    failure_limit=2, poll_s=1.0, reconcile_s=0.5, dark_hold_s=30,
)
FAST = Timings(
    interval_s=1, holds_s=(2, 2), weights=(20, 50), min_requests=10, failure_limit=2,
    poll_s=0.5, reconcile_s=0.25, dark_hold_s=10,
)
# Every demo canary is also scored on its answers: this share of the requests
# either side answers is run on the other side too, and the answers compared.
SHADOW_SAMPLE = 0.5


def spec_text(model: str, stable: int, canary: int | None, timings: Timings, *,
              dark_launch: bool = False) -> str:
    """The demo's rollout spec: steady at `stable`, or canarying `canary` step by step.

    With `dark_launch` the steps start with weight 0: the canary is loaded,
    labelled and judged on shadow-scored requests while no user is answered by it.
    """
    text = (
        "# yaml-language-server: $schema=../schemas/rollout.schema.json\n"
        "# The demo's model. Bump `canary.version` to roll a new version out.\n"
        "apiVersion: rollouts/v1\n"
        "kind: ModelRollout\n"
        f"metadata: {{name: {model.replace('_', '-')}}}\n"
        "spec:\n"
        f"  model: {{name: {model}}}  # directory under the model root\n"
        f"  stable: {stable}\n"
    )
    if canary is None:
        return text
    steps = list(zip(timings.weights, timings.holds_s, strict=True))
    if dark_launch:
        steps.insert(0, (0, timings.dark_hold_s))
    step_text = ", ".join(f"{{weight: {w}, hold: {format_duration(h)}}}" for w, h in steps)
    return text + (
        "  canary:\n"
        f"    version: {canary}\n"
        "    split: {hashKey: x-user-id}  # each user sticks to one side\n"
        f"    shadow: {{sample: {SHADOW_SAMPLE:g}}}  # also scored on the other side, compared\n"
        + ("    # weight 0 first: a dark launch, judged before any user sees it\n"
           if dark_launch else "")
        + f"    steps: [{step_text}]\n"
        "    analysis:\n"
        f"      interval: {format_duration(timings.interval_s)}\n"
        f"      minRequests: {timings.min_requests}\n"
        f"      failureLimit: {timings.failure_limit}\n"
        "      checks:\n"
        # v3's bug rejects valid inputs (INVALID_ARGUMENT): count that as an
        # error too, beside the server-side failures counted by default.
        "        errorRate: {max: 0.02, codes: [INVALID_ARGUMENT, INTERNAL, UNKNOWN, "
        "UNAVAILABLE, DEADLINE_EXCEEDED, DATA_LOSS, RESOURCE_EXHAUSTED]}\n"
        "        latencyP99: {max: 500ms}\n"
        # Answers: a request "differs" when an element is off by more than the
        # tolerance; v4's are all 0.2 off, v2's 0.0005.
        "        predictionDiff: {tolerance: 0.001, maxDifferingRate: 0.01, maxMeanAbs: 0.01}\n"
    )


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_AUTHOR_NAME=PERSON[0],
        GIT_AUTHOR_EMAIL=PERSON[1],
        GIT_COMMITTER_NAME=PERSON[0],
        GIT_COMMITTER_EMAIL=PERSON[1],
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
    )
    return env


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd`; raise WorkspaceError with its stderr when it fails."""
    try:
        result = subprocess.run(
            ["git", *args], cwd=cwd, env=git_env(), capture_output=True, text=True,
            timeout=GIT_TIMEOUT_S, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise WorkspaceError(f"git {' '.join(args)} timed out after {GIT_TIMEOUT_S:g}s") from exc
    if result.returncode != 0:
        raise WorkspaceError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


class Workspace:
    """The directories above, and the person's git moves on them."""

    def __init__(self, root: Path, model: str) -> None:
        self.root = root
        self.model = model
        self.remote = root / "remote.git"
        self.clone = root / "person"
        self.model_root = root / "models"
        self.state_dir = root / "state"
        self.logs = root / "logs"

    @classmethod
    def create(cls, model: str, parent: Path | None = None) -> Workspace:
        root = Path(tempfile.mkdtemp(prefix="rollouts-demo-", dir=parent))
        workspace = cls(root, model)
        for folder in (workspace.model_root, workspace.state_dir, workspace.logs):
            folder.mkdir(parents=True)
        git(root, "init", "--bare", "-q", "-b", "main", str(workspace.remote))
        git(root, "clone", "-q", str(workspace.remote), str(workspace.clone))
        git(workspace.clone, "checkout", "-q", "-b", "main")
        return workspace

    @property
    def spec_path(self) -> str:
        return f"rollouts/{self.model.replace('_', '-')}.yaml"

    @property
    def model_base(self) -> Path:
        return self.model_root / self.model

    def commit_spec(self, text: str, message: str) -> str:
        """The person edits the spec, commits and pushes to main; returns the new sha."""
        self.pull()
        path = self.clone / self.spec_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        git(self.clone, "add", self.spec_path)
        git(self.clone, "commit", "-q", "-m", message)
        return self.push()

    def revert(self, *shas: str) -> str:
        """The person's `git revert` of `shas` (newest first), pushed; returns the new head."""
        self.pull()
        git(self.clone, "revert", "--no-edit", *shas)
        return self.push()

    def pull(self) -> None:
        if self._has_head():
            git(self.clone, "pull", "-q", "--rebase", "origin", "main")

    def _has_head(self) -> bool:
        return bool(git(self.remote, "for-each-ref", "refs/heads/main"))

    def push(self, attempts: int = 3) -> str:
        """Push HEAD to main; if the controller pushed first, rebase onto it and retry."""
        for attempt in range(1, attempts + 1):
            try:
                git(self.clone, "push", "-q", "origin", "HEAD:main")
                break
            except WorkspaceError:
                if attempt == attempts:
                    raise
                self.pull()
        return git(self.clone, "rev-parse", "HEAD")

    def fetch_notes(self) -> None:
        if git(self.remote, "for-each-ref", NOTES_REF):
            git(self.clone, "fetch", "-q", "origin", f"+{NOTES_REF}:{NOTES_REF}")

    def log(self, limit: int = 20) -> list[tuple[str, str, str]]:
        """(short sha, author, subject) on the remote's main, newest first."""
        if not self._has_head():
            return []
        out = git(self.remote, "log", f"-{limit}", "--format=%h%x09%an%x09%s", "main")
        return [tuple(line.split("\t", 2)) for line in out.splitlines()]  # type: ignore[misc]

    def message(self, rev: str) -> str:
        return git(self.remote, "log", "-1", "--format=%B", rev)

    def find_subject(self, prefix: str) -> str | None:
        """The newest commit on main whose subject starts with `prefix`, as a full sha."""
        if not self._has_head():
            return None
        for line in git(self.remote, "log", "--format=%H %s", "main").splitlines():
            sha, _, subject = line.partition(" ")
            if subject.startswith(prefix):
                return sha
        return None

    def notes_log(self) -> str:
        """`git log --notes=rollouts` of the person's clone, after fetching the notes."""
        self.pull()
        self.fetch_notes()
        return git(self.clone, "log", "--notes=rollouts", "main")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
