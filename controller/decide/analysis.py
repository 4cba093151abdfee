"""Canary analysis: judge one interval's metrics.

Pure functions of their inputs (no clock, no I/O). The data comes from a metrics
provider (`controller.adapters.metrics`) as one `VersionWindow` per version: the counter
deltas over one analysis interval, summed over every serving target. Versions,
not labels, are judged, because labels move at promotion.

- `judge_interval(criteria, canary, stable)` -> `IntervalVerdict` (pass, fail or
  inconclusive, with human-readable reasons carrying the numbers).

Rolling intervals up into the run's outcome (failureLimit, onNoData, holds) is
`controller.decide.progress.fold`, over the journal.

docs/analysis.md describes the semantics for users.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from controller.decide import stats

Outcome = Literal["pass", "fail", "inconclusive"]
OnNoData = Literal["pause", "fail", "pass"]
Judge = Literal["threshold", "statistical"]

_P99 = 0.99


@dataclass(frozen=True)
class VersionWindow:
    """One version's traffic over one interval, summed over targets.

    `latency_buckets` are (upper bound in seconds, cumulative count delta) pairs,
    like Prometheus `le` buckets; the last one should be +Inf. Counts are floats
    because Prometheus' `increase()` extrapolates.
    """

    requests: float
    # Every answer that was not OK, and the same split by status code name.
    errors: float
    latency_buckets: tuple[tuple[float, float], ...] = ()
    errors_by_code: tuple[tuple[str, float], ...] = ()
    # Shadow scoring (rollouts_shadow_*): runs of requests on this version that
    # another version answered, and their errors; comparisons of this
    # version's answers with the other version's (either side served), the
    # ones that differed or mismatched, and the float |difference| sum/count.
    shadow_runs: float = 0.0
    shadow_errors: float = 0.0
    compared: float = 0.0
    differing: float = 0.0
    abs_diff_sum: float = 0.0
    abs_diff_count: float = 0.0
    dropped: float = 0.0

    @property
    def served(self) -> float:
        """Requests this version ran: user requests and shadow runs."""
        return self.requests + self.shadow_runs

    @property
    def failed(self) -> float:
        """Errors on user requests and on shadow runs (a canary failing in the dark fails)."""
        return self.errors + self.shadow_errors

    @property
    def error_rate(self) -> float:
        """Non-OK answers per request run, shadow runs included; 0.0 when none ran."""
        if self.served <= 0:
            return 0.0
        return self.failed / self.served

    @property
    def differing_rate(self) -> float | None:
        """Differing (or mismatched) compared requests per compared request."""
        return self.differing / self.compared if self.compared > 0 else None

    @property
    def mean_abs_diff(self) -> float | None:
        return self.abs_diff_sum / self.abs_diff_count if self.abs_diff_count > 0 else None

    def counted_errors(self, codes: frozenset[str] | None) -> float:
        """The errors whose code is in `codes` (None: every non-OK answer).

        A window without a per-code split counts every error: never fewer
        failures than happened.
        """
        if codes is None or not self.errors_by_code:
            return self.errors
        return sum(count for code, count in self.errors_by_code if code in codes)

    def counted_failed(self, codes: frozenset[str] | None) -> float:
        """Counted errors of user requests plus every shadow-run error (a shadow
        run's failure has no code on the wire: it always counts)."""
        return self.counted_errors(codes) + self.shadow_errors

    def counted_rate(self, codes: frozenset[str] | None) -> float:
        return self.counted_failed(codes) / self.served if self.served > 0 else 0.0

    def p99(self) -> float | None:
        """The 99th-percentile latency in seconds, or None without histogram data."""
        return bucket_quantile(_P99, self.latency_buckets)

    def to_dict(self) -> dict[str, Any]:
        p99 = self.p99()
        data: dict[str, Any] = {
            "requests": self.requests,
            "errors": self.errors,
            "errorsByCode": dict(self.errors_by_code),
            "errorRate": self.error_rate,
            "latencyP99Seconds": p99,
            # "+Inf" as a string: JSON has no infinity.
            "latencyBuckets": [["+Inf" if math.isinf(le) else le, count]
                               for le, count in self.latency_buckets],
        }
        if self.shadow_runs or self.compared or self.dropped:
            data["shadow"] = {
                "runs": self.shadow_runs, "errors": self.shadow_errors,
                "compared": self.compared, "differing": self.differing,
                "differingRate": self.differing_rate, "meanAbsDiff": self.mean_abs_diff,
                "dropped": self.dropped,
            }
        return data


EMPTY_WINDOW = VersionWindow(requests=0.0, errors=0.0)
SHADOW_FIELDS = ("shadow_runs", "shadow_errors", "compared", "differing", "abs_diff_sum",
                 "abs_diff_count", "dropped")


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus `histogram_quantile` over classic buckets; None where it gives NaN.

    Linear interpolation inside the bucket holding the rank, a lower bound of 0
    for the first bucket, and the highest finite bound when the rank falls in
    the +Inf bucket. No +Inf bucket, fewer than two buckets or no observations:
    None (there is no meaningful answer).
    """
    merged: dict[float, float] = {}
    for bound, count in buckets:
        merged[bound] = merged.get(bound, 0.0) + count  # duplicate bounds add up
    ordered = sorted(merged.items())
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]) or ordered[-1][0] < 0:
        return None
    # Counts from separately extrapolated series can dip; use the envelope so the
    # search below sees a monotonic sequence (Prometheus does the same).
    envelope: list[tuple[float, float]] = []
    highest = 0.0
    for bound, count in ordered:
        highest = max(highest, count)
        envelope.append((bound, highest))
    observations = envelope[-1][1]
    if observations <= 0:
        return None
    rank = q * observations
    index = next(i for i, (_, count) in enumerate(envelope) if count >= rank)
    if index == len(envelope) - 1:
        return envelope[-2][0]
    upper, count = envelope[index]
    if index == 0:
        if upper <= 0:
            return upper
        lower, below = 0.0, 0.0
    else:
        lower, below = envelope[index - 1]
    in_bucket = count - below
    return lower + (upper - lower) * ((rank - below) / in_bucket)


@dataclass(frozen=True)
class Criteria:
    """The analysis block of a rollout spec, in plain numbers (seconds, fractions)."""

    min_requests: int
    on_no_data: OnNoData
    failure_limit: int
    error_rate_max: float | None = None
    error_rate_max_increase: float | None = None
    latency_p99_max_s: float | None = None
    latency_p99_max_ratio: float | None = None
    prediction_max_differing_rate: float | None = None
    prediction_max_mean_abs: float | None = None
    judge: Judge = "threshold"
    confidence: float = 0.95
    # The status codes that count as errors (None: every non-OK answer).
    error_codes: frozenset[str] | None = None

    @property
    def checks_latency(self) -> bool:
        return self.latency_p99_max_s is not None or self.latency_p99_max_ratio is not None

    @property
    def checks_predictions(self) -> bool:
        return (self.prediction_max_differing_rate is not None
                or self.prediction_max_mean_abs is not None)


@dataclass(frozen=True)
class IntervalVerdict:
    """The judgement of one interval and the numbers behind it."""

    outcome: Outcome
    reasons: tuple[str, ...]
    canary: VersionWindow
    stable: VersionWindow
    # The codes the error rate counted (None: every non-OK answer).
    error_codes: frozenset[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data for git notes and `rollouts status`."""
        # errorRate as judged: of the counted codes only.
        return {
            "outcome": self.outcome,
            "reasons": list(self.reasons),
            "canary": self.canary.to_dict() | {"errorRate": self.error_rate(self.canary)},
            "stable": self.stable.to_dict() | {"errorRate": self.error_rate(self.stable)},
            "errorCodes": sorted(self.error_codes) if self.error_codes is not None else None,
        }

    def error_rate(self, window: VersionWindow) -> float:
        """`window`'s error rate as this verdict counted it."""
        return window.counted_rate(self.error_codes)


def no_data(reason: str) -> IntervalVerdict:
    """An inconclusive verdict for an interval whose metrics could not be read."""
    return IntervalVerdict("inconclusive", (reason,), EMPTY_WINDOW, EMPTY_WINDOW)


def _pct(rate: float) -> str:
    return f"{rate * 100:.2f}%"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}ms"


