"""Tables for controller.decide.analysis: p99 interpolation and interval checks (the run's
roll-up over intervals is controller.decide.progress.fold, tested in test_progress.py)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from controller.decide.analysis import (
    Criteria,
    VersionWindow,
    bucket_quantile,
    judge_interval,
    no_data,
)

INF = math.inf

# 100 observations: 90 at <= 0.1s, 9 in (0.1, 0.25], 1 in (0.25, 0.5].
FAST = ((0.1, 90.0), (0.25, 99.0), (0.5, 100.0), (INF, 100.0))


def window(
    requests: float, errors: float = 0.0, buckets: tuple[tuple[float, float], ...] = FAST
) -> VersionWindow:
    return VersionWindow(requests, errors, buckets)


def latency(p99_target_bucket: float, n: float = 100.0) -> tuple[tuple[float, float], ...]:
    """All `n` observations in the bucket ending at `p99_target_bucket`."""
    bounds = (0.05, 0.1, 0.25, 0.5, 1.0)
    return tuple((b, n if b >= p99_target_bucket else 0.0) for b in bounds) + ((INF, n),)


CRITERIA = Criteria(
    min_requests=100,
    on_no_data="pause",
    failure_limit=2,
    error_rate_max=0.01,
    error_rate_max_increase=0.005,
    latency_p99_max_s=0.25,
    latency_p99_max_ratio=1.5,
)


# --- p99 / histogram_quantile ---------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        # rank 99 of 100 falls at the top of the (0.1, 0.25] bucket.
        (0.99, FAST, 0.25),
        # rank 50 inside the first bucket: interpolate from a lower bound of 0.
        (0.5, FAST, 0.1 * 50 / 90),
        # rank 94.5: (0.1, 0.25] holds 90..99 -> 0.1 + 0.15 * 4.5 / 9.
        (0.945, FAST, 0.1 + 0.15 * 4.5 / 9),
        # rank in the +Inf bucket: the highest finite bound.
        (0.99, ((0.1, 10.0), (0.5, 50.0), (INF, 100.0)), 0.5),
        # unsorted input and duplicate bounds are summed, as Prometheus coalesces them.
        (0.5, ((INF, 60.0), (1.0, 40.0), (1.0, 40.0), (INF, 40.0)), 1.0 * 50 / 80),
        # a non-monotonic dip (extrapolation noise) is flattened to the envelope.
        (0.99, ((0.1, 50.0), (0.2, 40.0), (0.4, 100.0), (INF, 100.0)), 0.2 + 0.2 * 49 / 50),
        # first bucket with a non-positive bound: that bound.
        (0.1, ((0.0, 20.0), (1.0, 100.0), (INF, 100.0)), 0.0),
    ],
)
def test_bucket_quantile_interpolates_like_prometheus(
    q: float, buckets: tuple[tuple[float, float], ...], expected: float
) -> None:
    assert bucket_quantile(q, buckets) == pytest.approx(expected)


@pytest.mark.parametrize(
    "buckets",
    [
        (),  # no histogram at all
        ((INF, 10.0),),  # one bucket
        ((0.1, 5.0), (1.0, 10.0)),  # no +Inf bucket: Prometheus gives NaN
        ((0.1, 0.0), (INF, 0.0)),  # no observations
    ],
)
def test_bucket_quantile_without_an_answer_is_none(
    buckets: tuple[tuple[float, float], ...],
) -> None:
    assert bucket_quantile(0.99, buckets) is None


def test_window_error_rate_and_p99() -> None:
    assert window(200, 5).error_rate == pytest.approx(0.025)
    assert window(0, 0).error_rate == 0.0
    assert window(100, 0, latency(0.5)).p99() == pytest.approx(0.25 + 0.25 * 0.99)


# --- judge_interval -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("canary", "stable", "criteria", "outcome", "fragment"),
    [
        # everything within limits
        (window(1000, 5), window(9000, 20), CRITERIA, "pass", "error rate 0.50% <= max 1.00%"),
        # absolute error rate
        (window(1000, 125), window(9000, 0), CRITERIA, "fail", "error rate 12.50% > max 1.00%"),
        # relative error rate: 0.9% is under max 1% but 0.8 points above stable's 0.1%
        (
            window(1000, 9),
            window(10000, 10),
            replace(CRITERIA, error_rate_max=None),
            "fail",
            "error rate 0.90% is 0.80% above stable's 0.10% > maxIncrease 0.50%",
        ),
        # absolute latency
        (
            window(1000, 0, latency(1.0)),
            window(9000),
            CRITERIA,
            "fail",
            "latency p99 995.0ms > max 250.0ms",
        ),
        # relative latency: 0.4975s vs stable 0.2485s is 2.00x, over 1.5x
        (
            window(1000, 0, latency(0.5)),
            window(9000, 0, latency(0.25)),
            replace(CRITERIA, latency_p99_max_s=None),
            "fail",
            "latency p99 497.5ms is 2.00x stable's 248.5ms > maxRatio 1.50x",
        ),
        # too few canary requests
        (
            window(99, 99),
            window(9000),
            CRITERIA,
            "inconclusive",
            "canary served 99 requests < minRequests 100",
        ),
        # minRequests 0 still needs one request to have a rate at all
        (
            window(0),
            window(9000),
            replace(CRITERIA, min_requests=0),
            "inconclusive",
            "canary served 0 requests < minRequests 1",
        ),
        # latency checked but no histogram for the canary
        (window(1000, 0, ()), window(9000), CRITERIA, "inconclusive", "latency p99 unknown"),
    ],
)
def test_judge_interval_table(
    canary: VersionWindow, stable: VersionWindow, criteria: Criteria, outcome: str, fragment: str
) -> None:
    verdict = judge_interval(criteria, canary, stable)
    assert verdict.outcome == outcome
    assert any(fragment in reason for reason in verdict.reasons), verdict.reasons


def test_fail_reasons_list_only_the_failed_checks() -> None:
    verdict = judge_interval(CRITERIA, window(1000, 200, latency(1.0)), window(9000, 0))
    assert verdict.outcome == "fail"
    assert len(verdict.reasons) == 4  # max, maxIncrease, p99 max, maxRatio
    assert all(">" in r and "<=" not in r for r in verdict.reasons)


def test_a_failed_check_beats_unknown_latency() -> None:
    verdict = judge_interval(CRITERIA, window(1000, 500, ()), window(9000))
    assert verdict.outcome == "fail"


def test_stable_with_zero_errors_is_a_baseline_for_max_increase() -> None:
    criteria = replace(CRITERIA, error_rate_max=None)
    ok = judge_interval(criteria, window(1000, 4), window(5000, 0))
    bad = judge_interval(criteria, window(1000, 6), window(5000, 0))
    assert ok.outcome == "pass"
    assert bad.outcome == "fail"
    assert bad.reasons == ("error rate 0.60% is 0.60% above stable's 0.00% > maxIncrease 0.50%",)


@pytest.mark.parametrize("stable", [None, window(0, 0, ()), window(20, 20)])
def test_without_a_stable_baseline_only_absolute_limits_apply(stable: VersionWindow | None) -> None:
    # The canary breaks both relative limits against any healthy stable...
    canary = window(1000, 9, latency(0.25))
    assert judge_interval(CRITERIA, canary, window(9000, 0, latency(0.05))).outcome == "fail"
    # ...but with no (or too small a) stable, only the absolute limits judge it.
    verdict = judge_interval(CRITERIA, canary, stable)
    assert verdict.outcome == "pass"
    assert any("relative checks skipped" in r for r in verdict.reasons)
    absolute_fail = judge_interval(CRITERIA, window(1000, 50), stable)
    assert absolute_fail.outcome == "fail"


def test_stable_p99_of_zero_skips_max_ratio_only() -> None:
    zero = ((0.0, 9000.0), (0.1, 9000.0), (INF, 9000.0))
    verdict = judge_interval(CRITERIA, window(1000, 0, latency(0.25)), window(9000, 0, zero))
    assert verdict.outcome == "pass"
    assert "stable has no latency p99 > 0: maxRatio skipped" in verdict.reasons
    slow = judge_interval(CRITERIA, window(1000, 0, latency(0.5)), window(9000, 0, zero))
    assert slow.reasons == ("latency p99 497.5ms > max 250.0ms",)


def test_no_checks_configured_passes_on_enough_requests() -> None:
    bare = Criteria(min_requests=10, on_no_data="fail", failure_limit=1)
    assert judge_interval(bare, window(10, 10, ()), None).outcome == "pass"


def test_missing_canary_metrics_are_inconclusive() -> None:
    assert judge_interval(CRITERIA, None, window(100)).outcome == "inconclusive"
    assert no_data("Prometheus unreachable").reasons == ("Prometheus unreachable",)


def test_verdict_to_dict_is_json_with_the_numbers() -> None:
    verdict = judge_interval(CRITERIA, window(1000, 125), window(9000, 9))
    data = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert data["outcome"] == "fail"
    assert data["canary"]["requests"] == 1000
    assert data["canary"]["errorRate"] == pytest.approx(0.125)
    assert data["stable"]["errorRate"] == pytest.approx(0.001)
    assert data["canary"]["latencyP99Seconds"] == pytest.approx(0.25)
    assert data["canary"]["latencyBuckets"][-1] == ["+Inf", 100.0]
