"""The canary gates: when a canary may run, be judged, and be reverted (pure).

One home for rules that `rollouts validate`, `rollouts plan` and the running
controller must agree on:

- history gates (`history_gate`): a version the controller auto-reverted before is
  not proposed again (`blocked`), and a canary brought back by a person's revert of
  its promotion is a rollback, held out of traffic (`held`); `canary.retry: true`
  lifts both.
- readiness (`canary_ready`, `canary_load_error`): what the fleet must show before
  an analysis starts or an interval is judged.
- the revert gate (`canary_out_of_traffic`): a failed canary's revert commit is
  written only once no reachable target still routes to it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from controller.decide import trailers
from controller.decide.fleet import ObservedTarget

__all__ = [
    "Gate",
    "canary_load_error",
    "canary_out_of_traffic",
    "canary_ready",
    "canary_unloaded",
    "history_gate",
    "is_promotion_of",
    "reproposes_reverted",
    "reverted_commit",
]

_REVERTS = re.compile(r"This reverts commit ([0-9a-f]{7,40})")


GatePhase = Literal["blocked", "held"]
# The rollout phases of a canary kept out of traffic by a gate.
HELD_PHASES: tuple[GatePhase, ...] = ("blocked", "held")


@dataclass(frozen=True)
class Gate:
    """Why a canary is kept out of traffic before any analysis."""

    phase: GatePhase
    message: str


def reproposes_reverted(version: int, retry: bool, reverted: frozenset[int]) -> bool:
    """A canary proposing a version auto-reverted before, without `canary.retry`."""
    return version in reverted and not retry


def history_gate(
    version: int,
    retry: bool,
    *,
    reverted: frozenset[int],
    promotion_reverted: bool,
) -> Gate | None:
    """The gate git history puts on canary `version`, or None when it may run.

    `reverted`: the model's versions the controller auto-reverted (commit trailers).
    `promotion_reverted`: the commit that started the canary is a revert of the
    controller's promotion of this version (see `is_promotion_of`).
    """
    if reproposes_reverted(version, retry, reverted):
        return Gate("blocked", f"version {version} was auto-reverted before; set "
                               "canary.retry: true to propose it again")
    if promotion_reverted and not retry:
        # A person reverted the promotion: that is a rollback to the old stable,
        # not a request to canary the version again.
        return Gate("held", f"canary {version} came back by a revert of its promotion: "
                            "held out of traffic; set canary.retry: true to run it again")
    return None


def reverted_commit(message: str) -> str | None:
    """The commit a `git revert` commit message says it reverts, or None."""
    match = _REVERTS.search(message)
    return match.group(1) if match else None


def is_promotion_of(message: str, model: str, version: int) -> bool:
    """Whether a commit message is the controller's promotion of `model` to `version`."""
    parsed = trailers.RolloutTrailers.from_message(message)
    return parsed.model == model and parsed.promoted_version == version


def canary_ready(
    model: str, version: int, weight_bp: int, observed: Sequence[ObservedTarget],
    *, started: bool = True,
) -> bool:
    """AVAILABLE, labelled `canary` and split at `weight_bp` on every target.

    Before the analysis has started every target must answer: no canary starts
    while part of the fleet cannot be seen. Once started, a target that is down
    serves nothing and is left out; the intervals it cannot be measured in are
    skipped, and its config comes back when it does.
    """
    reachable = [t for t in observed if t.reachable]
    if not reachable or (not started and len(reachable) < len(observed)):
        return False
    for target in reachable:
        seen = target.models.get(model)
        if seen is None or not seen.is_available(version) or seen.labels.get("canary") != version:
            return False
        if target.extension and (seen.split is None or seen.split.canary_weight_bp != weight_bp):
            return False
    return True


def canary_load_error(model: str, version: int, observed: Sequence[ObservedTarget]) -> str:
    """The first load error of `version` (ended, not serving) on a reachable target, or ""."""
    for target in observed:
        seen = target.models.get(model) if target.reachable else None
        if seen is not None and seen.state(version) == "END" and seen.errors.get(version):
            return f"{target.name}: {seen.errors[version]}"
    return ""


def canary_out_of_traffic(model: str, version: int, observed: Sequence[ObservedTarget]) -> bool:
    """No reachable target still splits traffic to, or labels, the canary version."""
    for target in observed:
        if not target.reachable:
            continue
        seen = target.models.get(model)
        if seen is None:
            continue
        if seen.split is not None or seen.labels.get("canary") == version:
            return False
    return True



def canary_unloaded(model: str, version: int, observed: Sequence[ObservedTarget]) -> bool:
    """Some target answers and no reachable one has `version` of `model` loaded or on its
    way (absent or END): a person's abort of that canary is carried out."""
    reachable = [t for t in observed if t.reachable]
    if not reachable:
        return False
    for target in reachable:
        seen = target.models.get(model)
        if seen is not None and seen.state(version) not in (None, "END"):
            return False
    return True
