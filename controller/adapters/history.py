"""What git history says about specs: versions the controller reverted before.

`rollouts validate`, run inside a git checkout, flags a spec whose canary
proposes a version the controller auto-reverted (from the commit trailers it
wrote), unless the spec says `canary.retry: true` (the rule is
`controller.decide.gates`', which the controller applies too). This breaks the revert loop
automation can fall into (re-proposing the same bad build on every merge).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from controller.adapters.redact import redact
from controller.decide.gates import reproposes_reverted
from controller.decide.trailers import auto_reverted_versions
from controller.spec.load import LoadedSpec, Problem

LOG_LIMIT = 5000
FETCH_TIMEOUT_S = 300
_SEPARATOR = "\x1e"  # record separator: never in a commit message


def git_messages(start: Path, limit: int = LOG_LIMIT) -> list[str] | None:
    """Commit messages of HEAD's history in the repository holding `start`, or None."""
    directory = start if start.is_dir() else start.parent
    try:
        result = subprocess.run(
            ["git", "log", f"--max-count={limit}", f"--format=%B{_SEPARATOR}"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None  # not a git checkout, or no commits yet
    return [m.strip() for m in result.stdout.split(_SEPARATOR) if m.strip()]


def reproposed_problems(
    documents: Iterable[LoadedSpec], reverted: Mapping[str, frozenset[int]]
) -> list[Problem]:
    problems = []
    for document in documents:
        body = document.spec.spec
        canary = body.canary
        if canary is None:
            continue
        if reproposes_reverted(canary.version, canary.retry,
                               reverted.get(body.model.name, frozenset())):
            line, col = document.where(("spec", "canary", "version"))
            problems.append(
                Problem(
                    document.path,
                    line,
                    col,
                    f"canary.version {canary.version} of model {body.model.name!r} was "
                    "automatically reverted before (see the Rollouts-Reverted-Version "
                    "trailer in git log); set canary.retry: true to propose it again",
                )
            )
    return problems


def history_problems(documents: list[LoadedSpec], paths: Iterable[str | Path]) -> list[Problem]:
    """Re-proposed reverted versions, when the specs live in a git checkout.

    A shallow clone (CI's usual checkout) lacks the history that holds the
    controller's revert commits: it is deepened first, and if that fails the
    check fails loudly with the fix instead of passing unchecked.
    """
    first = next(iter(paths), None)
    if first is None or not documents:
        return []
    start = Path(first).resolve()
    failure = complete_history(start)
    if failure:
        return [Problem(str(first), 0, 0, failure, "io")]
    messages = git_messages(start)
    if messages is None:
        return []
    return reproposed_problems(documents, auto_reverted_versions(messages))


def complete_history(start: Path) -> str:
    """Fetch the whole history into a shallow checkout; "" when done or not needed.

    Only commit messages are read (the Rollouts-Reverted-Version trailer is on the
    revert commit itself), so whole history is all the check needs.
    """
    directory = start if start.is_dir() else start.parent
    shallow = _git(directory, "rev-parse", "--is-shallow-repository")
    if shallow is None or shallow.returncode != 0 or shallow.stdout.strip() != "true":
        return ""
    remote = _remote(directory)
    fetched = _git(directory, "fetch", "--quiet", "--unshallow", "--no-tags", remote,
                   timeout=FETCH_TIMEOUT_S)
    if fetched is not None and fetched.returncode == 0:
        return ""
    reason = (fetched.stderr.strip().splitlines() or ["no answer"])[-1] if fetched else "timed out"
    return (
        f"cannot check for re-proposed auto-reverted versions: {directory} is a shallow "
        f"clone and fetching its history from {remote!r} failed ({redact(reason)}). "
        "Fetch the whole history first (`git fetch --unshallow`), or in GitHub Actions "
        "check out with `fetch-depth: 0` (docs/ci.md)"
    )


def _remote(directory: Path) -> str:
    """The remote HEAD's branch tracks, else origin."""
    branch = _git(directory, "rev-parse", "--abbrev-ref", "HEAD")
    name = branch.stdout.strip() if branch is not None and branch.returncode == 0 else ""
    if name and name != "HEAD":
        tracked = _git(directory, "config", f"branch.{name}.remote")
        if tracked is not None and tracked.returncode == 0 and tracked.stdout.strip():
            return tracked.stdout.strip()
    return "origin"


def _git(
    directory: Path, *args: str, timeout: float = 30
) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
