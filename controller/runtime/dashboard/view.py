"""What the dashboard shows, built from the status document and a canary's journal (pure).

Everything here is plain data in, plain JSON-able data out, so the pages and their
live updates are tested with fixtures. The journal history (`RolloutHistory`) is
what the rollout driver folded from the git notes, so a restarted controller shows
a running canary's whole history again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.decide.analysis import Criteria
from controller.decide.progress import CanaryPlan
from controller.runtime.rollout_status import RolloutStatus

__all__ = [
    "RolloutHistory",
    "Thresholds",
    "commit_link",
    "history_of",
    "overview",
    "rollout_view",
]

# Interval outcomes that are a judgement (the rest were not judged).
_JUDGED = ("pass", "fail")


@dataclass(frozen=True)
class Thresholds:
    """The absolute limits of a canary's checks, drawn as lines on its charts."""

    error_rate_max: float | None = None
    latency_p99_max_s: float | None = None
    differing_rate_max: float | None = None
    mean_abs_max: float | None = None


@dataclass(frozen=True)
class RolloutHistory:
    """One canary's journal as the driver folded it, with its spec's numbers."""

    model: str
    version: int
    interval_s: float
    steps_weight_bp: tuple[int, ...]
    intervals: Sequence[Mapping[str, Any]] = ()
    events: Sequence[Mapping[str, Any]] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)


def history_of(status: RolloutStatus, plan: CanaryPlan,
               criteria: Criteria | None) -> RolloutHistory:
    """A running canary's history from the driver's status and its spec's plan."""
    return RolloutHistory(
        model=status.model,
        version=status.version,
        interval_s=plan.interval_s,
        steps_weight_bp=tuple(step.weight_bp for step in plan.steps),
        intervals=tuple(status.intervals),
        events=tuple({**event, "commit": status.canary_commit}
                     if event.get("kind") == "started" else event
                     for event in status.events),
        thresholds=Thresholds(
            error_rate_max=criteria.error_rate_max if criteria else None,
            latency_p99_max_s=criteria.latency_p99_max_s if criteria else None,
            differing_rate_max=criteria.prediction_max_differing_rate if criteria else None,
            mean_abs_max=criteria.prediction_max_mean_abs if criteria else None,
        ),
    )


def commit_link(template: str, sha: str) -> str:
    """The URL for `sha` from a `commitUrl` template (`{sha}` replaced), or ""."""
    if not template or not sha or "{sha}" not in template:
        return ""
    return template.replace("{sha}", sha)


def _served_weight_bp(model: Mapping[str, Any]) -> int | None:
    """The canary weight the reachable targets actually serve (the lowest, if they differ)."""
    weights = [
        target.get("splitWeightBp") or 0
        for target in model.get("targets", {}).values()
        if target.get("reachable")
    ]
    return min(weights) if weights else None


def _health(model: Mapping[str, Any]) -> dict[str, Any]:
    targets = model.get("targets", {})
    up = [name for name, t in targets.items() if t.get("reachable")]
    return {"up": len(up), "total": len(targets),
            "down": sorted(set(targets) - set(up))}


def _last_verdict(rollout: Mapping[str, Any] | None) -> str:
    if not rollout:
        return ""
    judged = [i for i in rollout.get("intervals", []) if i.get("outcome") in _JUDGED]
    if judged:
        return str(judged[-1].get("summary") or judged[-1].get("outcome", ""))
    return str(rollout.get("message", ""))


