"""Whether a request that cannot be served now should wait for a load.

Pure, like `policies`: the manager passes the snapshots of one model and the
version a request resolved to (None: the latest). A request is worth holding
only while a version that would serve it is on its way in (aspired and not yet
AVAILABLE, e.g. the gap of a resource-preserving swap, where the old version is
unloaded before the new one loads). Anything else (an unknown version, one
that failed, one being unloaded for good) fails at once, as TF Serving does.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from serving.core.policies import VersionSnapshot
from serving.core.states import VersionState

__all__ = ["Readiness", "readiness"]

# An aspired version in one of these states will be AVAILABLE unless its load
# fails; an aspired UNLOADING version is loaded again once its unload ends.
_ON_ITS_WAY = frozenset({VersionState.START, VersionState.LOADING, VersionState.UNLOADING})


class Readiness(enum.Enum):
    READY = "ready"  # servable now
    COMING = "coming"  # not servable now; a load under way (or queued) would serve it
    NEVER = "never"  # nothing is about to serve it: fail at once


def _coming(snapshot: VersionSnapshot) -> bool:
    return snapshot.is_aspired and snapshot.state in _ON_ITS_WAY


def readiness(snapshots: Sequence[VersionSnapshot], version: int | None) -> Readiness:
    """For a request for `version` of a model (None: its latest available version)."""
    if version is None:
        if any(s.state is VersionState.AVAILABLE for s in snapshots):
            return Readiness.READY
        return Readiness.COMING if any(_coming(s) for s in snapshots) else Readiness.NEVER
    for s in snapshots:
        if s.version == version:
            if s.state is VersionState.AVAILABLE:
                return Readiness.READY
            return Readiness.COMING if _coming(s) else Readiness.NEVER
    return Readiness.NEVER
