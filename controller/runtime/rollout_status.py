"""Where one canary stands, as the rollout driver reports it.

`RolloutStatus` is built by `controller.runtime.rollout` every tick and read by
the status document (`controller.runtime.status`), the dashboard and
`rollouts status`; the phases named here are the ones those readers tell apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FAILED_HELD", "READY_TO_MERGE", "RolloutStatus"]


@dataclass
class RolloutStatus:
    """Where one canary stands (`controller.runtime.status` shows it)."""

    model: str
    version: int
    phase: str
    step: int
    steps: int
    weight_bp: int
    canary_commit: str = ""
    message: str = ""
    intervals: list[dict[str, Any]] = field(default_factory=list)
    due_at: float | None = None  # wall-clock time of this canary's next decision
    # The journal's other events (proposed, started, step, verdict), for the dashboard.
    events: list[dict[str, Any]] = field(default_factory=list)
    awaiting_merge: str = ""  # the branch its verdict waits on (write-back "branch")
    pull_request: str = ""  # the pull request it runs from (`--pull-requests`), or ""


# The phase of a failed canary that `analysis.onFailure: pause` holds for a person.
FAILED_HELD = "failed_held"
# The phase of a pull request's canary that passed: merging it promotes.
READY_TO_MERGE = "ready_to_merge"