def _count(value: float) -> str:
    # Extrapolated counts are fractional; whole numbers read better without ".0".
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


@dataclass(frozen=True)
class _Check:
    failed: bool
    sentence: str


def _error_checks(c: Criteria, canary: VersionWindow, stable: VersionWindow,
                  has_baseline: bool) -> list[_Check]:
    checks: list[_Check] = []
    rate = canary.counted_rate(c.error_codes)
    stable_rate = stable.counted_rate(c.error_codes)
    if c.error_rate_max is not None:
        failed = rate > c.error_rate_max
        op = ">" if failed else "<="
        checks.append(_Check(failed, f"error rate {_pct(rate)} {op} max {_pct(c.error_rate_max)}"))
    if c.error_rate_max_increase is not None and has_baseline:
        # A difference, not a ratio: a stable with zero errors stays a usable
        # baseline (any ratio against 0 would be infinite).
        increase = rate - stable_rate
        text = (f"error rate {_pct(rate)} is {_pct(increase)} above stable's "
                f"{_pct(stable_rate)}")
        if c.judge == "statistical":
            p = stats.increase_p_value(canary.counted_failed(c.error_codes), canary.served,
                                       stable.counted_failed(c.error_codes), stable.served,
                                       c.error_rate_max_increase)
            checks.append(_significance(p, c.confidence, text,
                                        f"maxIncrease {_pct(c.error_rate_max_increase)}"))
        else:
            failed = increase > c.error_rate_max_increase
            op = ">" if failed else "<="
            checks.append(_Check(failed, (
                f"{text} {op} maxIncrease {_pct(c.error_rate_max_increase)}")))
    return checks


