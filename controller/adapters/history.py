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

from controller.decide.gates import reproposes_reverted
from controller.decide.trailers import auto_reverted_versions
from controller.spec.load import LoadedSpec, Problem

LOG_LIMIT = 5000
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
    """Re-proposed reverted versions, when the specs live in a git checkout."""
    first = next(iter(paths), None)
    if first is None or not documents:
        return []
    messages = git_messages(Path(first).resolve())
    if messages is None:
        return []
    return reproposed_problems(documents, auto_reverted_versions(messages))
