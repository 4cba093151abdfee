"""The words of a canary's analysis: one interval's summary line, the verdict
summary of a commit message, and the analysis as commit trailers (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from controller.decide import trailers
from controller.decide.analysis import IntervalVerdict, VersionWindow
from controller.decide.progress import Event


def interval_detail(verdict: IntervalVerdict, weight_bp: int) -> dict[str, Any]:
    """An interval event's detail: its numbers and a one-line summary."""
    numbers = verdict.to_dict()
    canary, stable = verdict.canary, verdict.stable
    p99 = canary.p99()
    summary = (
        f"{verdict.outcome} at {weight_bp / 100:g}%: canary {canary.requests:.0f} req "
        f"{verdict.error_rate(canary):.2%} err" + code_counts(canary, verdict.error_codes)
        + (f" p99 {p99 * 1000:.1f}ms" if p99 is not None else "")
        + _shadow_text(canary)
        + f"; stable {stable.requests:.0f} req {verdict.error_rate(stable):.2%} err"
        + code_counts(stable, verdict.error_codes)
        + (f" — {'; '.join(verdict.reasons)}" if verdict.outcome != "pass" else "")
    )
    return {"summary": summary, "weightBp": weight_bp, **numbers}


def _shadow_text(canary: VersionWindow) -> str:
    """Shadow scoring's numbers: compared requests, differing rate, mean abs diff."""
    if canary.compared <= 0 and canary.shadow_runs <= 0:
        return ""
    rate, mean = canary.differing_rate, canary.mean_abs_diff
    return (f", shadow {canary.compared:.0f} compared"
            + (f" {rate:.2%} differ" if rate is not None else "")
            + (f" mean|diff| {mean:.4g}" if mean is not None else ""))


def code_counts(window: VersionWindow, counted: frozenset[str] | None) -> str:
    """" (UNAVAILABLE 3, INVALID_ARGUMENT 5 not counted)", or "" with no errors."""
    if not window.errors_by_code:
        return ""
    parts = [
        f"{code} {count:.0f}" + ("" if counted is None or code in counted else " not counted")
        for code, count in sorted(window.errors_by_code, key=lambda pair: (-pair[1], pair[0]))
        if count > 0
    ]
    return f" ({', '.join(parts)})" if parts else ""


@dataclass(frozen=True)
class _Intervals:
    """A journal's intervals: how many passed, failed or were not judged."""

    judged: list[Event]
    passed: int
    failed: int
    other: int

    @staticmethod
    def of(events: Sequence[Event]) -> _Intervals:
        intervals = [e for e in events if e.kind == "interval"]
        judged = [e for e in intervals if e.outcome in ("pass", "fail")]
        passed = sum(e.outcome == "pass" for e in judged)
        return _Intervals(judged, passed, len(judged) - passed, len(intervals) - len(judged))


def analysis_trailers(events: Sequence[Event]) -> tuple[tuple[str, str], ...]:
    """The analysis behind a verdict, as commit trailers: the interval counts and
    the numbers of the last judged interval (the full journal is in the notes)."""
    n = _Intervals.of(events)
    pairs = [(trailers.INTERVALS, f"{n.passed} passed, {n.failed} failed, {n.other} not judged")]
    if n.judged:
        last = n.judged[-1]
        pairs.append((trailers.LAST_INTERVAL, str(last.detail.get("summary", last.outcome))))
    return tuple(pairs)


def verdict_summary(events: Sequence[Event], kind: str, reason: str) -> str:
    """The verdict's message: the counts, the reason, the last judged intervals."""
    n = _Intervals.of(events)
    head = {
        "promote": "Analysis passed",
        "fail": "Analysis failed",
        "ready_to_promote": "Analysis passed; ready to promote (promotion: manual)",
        "hold_failed": "Analysis failed; held at weight 0, still loaded (onFailure: pause): "
                       "waiting for abort, retry or promote",
    }[kind]
    lines = [f"{head}: {n.passed} interval(s) passed, {n.failed} failed, {n.other} not judged."]
    if reason and reason != "recorded":
        lines.append(reason[:1].upper() + reason[1:] + ".")
    lines.extend(f"- {e.detail.get('summary', e.outcome)}" for e in n.judged[-3:])
    return "\n".join(lines)


# Where verdict commits go (controller.runtime.writeback): onto the followed branch,
# or each onto a branch of its own for a bot or a person to merge.
WRITE_BACK_MODES = ("push", "branch")


def verdict_branch(model: str, kind: str, version: int) -> str:
    """The branch a verdict is proposed on: rollouts/<model>/<promote|revert>-<version>."""
    word = "promote" if kind == "promote" else "revert"
    return f"rollouts/{model}/{word}-{version}"