def _significance(p: float, confidence: float, text: str, limit: str) -> _Check:
    """A statistical check: fails when p < 1 - confidence (worse beyond the margin)."""
    alpha = 1 - confidence
    failed = p < alpha
    verdict = "worse than" if failed else "not shown worse than"
    return _Check(failed, f"{text}: {verdict} {limit} at {confidence:.0%} (p={p:.3g})")


def _latency_checks(c: Criteria, p99: float, canary: VersionWindow, stable: VersionWindow,
                    has_baseline: bool) -> tuple[list[_Check], list[str]]:
    checks: list[_Check] = []
    notes: list[str] = []
    if c.latency_p99_max_s is not None:
        failed = p99 > c.latency_p99_max_s
        op = ">" if failed else "<="
        checks.append(_Check(failed, f"latency p99 {_ms(p99)} {op} max {_ms(c.latency_p99_max_s)}"))
    if c.latency_p99_max_ratio is not None and has_baseline:
        stable_p99 = stable.p99()
        if stable_p99 is None or stable_p99 <= 0:
            # A ratio to nothing is meaningless; only the absolute limit applies.
            notes.append("stable has no latency p99 > 0: maxRatio skipped")
        else:
            ratio = p99 / stable_p99
            text = f"latency p99 {_ms(p99)} is {ratio:.2f}x stable's {_ms(stable_p99)}"
            if c.judge == "statistical":
                p = stats.slower_p_value(canary.latency_buckets, stable.latency_buckets,
                                         c.latency_p99_max_ratio)
                checks.append(_significance(p, c.confidence, text,
                                            f"maxRatio {c.latency_p99_max_ratio:.2f}x"))
            else:
                failed = ratio > c.latency_p99_max_ratio
                op = ">" if failed else "<="
                checks.append(_Check(failed, (
                    f"{text} {op} maxRatio {c.latency_p99_max_ratio:.2f}x")))
    return checks, notes


