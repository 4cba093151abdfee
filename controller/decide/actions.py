"""A person's rollout actions as spec edits and commit messages (pure).

`rollouts promote | abort | retry MODEL` each turn the model's spec text into new
text with every comment kept (the same `yamledit` code the controller's own
commits use), and a commit message whose trailers say what was done, by whom and
why. An action that makes no sense for the spec as it stands is refused with a
message saying why; nothing is written then.

- promote: `stable` becomes the canary's version and the canary is removed (a
  manual gate, or skipping the remaining steps).
- abort: the canary is removed, so the controller takes it out of traffic and
  every target serves stable. It is recorded as `Rollouts-Verdict: abort`, not as
  an automatic revert (no `Rollouts-Reverted-Version`), so proposing the version
  again needs no `retry`.
- retry: for a version the controller reverted, `canary.retry: true`. For a canary
  whose spec says `analysis.onFailure: pause` (so a failure is held at weight 0,
  not reverted), `canary.attempt` + 1: the controller starts that version's analysis
  again from the first step, with a fresh journal on the retry commit. Refused
  otherwise: a canary with neither has nothing to retry.
- pause / resume: `canary.paused: true` holds the canary at its step and weight
  (intervals are still judged, no step advances, no verdict is written); `false`
  resumes the hold where it stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from controller.decide import trailers
from controller.spec import yamledit

__all__ = ["ACTIONS", "Action", "ActionRefused", "Edit", "plan_action"]

Action = Literal["promote", "abort", "retry", "pause", "resume"]
ACTIONS: tuple[Action, ...] = ("promote", "abort", "retry", "pause", "resume")

ACTION = "Rollouts-Action"
REQUESTED_BY = "Rollouts-Requested-By"
REASON = "Rollouts-Reason"


class ActionRefused(ValueError):
    """The action makes no sense for this spec; the message says why."""


@dataclass(frozen=True)
class Edit:
    text: str
    message: str


def _canary(text: str, model: str) -> int:
    try:
        version = yamledit.canary_version(text, model)
    except yamledit.YamlEditError as err:
        raise ActionRefused(str(err)) from err
    if version is None:
        raise ActionRefused(f"{model}: no canary in the spec, so nothing to act on")
    return version


def _message(subject: str, body: str, pairs: list[tuple[str, str]], by: str,
             reason: str) -> str:
    pairs = pairs + [(REQUESTED_BY, by)] + ([(REASON, " ".join(reason.split()))]
                                            if reason.strip() else [])
    return trailers.build_message(f"{subject}\n\n{body}", pairs)


def plan_action(
    action: Action,
    text: str,
    model: str,
    *,
    by: str,
    reason: str = "",
    reverted: Mapping[str, frozenset[int]] | None = None,
    retry_set: bool = False,
    paused_set: bool = False,
    holds_failures: bool = False,
) -> Edit:
    """The new spec text and commit message for `action`, or ActionRefused.

    `reverted` is what git history says the controller auto-reverted (model ->
    versions, from its trailers); `retry_set` whether the canary already has
    `retry: true`; `holds_failures` whether its `analysis.onFailure` is `pause`.
    """
    version = _canary(text, model)
    stable = yamledit.stable_version(text, model)
    if action == "promote":
        return Edit(
            yamledit.promote(text, model),
            _message(f"rollouts: promote {model} to {version} (by hand)",
                     f"stable {stable} -> {version}; the canary's remaining steps are skipped.",
                     [(trailers.MODEL, model), (trailers.VERDICT, "manual-promote"),
                      (trailers.CANARY_VERSION, str(version)),
                      (trailers.PROMOTED_VERSION, str(version)), (ACTION, "promote")],
                     by, reason),
        )
    if action == "abort":
        return Edit(
            yamledit.remove_canary(text, model),
            _message(f"rollouts: abort {model} canary {version}",
                     f"The canary leaves traffic; every target serves stable {stable}. "
                     "An abort is a person's choice, not a failed analysis: proposing "
                     f"version {version} again needs no retry.",
                     [(trailers.MODEL, model), (trailers.VERDICT, "abort"),
                      (trailers.CANARY_VERSION, str(version)), (ACTION, "abort")],
                     by, reason),
        )
    if action in ("pause", "resume"):
        pause = action == "pause"
        if pause == paused_set:
            raise ActionRefused(f"{model}: canary version {version} is "
                                + ("already paused" if pause else "not paused"))
        return Edit(
            yamledit.set_canary_flag(text, model, "paused", pause),
            _message(f"rollouts: {action} {model} canary {version}",
                     "canary.paused: true holds the canary at its current step and weight; "
                     "intervals are still judged, no step advances, no verdict is written."
                     if pause else
                     "canary.paused: false: the hold goes on from where the pause stopped it.",
                     [(trailers.MODEL, model), (trailers.CANARY_VERSION, str(version)),
                      (ACTION, action)],
                     by, reason),
        )
    reverted_before = version in (reverted or {}).get(model, frozenset())
    if holds_failures and (retry_set or not reverted_before):
        return _restart(text, model, version, by, reason)
    if not reverted_before:
        raise ActionRefused(
            f"{model}: canary version {version} was never reverted by the controller "
            "(no Rollouts-Reverted-Version trailer in git log), so there is nothing to "
            "retry; it will run as it is (with analysis.onFailure: pause, retry restarts "
            "a failed canary held at weight 0)")
    if retry_set:
        raise ActionRefused(f"{model}: canary version {version} already has retry: true")
    return Edit(
        yamledit.set_canary_flag(text, model, "retry", True),
        _message(f"rollouts: retry {model} canary {version}",
                 f"Version {version} was reverted by the controller before; "
                 "canary.retry: true proposes it again.",
                 [(trailers.MODEL, model), (trailers.CANARY_VERSION, str(version)),
                  (ACTION, "retry")],
                 by, reason),
    )


def _restart(text: str, model: str, version: int, by: str, reason: str) -> Edit:
    """`canary.attempt` + 1: the analysis of `version` starts again from the first step."""
    run = yamledit.canary_run(text, model)
    attempt = (run[1] if run else 1) + 1
    return Edit(
        yamledit.set_canary_flag(text, model, "attempt", attempt),
        _message(f"rollouts: retry {model} canary {version} (attempt {attempt})",
                 f"canary.attempt: {attempt} starts the analysis of version {version} again "
                 "from the first step, with a fresh journal on this commit; a failure held "
                 "at weight 0 (analysis.onFailure: pause) ends here.",
                 [(trailers.MODEL, model), (trailers.CANARY_VERSION, str(version)),
                  (ACTION, "retry")],
                 by, reason),
    )
