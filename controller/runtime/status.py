"""The controller's status document: its typed schema and how it is built (pure).

`GET /status` serves it, `rollouts status` and the demo read it. Keys are camelCase,
like the rollout specs. `ControllerState` is what it is built from: only what git,
the notes and the targets can rebuild after a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict, cast

from controller.adapters.redact import redact
from controller.decide.desired import Snapshot
from controller.decide.fleet import ObservedTarget
from controller.decide.gates import HELD_PHASES
from controller.decide.previous import KeptPrevious
from controller.runtime.pulls import PullStatus
from controller.runtime.reconcile import ReconcileResult
from controller.runtime.rollout_status import FAILED_HELD, RolloutStatus

__all__ = [
    "ControllerState",
    "FindingDoc",
    "IntervalDoc",
    "ModelDoc",
    "PreviousDoc",
    "PullRequestDoc",
    "RolloutDoc",
    "StatusDoc",
    "TargetDoc",
    "previous_doc",
    "pull_request_doc",
    "rollout_doc",
    "status_document",
]

# How many of a canary's latest intervals the document carries.
INTERVALS_SHOWN = 5


class IntervalDoc(TypedDict, total=False):
    """One analysis interval, as journaled (`verdict_text.interval_detail`)."""

    outcome: str
    at: float
    summary: str
    weightBp: int
    reasons: list[str]
    canary: dict[str, Any]
    stable: dict[str, Any]


class RolloutDoc(TypedDict):
    model: str
    version: int
    phase: str
    step: int
    steps: int
    stepText: str
    weightBp: int
    canaryCommit: str
    message: str
    intervals: list[IntervalDoc]
    awaitingMerge: str  # the branch its verdict waits on (write-back "branch"), or ""
    pullRequest: str  # the pull request it runs from (--pull-requests), or ""


class TargetDoc(TypedDict):
    reachable: bool
    error: str
    versions: dict[str, str]
    labels: dict[str, int]
    splitWeightBp: int | None


class PreviousDoc(TypedDict):
    """The previous stable kept loaded (keepPrevious) and when it is dropped."""

    version: int
    until: str  # ISO 8601, UTC
    commit: str  # the commit that moved stable away from it: reverting it is instant


class ModelDoc(TypedDict):
    commitApplied: str
    stable: int | None
    canary: int | None
    versions: list[int]
    labels: dict[str, int]
    splitWeightBp: int | None
    # What the reachable targets actually serve the canary (None: they disagree or
    # none answers); splitWeightBp above is the spec's.
    servingWeightBp: int | None
    targets: dict[str, TargetDoc]
    rollout: RolloutDoc | None
    previous: PreviousDoc | None
    errors: list[str]


class FindingDoc(TypedDict):
    target: str
    model: str
    message: str


class HeldDoc(TypedDict):
    model: str
    version: int
    phase: str
    message: str


class PullRequestDoc(TypedDict):
    """A pull request's canary of one model (`--pull-requests`), or why it has none."""

    pull: str
    head: str
    # running | ready_to_merge | waiting | failed | not_candidate
    phase: str
    model: str  # "" for a pull request that proposes no canary
    version: int | None
    reason: str


class StatusDoc(TypedDict):
    repo: str
    branch: str
    commitSeen: str
    commitApplied: str
    inSync: bool
    specErrors: list[str]
    gitError: str
    lastReconcileAt: str
    reconcileErrors: list[str]
    findings: list[FindingDoc]
    # Canaries the spec proposes and the controller keeps out of traffic: blocked or
    # held by history gates, or failed and held for a person (analysis.onFailure: pause).
    held: list[HeldDoc]
    models: dict[str, ModelDoc]
    # Every open pull request, oldest first (`--pull-requests`; empty without it).
    pullRequests: list[PullRequestDoc]


@dataclass
class ControllerState:
    """What the status endpoint shows; rebuilt from git and targets after a restart."""

    commit_seen: str = ""
    commit_applied: str = ""
    # Per model: the commit whose spec for it is fully applied on every target.
    model_commits: dict[str, str] = field(default_factory=dict)
    snapshot: Snapshot | None = None
    # What the fleet is driven to: `snapshot` with pull request canaries composed in.
    serving: Snapshot | None = None
    # Where each open pull request's canary stands (`--pull-requests`).
    pulls: tuple[PullStatus, ...] = ()
    rollouts: dict[str, RolloutStatus] = field(default_factory=dict)
    spec_errors: list[str] = field(default_factory=list)
    git_error: str = ""
    last_result: ReconcileResult | None = None
    last_reconcile_at: str = ""
    webhook_deliveries: int = 0
    # Per model: the previous stable kept loaded (keepPrevious), from git history.
    previous: dict[str, KeptPrevious] = field(default_factory=dict)