def _prediction_checks(c: Criteria, canary: VersionWindow, needed: int,
                       ) -> tuple[list[_Check], list[str], list[str]]:
    """predictionDiff: (checks, notes, unknown). minRequests applies to the
    compared requests; with fewer the check has no data (onNoData decides)."""
    if canary.compared < needed:
        return [], [], [f"{_count(canary.compared)} requests compared by shadow scoring "
                        f"< minRequests {needed}: prediction diff unknown"]
    checks: list[_Check] = []
    notes: list[str] = []
    rate = canary.differing_rate or 0.0
    head = f"{_count(canary.compared)} compared, differing rate {_pct(rate)}"
    if c.prediction_max_differing_rate is not None:
        limit = c.prediction_max_differing_rate
        if c.judge == "statistical":
            bound = stats.rate_lower_bound(canary.differing, canary.compared, c.confidence)
            failed = bound > limit
            op = ">" if failed else "<="
            checks.append(_Check(failed, (
                f"{head}: lower {c.confidence:.0%} bound {_pct(bound)} {op} "
                f"maxDifferingRate {_pct(limit)}")))
        else:
            failed = rate > limit
            op = ">" if failed else "<="
            checks.append(_Check(failed, f"{head} {op} maxDifferingRate {_pct(limit)}"))
    if c.prediction_max_mean_abs is not None:
        mean = canary.mean_abs_diff
        if mean is None:
            notes.append("no float output compared: maxMeanAbs skipped")
        else:
            failed = mean > c.prediction_max_mean_abs
            op = ">" if failed else "<="
            checks.append(_Check(failed, (
                f"mean abs diff {mean:.4g} {op} maxMeanAbs {c.prediction_max_mean_abs:g}")))
    return checks, notes, []


def judge_interval(criteria: Criteria, canary: VersionWindow | None,
                   stable: VersionWindow | None) -> IntervalVerdict:
    """`_judge`, with the verdict remembering which codes counted as errors."""
    return replace(_judge(criteria, canary, stable), error_codes=criteria.error_codes)


def _judge(criteria: Criteria, canary: VersionWindow | None,
           stable: VersionWindow | None) -> IntervalVerdict:
    """Judge one interval of the canary against absolute limits and against stable.

    - canary None (no metrics) or fewer than minRequests canary requests (at
      least one): inconclusive.
    - Relative checks (maxIncrease, maxRatio) need a baseline: stable with at
      least minRequests requests (and at least one); otherwise they are skipped
      and only the absolute limits apply. A noisy baseline of a handful of
      requests would make the comparison meaningless either way.
    - Latency checks configured but no canary histogram data: inconclusive
      unless another check already failed (never a false pass, never a false
      failure).
    Reasons explain the outcome: the failed checks for "fail", the cause for
    "inconclusive", every check and skipped comparison for "pass".
    """
    stable_w = stable if stable is not None else EMPTY_WINDOW
    if canary is None:
        return IntervalVerdict("inconclusive", ("no metrics for the canary",),
                               EMPTY_WINDOW, stable_w)
    needed = max(criteria.min_requests, 1)
    if canary.served < needed:
        return IntervalVerdict("inconclusive", (
            f"canary served {_count(canary.served)} requests < minRequests {needed}",),
            canary, stable_w)
    has_baseline = stable_w.served >= needed
    notes: list[str] = []
    relative = (criteria.error_rate_max_increase is not None
                or criteria.latency_p99_max_ratio is not None)
    if relative and not has_baseline:
        notes.append(f"stable served {_count(stable_w.served)} requests < {needed}: "
                     "relative checks skipped")
    checks = _error_checks(criteria, canary, stable_w, has_baseline)
    unknown: list[str] = []
    if criteria.checks_predictions:
        predictions, prediction_notes, prediction_unknown = _prediction_checks(
            criteria, canary, needed)
        checks.extend(predictions)
        notes.extend(prediction_notes)
        unknown.extend(prediction_unknown)
    if criteria.checks_latency and canary.requests <= 0:
        # A dark launch: the canary answered no user, so it has no user latency.
        notes.append("the canary answered no user requests (dark launch): latency not judged")
    elif criteria.checks_latency:
        p99 = canary.p99()
        if p99 is None:
            unknown.append("no latency histogram for the canary: latency p99 unknown")
        else:
            latency, latency_notes = _latency_checks(criteria, p99, canary, stable_w,
                                                     has_baseline)
            checks.extend(latency)
            notes.extend(latency_notes)
    failed = tuple(check.sentence for check in checks if check.failed)
    if failed:
        return IntervalVerdict("fail", failed, canary, stable_w)
    if unknown:
        return IntervalVerdict("inconclusive", tuple(unknown), canary, stable_w)
    return IntervalVerdict("pass", tuple(c.sentence for c in checks) + tuple(notes),
                           canary, stable_w)
