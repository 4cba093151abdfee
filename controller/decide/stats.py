"""The statistical judge's tests (`analysis.judge: statistical`), pure, on scipy.

Each answers "is the canary worse than stable beyond the check's margin?" with
a p-value or a bound, so a noisy low-traffic interval is not called a failure
(Kayenta's judge takes the same stance: a difference must be significant).

- `increase_p_value`: errorRate.maxIncrease. One-sided test of
  H0: p_canary - p_stable <= margin against H1: greater, a z-test on the
  Agresti-Caffo adjusted proportions (one success and one failure added to
  each side), which stays defined with zero errors or zero successes.
- `slower_p_value`: latencyP99.maxRatio. Mann-Whitney U (one-sided, canary
  greater) between the canary's latencies and stable's scaled by the ratio,
  each observation placed at its histogram bucket's midpoint. Observations in
  one bucket are ties; scipy's asymptotic method corrects for them.
- `rate_lower_bound`: predictionDiff.maxDifferingRate. The one-sided
  Clopper-Pearson lower bound of the differing rate at the confidence: the
  check fails only when even that bound is above the limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as scipy_stats

# Histograms are counts per bucket; more than this many observations per side
# are subsampled proportionally (the test's power is long saturated by then).
MAX_OBSERVATIONS = 20_000


def increase_p_value(canary_errors: float, canary_total: float, stable_errors: float,
                     stable_total: float, margin: float) -> float:
    """p-value of "canary error rate - stable error rate > margin"; 1.0 without data."""
    if canary_total <= 0 or stable_total <= 0:
        return 1.0
    pc = (canary_errors + 1) / (canary_total + 2)
    ps = (stable_errors + 1) / (stable_total + 2)
    se = math.sqrt(pc * (1 - pc) / (canary_total + 2) + ps * (1 - ps) / (stable_total + 2))
    z = (pc - ps - margin) / se
    return float(scipy_stats.norm.sf(z))


def _observations(buckets: Sequence[tuple[float, float]], scale: float) -> np.ndarray:
    """One value per observation: its bucket's midpoint (times `scale`). The +Inf
    bucket sits at twice the highest finite bound; cumulative counts in."""
    ordered = sorted(buckets)
    values: list[float] = []
    counts: list[int] = []
    lower, below = 0.0, 0.0
    finite = [b for b, _ in ordered if math.isfinite(b)]
    top = (finite[-1] * 2) if finite else 1.0
    for bound, cumulative in ordered:
        count = max(cumulative - below, 0.0)
        mid = (lower + bound) / 2 if math.isfinite(bound) else top
        if count > 0:
            values.append(mid * scale)
            counts.append(int(round(count)))
        lower, below = (bound if math.isfinite(bound) else lower), max(below, cumulative)
    total = sum(counts)
    if total > MAX_OBSERVATIONS:
        counts = [max(1, round(c * MAX_OBSERVATIONS / total)) for c in counts]
    return np.repeat(np.asarray(values, dtype=np.float64), counts)


def slower_p_value(canary_buckets: Sequence[tuple[float, float]],
                   stable_buckets: Sequence[tuple[float, float]], ratio: float) -> float:
    """p-value of "canary latencies are greater than stable's x ratio"; 1.0 without data."""
    canary = _observations(canary_buckets, 1.0)
    stable = _observations(stable_buckets, ratio)
    if canary.size == 0 or stable.size == 0:
        return 1.0
    if np.all(canary == canary[0]) and np.array_equal(np.unique(stable), canary[:1]):
        return 1.0  # every observation tied: no evidence either way
    result = scipy_stats.mannwhitneyu(canary, stable, alternative="greater",
                                      method="asymptotic")
    return float(result.pvalue)


def rate_lower_bound(events: float, trials: float, confidence: float) -> float:
    """One-sided Clopper-Pearson lower bound of events/trials; 0 without events."""
    k, n = int(round(events)), int(round(trials))
    if n <= 0 or k <= 0:
        return 0.0
    return float(scipy_stats.beta.ppf(1 - confidence, k, n - k + 1))
