"""waiting.readiness: which requests that find nothing to serve them may wait for a load."""

from __future__ import annotations

import pytest

from serving.core.policies import VersionSnapshot
from serving.core.states import VersionState
from serving.core.waiting import Readiness, readiness

S, L, A, U, E = (
    VersionState.START,
    VersionState.LOADING,
    VersionState.AVAILABLE,
    VersionState.UNLOADING,
    VersionState.END,
)
READY, COMING, NEVER = Readiness.READY, Readiness.COMING, Readiness.NEVER


def snaps(*entries: tuple[int, VersionState, bool]) -> list[VersionSnapshot]:
    return [VersionSnapshot(v, state, aspired) for v, state, aspired in entries]


@pytest.mark.parametrize(
    ("entries", "version", "expected"),
    [
        # Latest: anything AVAILABLE serves it.
        ([(1, A, True)], None, READY),
        ([(1, A, False), (2, L, True)], None, READY),
        # The resource-preserving gap: the old one unloading, the new one queued or loading.
        ([(1, U, False), (2, S, True)], None, COMING),
        ([(1, E, False), (2, L, True)], None, COMING),
        # A version unloading that is aspired again is loaded again after its unload.
        ([(1, U, True)], None, COMING),
        # Nothing on its way: an unknown model, a failed load, unloading for good.
        ([], None, NEVER),
        ([(2, E, True)], None, NEVER),
        ([(1, U, False)], None, NEVER),
        ([(2, S, False)], None, NEVER),
        # A specific version (or a label's): only that version counts.
        ([(2, A, True)], 2, READY),
        ([(1, A, True), (2, L, True)], 2, COMING),
        ([(1, U, False), (2, S, True)], 2, COMING),
        ([(1, A, True), (2, L, True)], 3, NEVER),
        ([(1, U, False), (2, S, True)], 1, NEVER),
        ([(2, E, True)], 2, NEVER),
        ([(1, A, True), (2, L, False)], 2, NEVER),
    ],
)
def test_readiness(entries: list[tuple[int, VersionState, bool]], version: int | None,
                   expected: Readiness) -> None:
    assert readiness(snaps(*entries), version) is expected
