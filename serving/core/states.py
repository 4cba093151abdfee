"""The lifecycle states of one model version, as GetModelStatus reports them.

TF Serving's ModelVersionStatus.State names. Its finer LoaderHarness states fold
into these: kNew -> START; kLoadRequested/kLoadApproved/kLoading -> LOADING;
kReady -> AVAILABLE; kUnloadRequested/kQuiescing/kQuiesced/kUnloading ->
UNLOADING; kDisabled/kError -> END (an END version with an error failed).
"""

from __future__ import annotations

import enum


class VersionState(enum.StrEnum):
    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"


# States in which a version holds (or is acquiring) its resources.
LOADED_STATES = frozenset({VersionState.LOADING, VersionState.AVAILABLE, VersionState.UNLOADING})