def rollout_doc(status: RolloutStatus) -> RolloutDoc:
    """What `rollouts status` shows for one canary."""
    return {
        "model": status.model,
        "version": status.version,
        "phase": status.phase,
        "step": status.step,
        "steps": status.steps,
        "stepText": f"{min(status.step + 1, status.steps)}/{status.steps}",
        "weightBp": status.weight_bp,
        "canaryCommit": status.canary_commit,
        "message": status.message,
        "intervals": [cast(IntervalDoc, dict(i)) for i in status.intervals[-INTERVALS_SHOWN:]],
        "awaitingMerge": status.awaiting_merge,
        "pullRequest": status.pull_request,
    }


def previous_doc(kept: KeptPrevious | None) -> PreviousDoc | None:
    if kept is None:
        return None
    until = datetime.fromtimestamp(kept.until, UTC).isoformat(timespec="seconds")
    return {"version": kept.version, "until": until, "commit": kept.commit}


def serving_weight(model: str, observed: Iterable[ObservedTarget]) -> int | None:
    """The canary weight every reachable target serves `model` at (0 without a
    split), or None when they disagree or none is reachable."""
    weights = {
        (seen.split.canary_weight_bp if seen.split else 0)
        for target in observed if target.reachable
        for seen in [target.models.get(model)] if seen is not None
    }
    return weights.pop() if len(weights) == 1 else None


def _target_doc(name: str, seen: ObservedTarget | None) -> TargetDoc:
    obs = seen.models.get(name) if seen and seen.reachable else None
    return {
        "reachable": bool(seen and seen.reachable),
        "error": seen.error if seen else "not observed yet",
        "versions": {str(v): s for v, s in sorted(obs.states.items())} if obs else {},
        "labels": dict(obs.labels) if obs else {},
        "splitWeightBp": obs.split.canary_weight_bp if obs and obs.split else None,
    }


def status_document(
    state: ControllerState, *, repo: str, branch: str, targets: Sequence[str]
) -> StatusDoc:
    """The document for `state`; `targets` are the configured targets' names, in order."""
    result = state.last_result
    observed = {t.name: t for t in result.observed} if result is not None else {}
    findings = result.findings if result is not None else ()
    models: dict[str, ModelDoc] = {}
    shown = state.serving or state.snapshot
    desired = shown.desired if shown else None
    for name, model in sorted((desired.models if desired else {}).items()):
        rollout = state.rollouts.get(name)
        models[name] = {
            "commitApplied": state.model_commits.get(name, ""),
            "stable": model.labels.get("stable"),
            "canary": model.labels.get("canary"),
            "versions": sorted(model.versions),
            "labels": dict(model.labels),
            "splitWeightBp": model.split.canary_weight_bp if model.split else None,
            "servingWeightBp": serving_weight(name, observed.values()),
            "targets": {t: _target_doc(name, observed.get(t)) for t in targets},
            "rollout": rollout_doc(rollout) if rollout is not None else None,
            "previous": previous_doc(state.previous.get(name)),
            "errors": [f.message for f in findings if f.model == name],
        }
    held: list[HeldDoc] = [
        {"model": r.model, "version": r.version, "phase": r.phase, "message": r.message}
        for _, r in sorted(state.rollouts.items())
        if r.phase in HELD_PHASES or r.phase == FAILED_HELD
    ]
    return {
        "repo": redact(repo),
        "branch": branch,
        "commitSeen": state.commit_seen,
        "commitApplied": state.commit_applied,
        # A held canary is git asking for something the fleet does not do: not in sync.
        "inSync": bool(result and result.in_sync) and state.commit_applied == state.commit_seen
        and not held,
        "specErrors": list(state.spec_errors),
        "gitError": state.git_error,
        "lastReconcileAt": state.last_reconcile_at,
        "reconcileErrors": list(result.errors) if result else [],
        "findings": [{"target": f.target, "model": f.model, "message": f.message}
                     for f in findings],
        "held": held,
        "models": models,
        "pullRequests": [pull_request_doc(p) for p in state.pulls],
    }


def pull_request_doc(status: PullStatus) -> PullRequestDoc:
    return {"pull": status.pull, "head": status.head, "phase": status.phase,
            "model": status.model, "version": status.version,
            "reason": redact(status.reason)}
