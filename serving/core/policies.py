"""Transition policies: which single load or unload a model needs next.

Pure and stateless, like TF Serving's AspiredVersionPolicy::GetNextAction:
the manager passes a snapshot of every version of one model and applies the
action returned (or none). Re-asking with the same snapshots gives the same
answer, so the manager may ask after every event.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from serving.core.states import VersionState

__all__ = [
    "Action",
    "TransitionPolicy",
    "VersionSnapshot",
    "VersionState",
    "next_action",
]


class TransitionPolicy(enum.StrEnum):
    AVAILABILITY_PRESERVING = "availability_preserving"
    RESOURCE_PRESERVING = "resource_preserving"


@dataclass(frozen=True)
class VersionSnapshot:
    version: int
    state: VersionState
    is_aspired: bool


@dataclass(frozen=True)
class Action:
    kind: Literal["load", "unload"]
    version: int


def next_action(policy: TransitionPolicy, snapshots: Sequence[VersionSnapshot]) -> Action | None:
    """The next action for one model under `policy`, or None when nothing is to be done."""
    if policy is TransitionPolicy.RESOURCE_PRESERVING:
        return _resource_preserving(snapshots)
    return _availability_preserving(snapshots)


def _highest_new_aspired(snapshots: Sequence[VersionSnapshot]) -> Action | None:
    # Only START versions are loadable: an aspired version that ended in error
    # is not retried by the policy (the manager decides about retries).
    candidates = [s.version for s in snapshots if s.is_aspired and s.state is VersionState.START]
    return Action("load", max(candidates)) if candidates else None


def _availability_preserving(snapshots: Sequence[VersionSnapshot]) -> Action | None:
    """Load the new version first; unload an old one only when that keeps the model serving.

    An unaspired AVAILABLE version is unloaded (lowest first) when nothing is
    aspired at all (the goal is to unload everything), when an aspired version
    is already AVAILABLE, or when several unaspired versions are AVAILABLE (one
    of them still serves). Otherwise it keeps serving, also while the new
    version loads or after it failed.
    """
    has_aspired = any(s.is_aspired for s in snapshots)
    has_aspired_available = any(
        s.is_aspired and s.state is VersionState.AVAILABLE for s in snapshots
    )
    unaspired_available = [
        s.version for s in snapshots if not s.is_aspired and s.state is VersionState.AVAILABLE
    ]
    if unaspired_available and (
        not has_aspired or has_aspired_available or len(unaspired_available) > 1
    ):
        return Action("unload", min(unaspired_available))
    return _highest_new_aspired(snapshots)


def _resource_preserving(snapshots: Sequence[VersionSnapshot]) -> Action | None:
    """Unload first; load the highest new aspired version once nothing unaspired holds resources."""
    for s in sorted(snapshots, key=lambda s: s.version):
        if not s.is_aspired and s.state is VersionState.AVAILABLE:
            return Action("unload", s.version)
    # An unaspired version still LOADING or UNLOADING would overlap with the
    # new load; wait until it reaches END.
    if any(not s.is_aspired and s.state is not VersionState.END for s in snapshots):
        return None
    return _highest_new_aspired(snapshots)