def overview(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per model: phase, versions, served weight, step, health, last verdict."""
    rows = []
    for name, model in sorted(doc.get("models", {}).items()):
        rollout = model.get("rollout")
        served = _served_weight_bp(model)
        rows.append({
            "model": name,
            "phase": rollout["phase"] if rollout else "stable",
            "stable": model.get("stable"),
            "canary": rollout["version"] if rollout else model.get("canary"),
            "servedWeightPct": None if served is None else served / 100,
            "step": rollout.get("stepText", "") if rollout else "",
            "health": _health(model),
            "lastVerdict": _last_verdict(rollout),
            "errors": list(model.get("errors", [])),
        })
    return rows


def _side(interval: Mapping[str, Any], side: str) -> Mapping[str, Any]:
    value = interval.get(side)
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _ms(seconds: Any) -> float | None:
    value = _number(seconds)
    return None if value is None else value * 1000


def _rate(requests: Any, interval_s: float) -> float | None:
    value = _number(requests)
    return None if value is None or interval_s <= 0 else value / interval_s


def _prediction(interval: Mapping[str, Any], key: str) -> float | None:
    """A shadow-scoring number of the canary (`analysis.VersionWindow.to_dict`'s
    `shadow` block), or None for an interval without shadow scoring."""
    shadow = _side(interval, "canary").get("shadow")
    return _number(shadow.get(key)) if isinstance(shadow, Mapping) else None


def series(history: RolloutHistory) -> dict[str, list[float | None]]:
    """Per interval, in time order: the numbers the charts draw (None where unmeasured)."""
    intervals = sorted(history.intervals, key=lambda i: float(i.get("at", 0.0)))
    out: dict[str, list[float | None]] = {
        key: [] for key in (
            "at", "canaryErrorRate", "stableErrorRate", "canaryP99Ms", "stableP99Ms",
            "canaryRps", "stableRps", "weightPct", "differingRate", "meanAbsDiff")
    }
    for interval in intervals:
        canary, stable = _side(interval, "canary"), _side(interval, "stable")
        judged = interval.get("outcome") in _JUDGED
        out["at"].append(float(interval.get("at", 0.0)))
        out["canaryErrorRate"].append(_number(canary.get("errorRate")) if judged else None)
        out["stableErrorRate"].append(_number(stable.get("errorRate")) if judged else None)
        out["canaryP99Ms"].append(_ms(canary.get("latencyP99Seconds")))
        out["stableP99Ms"].append(_ms(stable.get("latencyP99Seconds")))
        out["canaryRps"].append(_rate(canary.get("requests"), history.interval_s))
        out["stableRps"].append(_rate(stable.get("requests"), history.interval_s))
        weight = _number(interval.get("weightBp"))
        out["weightPct"].append(None if weight is None else weight / 100)
        out["differingRate"].append(_prediction(interval, "differingRate"))
        out["meanAbsDiff"].append(_prediction(interval, "meanAbsDiff"))
    return out


def _event_text(event: Mapping[str, Any]) -> str:
    if event.get("summary"):
        return str(event["summary"])
    kind, step = event.get("kind", ""), int(event.get("step", 0) or 0)
    return {
        "proposed": "canary seen, waiting for it to be ready",
        "started": "canary ready, analysis started",
        "step": f"advanced to step {step + 1}",
        "paused": f"paused at step {step + 1}",
        "resumed": f"resumed at step {step + 1}",
        "verdict": f"verdict: {event.get('outcome', '')}",
    }.get(str(kind), str(kind))


def timeline(history: RolloutHistory, commit_url: str) -> list[dict[str, Any]]:
    """The journal in time order: each event and interval with its one-line numbers."""
    items: list[dict[str, Any]] = []
    for event in history.events:
        commit = str(event.get("commit", ""))
        items.append({
            "at": float(event.get("at", 0.0)),
            "kind": str(event.get("kind", "")),
            "outcome": str(event.get("outcome", "")),
            "text": _event_text(event),
            "commit": commit,
            "commitUrl": commit_link(commit_url, commit),
        })
    for interval in history.intervals:
        items.append({
            "at": float(interval.get("at", 0.0)),
            "kind": "interval",
            "outcome": str(interval.get("outcome", "")),
            "text": str(interval.get("summary", "")),
            "commit": "",
            "commitUrl": "",
        })
    return sorted(items, key=lambda item: item["at"])


def _commits(rollout: Mapping[str, Any] | None, history: RolloutHistory | None,
             commit_url: str) -> list[dict[str, str]]:
    commits: list[dict[str, str]] = []
    if rollout and rollout.get("canaryCommit"):
        sha = str(rollout["canaryCommit"])
        commits.append({"role": "started", "sha": sha, "url": commit_link(commit_url, sha)})
    for event in history.events if history else ():
        sha = str(event.get("commit", ""))
        if sha and all(c["sha"] != sha for c in commits):
            role = str(event.get("outcome") or event.get("kind", ""))
            commits.append({"role": role, "sha": sha, "url": commit_link(commit_url, sha)})
    return commits


def commands(model: str, rollout: Mapping[str, Any] | None,
             available: Iterable[str]) -> list[dict[str, str]]:
    """What a person runs to act on this rollout: every action is a commit.

    `available` are the `rollouts` subcommands this build has; an action without one
    shows the plain git edit that does the same.
    """
    have = set(available)
    if not rollout:
        return []
    version = rollout.get("version")
    start = str(rollout.get("canaryCommit", ""))[:12] or "<canary commit>"
    # Without its subcommand, an action is shown as the git edit that does it, if any.
    git_way = {
        "promote": f"set spec.stable: {version} and delete spec.canary in the {model} spec, "
                   "then commit and push",
        "abort": f"git revert {start} && git push",
        "retry": f"after a revert: set spec.canary.retry: true in the {model} spec, "
                 "then commit and push",
        "pause": f"set spec.canary.paused: true in the {model} spec, then commit and push",
    }
    out = []
    for action, fallback in git_way.items():
        if action in have:
            out.append({"action": action, "command": f"rollouts {action} {model} --push"})
        elif fallback:
            out.append({"action": action, "command": fallback})
    return out


def rollout_view(
    doc: Mapping[str, Any],
    model: str,
    history: RolloutHistory | None,
    *,
    commit_url: str = "",
    available_commands: Iterable[str] = (),
) -> dict[str, Any] | None:
    """Everything the page of one rollout shows, or None for a model the status lacks."""
    entry = doc.get("models", {}).get(model)
    if entry is None:
        return None
    rollout = entry.get("rollout")
    row = next(r for r in overview({"models": {model: entry}}))
    thresholds = history.thresholds if history else Thresholds()
    return {
        **row,
        "message": rollout.get("message", "") if rollout else "",
        "targets": [
            {"name": name, "reachable": bool(t.get("reachable")), "error": t.get("error", ""),
             "servedWeightPct": (t.get("splitWeightBp") or 0) / 100}
            for name, t in sorted(entry.get("targets", {}).items())
        ],
        "stepsWeightPct": [w / 100 for w in history.steps_weight_bp] if history else [],
        "intervalSeconds": history.interval_s if history else None,
        "series": series(history) if history else None,
        "thresholds": {
            "errorRate": thresholds.error_rate_max,
            "p99Ms": None if thresholds.latency_p99_max_s is None
            else thresholds.latency_p99_max_s * 1000,
            "differingRate": thresholds.differing_rate_max,
            "meanAbsDiff": thresholds.mean_abs_max,
        },
        "timeline": timeline(history, commit_url) if history else [],
        "commits": _commits(rollout, history, commit_url),
        "commands": commands(model, rollout, available_commands),
    }
