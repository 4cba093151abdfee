"""Instant rollback: the previous stable version kept loaded for a while (pure).

When a commit moves `spec.stable` (the controller's promotion, `rollouts promote`,
a person's edit or `git revert`), the version stable moved away from stays in the
config, labelled `previous` and out of the split, for `spec.keepPrevious` after
that commit's committer time. Reverting the move inside that window is then a
label move on versions that are already AVAILABLE: no load. After the window the
version is dropped (the planner moves the label first, then unloads).

The window is a function of git alone (the last commit that moved stable, its
time, the version before it) and the clock, so a restarted controller knows it
again. Only the latest move counts: reverting a promotion makes the newer version
the previous one, kept from the revert's time (as Argo Rollouts gives the
replaced ReplicaSet its own scaleDownDelay), and an older previous is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from controller.decide.fleet import DesiredModel, DesiredState
from controller.spec.fields import PREVIOUS_LABEL
from controller.spec.model import RolloutSpec

__all__ = [
    "KeptPrevious",
    "Revision",
    "StableMove",
    "history_start",
    "keep_previous",
    "kept_previous",
    "last_stable_move",
    "with_previous",
]


@dataclass(frozen=True)
class Revision:
    """One first-parent commit that changed a spec file, and `stable` on each side of
    it (None where the file or the model is absent or unreadable)."""

    commit: str
    committed_at: float
    stable: int | None
    stable_before: int | None


@dataclass(frozen=True)
class StableMove:
    """The last commit that moved a model's stable, and the version it moved from."""

    commit: str
    at: float  # the commit's committer time (unix seconds)
    previous: int


@dataclass(frozen=True)
class KeptPrevious:
    """The previous stable a model keeps loaded until `until` (unix seconds)."""

    model: str
    version: int
    until: float
    commit: str  # the commit that moved stable away from it (what to revert)


def last_stable_move(revisions: Iterable[Revision]) -> StableMove | None:
    """The newest revision (given newest first) that changed stable; None when the
    file or model first appears before any such change (there was no previous)."""
    for revision in revisions:
        if revision.stable == revision.stable_before:
            continue
        if revision.stable_before is None or revision.stable is None:
            return None
        return StableMove(revision.commit, revision.committed_at, revision.stable_before)
    return None


def kept_previous(doc: RolloutSpec, move: StableMove | None, now: float) -> KeptPrevious | None:
    """The version `doc` keeps as `previous` at `now`, or None (no move, keepPrevious
    0s, a resource-preserving model by default, or the window is over)."""
    body = doc.spec
    keep = body.keep_previous_s()
    if move is None or keep <= 0 or move.previous == body.stable:
        return None
    until = move.at + keep
    if now >= until:
        return None
    return KeptPrevious(body.model.name, move.previous, until, move.commit)


def history_start(docs: Iterable[RolloutSpec], now: float) -> float | None:
    """How far back git history can hold an open window: now - the longest
    keepPrevious; None when no model keeps a previous version at all."""
    longest = max((doc.spec.keep_previous_s() for doc in docs), default=0.0)
    return now - longest if longest > 0 else None


def with_previous(model: DesiredModel, kept: KeptPrevious | None) -> DesiredModel:
    """`model` with its kept previous version in the config and labelled `previous`.

    The label is only desired here; the planner assigns it once the version is
    AVAILABLE on every target (TF Serving's rule). A spec's own `labels.previous`
    takes precedence: the version is still kept, under the spec's labels only.
    """
    if kept is None:
        return model
    labels = dict(model.labels)
    labels.setdefault(PREVIOUS_LABEL, kept.version)
    return replace(model, versions=model.versions | {kept.version}, labels=labels)


def keep_previous(desired: DesiredState, kept: Mapping[str, KeptPrevious]) -> DesiredState:
    """Every model of `desired` with its kept previous version (see `with_previous`)."""
    if not kept:
        return desired
    models = {name: with_previous(model, kept.get(name)) for name, model in desired.models.items()}
    return DesiredState(desired.commit, models)
