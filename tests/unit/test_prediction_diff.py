"""predictionDiff and shadow traffic in the analysis, by table: windows built
from the server's shadow series (promtext), the checks, dark launches, the
statistical judge's tests (known cases, zero counts), PromQL, the split pushed."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from controller.adapters import promtext
from controller.adapters.metrics import PrometheusProvider
from controller.decide import stats
from controller.decide.analysis import Criteria, VersionWindow, judge_interval
from controller.decide.fleet import ShadowRule, SplitRule
from controller.decide.render import split_from_proto, split_to_proto
from controller.decide.verdict_text import interval_detail

INF = math.inf
FAST = ((0.1, 100.0), (INF, 100.0))


def criteria(**kw: Any) -> Criteria:
    base: dict[str, Any] = {"min_requests": 50, "on_no_data": "pause", "failure_limit": 1}
    return Criteria(**{**base, **kw})


def shadowed(requests: float = 0.0, compared: float = 100.0, differing: float = 0.0,
             runs: float | None = None, shadow_errors: float = 0.0, abs_sum: float = 0.0,
             abs_count: float = 100.0, errors: float = 0.0) -> VersionWindow:
    return VersionWindow(requests, errors, FAST if requests else (),
                         shadow_runs=compared + shadow_errors if runs is None else runs,
                         shadow_errors=shadow_errors, compared=compared, differing=differing,
                         abs_diff_sum=abs_sum, abs_diff_count=abs_count)


STABLE = VersionWindow(200.0, 0.0, FAST)

CASES = [
    # (name, criteria kwargs, canary, outcome, phrase in the reasons)
    ("identical canary passes", {"prediction_max_differing_rate": 0.01,
                                 "prediction_max_mean_abs": 0.05},
     shadowed(), "pass", "100 compared, differing rate 0.00% <= maxDifferingRate 1.00%"),
    ("wrong canary fails on the rate", {"prediction_max_differing_rate": 0.01},
     shadowed(differing=100, abs_sum=20.0), "fail", "differing rate 100.00% > maxDifferingRate"),
    ("wrong canary fails on the mean", {"prediction_max_mean_abs": 0.05},
     shadowed(differing=100, abs_sum=20.0), "fail", "mean abs diff 0.2 > maxMeanAbs 0.05"),
    ("rate at the limit passes", {"prediction_max_differing_rate": 0.02},
     shadowed(differing=2), "pass", "2.00% <= maxDifferingRate 2.00%"),
    ("too few compared: no data", {"prediction_max_differing_rate": 0.01},
     shadowed(compared=10, runs=60), "inconclusive",
     "10 requests compared by shadow scoring < minRequests 50"),
    ("nothing shadowed or served: no data", {"prediction_max_differing_rate": 0.01},
     shadowed(compared=0, runs=0, abs_count=0), "inconclusive",
     "canary served 0 requests < minRequests 50"),
    ("no float outputs: mean skipped", {"prediction_max_mean_abs": 0.05},
     shadowed(abs_count=0), "pass", "no float output compared: maxMeanAbs skipped"),
    ("shadow errors count toward the error rate", {"error_rate_max": 0.01},
     shadowed(compared=90, shadow_errors=10), "fail", "error rate 10.00% > max 1.00%"),
    ("dark launch: latency not judged", {"latency_p99_max_s": 0.001,
                                         "prediction_max_differing_rate": 0.01},
     shadowed(), "pass", "dark launch): latency not judged"),
    ("served canary is still latency-judged", {"latency_p99_max_s": 0.001},
     shadowed(requests=100), "fail", "latency p99"),
    ("statistical: 1 of 100 differing is not shown above 0.5%",
     {"prediction_max_differing_rate": 0.005, "judge": "statistical"},
     shadowed(differing=1), "pass", "lower 95% bound 0.05% <= maxDifferingRate 0.50%"),
    ("statistical: 30 of 100 differing is above 1%",
     {"prediction_max_differing_rate": 0.01, "judge": "statistical"},
     shadowed(differing=30), "fail", "> maxDifferingRate 1.00%"),
]


@pytest.mark.parametrize(("name", "kw", "canary", "outcome", "phrase"), CASES,
                         ids=[c[0] for c in CASES])
def test_prediction_checks(name: str, kw: dict[str, Any], canary: VersionWindow, outcome: str,
                           phrase: str) -> None:
    verdict = judge_interval(criteria(**kw), canary, STABLE)
    assert verdict.outcome == outcome, verdict.reasons
    assert any(phrase in reason for reason in verdict.reasons), verdict.reasons


def test_numbers_reach_the_notes_and_the_summary_line() -> None:
    verdict = judge_interval(criteria(prediction_max_differing_rate=0.01),
                             shadowed(differing=100, abs_sum=20.0), STABLE)
    detail = interval_detail(verdict, 0)
    assert detail["canary"]["shadow"] == {
        "runs": 100.0, "errors": 0.0, "compared": 100.0, "differing": 100.0,
        "differingRate": 1.0, "meanAbsDiff": 0.2, "dropped": 0.0}
    assert "shadow 100 compared 100.00% differ mean|diff| 0.2" in detail["summary"]
    json.dumps(detail)  # notes are JSON


SCRAPE = """\
# TYPE rollouts_shadow_comparisons counter
rollouts_shadow_comparisons_total{model="m",version="2",baseline_version="1",outcome="same"} 7
rollouts_shadow_comparisons_total{model="m",version="2",baseline_version="1",outcome="differs"} 3
rollouts_shadow_comparisons_total{model="m",version="2",baseline_version="1",outcome="error"} 2
rollouts_shadow_comparisons_total{model="m",version="2",baseline_version="1",outcome="dropped"} 5
rollouts_shadow_comparisons_total{model="m",version="1",baseline_version="2",outcome="mismatch"} 1
rollouts_shadow_comparisons_total{model="m",version="1",baseline_version="2",outcome="error"} 4
# TYPE rollouts_shadow_abs_diff counter
rollouts_shadow_abs_diff_total{model="m",version="2",baseline_version="1"} 0.6
rollouts_shadow_abs_diff_total{model="m",version="1",baseline_version="2"} 0.0
# TYPE rollouts_shadow_elements counter
rollouts_shadow_elements_total{model="m",version="2",baseline_version="1"} 10
rollouts_shadow_elements_total{model="m",version="1",baseline_version="2"} 0
"""


def test_scraped_shadow_series_become_both_versions_windows() -> None:
    windows = promtext.parse(SCRAPE).totals()
    canary, stable = windows[("m", 2)], windows[("m", 1)]
    # Comparisons count for both sides; runs, errors and drops for the side that ran.
    assert (canary.compared, canary.differing, canary.shadow_runs, canary.shadow_errors,
            canary.dropped) == (11, 4, 12, 2, 5)
    assert (stable.compared, stable.differing, stable.shadow_runs, stable.shadow_errors) == (
        11, 4, 5, 4)
    assert canary.mean_abs_diff == pytest.approx(0.06)
    assert canary.requests == 0 and canary.error_rate == pytest.approx(2 / 12)


def test_scrape_deltas_cover_shadow_series() -> None:
    later = promtext.parse(SCRAPE)
    earlier = promtext.parse(SCRAPE.replace("} 7\n", "} 2\n"))
    delta = promtext.diff(later, earlier).windows[("m", 2)]
    assert (delta.compared, delta.differing, delta.shadow_runs) == (5, 0, 5)


def test_promql_reads_shadow_series_and_a_dark_canary_has_a_window() -> None:
    answers = {
        "rollouts_requests_total": [({"version": "1"}, 100.0)],
        "status!=": [],
        "_bucket": [],
        "rollouts_shadow_comparisons_total": [
            ({"version": "2", "baseline_version": "1", "outcome": "differs"}, 40.0),
            ({"version": "2", "baseline_version": "1", "outcome": "same"}, 60.0)],
        "rollouts_shadow_abs_diff_total": [({"version": "2", "baseline_version": "1"}, 8.0)],
        "rollouts_shadow_elements_total": [({"version": "2", "baseline_version": "1"}, 40.0)],
    }

    def fetch(url: str, timeout: float) -> bytes:
        from urllib.parse import parse_qs, urlparse
        query = parse_qs(urlparse(url).query)["query"][0]
        key = next(k for k in ("status!=", "_bucket", "rollouts_shadow_comparisons_total",
                               "rollouts_shadow_abs_diff_total", "rollouts_shadow_elements_total",
                               "rollouts_requests_total") if k in query)
        result = [{"metric": m, "value": [0, str(v)]} for m, v in answers[key]]
        return json.dumps({"status": "success",
                           "data": {"resultType": "vector", "result": result}}).encode()

    provider = PrometheusProvider("http://127.0.0.1:9", fetch=fetch)
    queries = provider.queries("m", [1, 2], 0.0, 30.0)
    assert queries["shadow"] == ('sum by (version, baseline_version, outcome) '
                                 '(increase(rollouts_shadow_comparisons_total{model="m"}[30s]))')
    reading = provider.read("m", [1, 2], 0.0, 30.0)
    assert reading.problems == ()
    canary = reading.windows[2]
    assert (canary.requests, canary.compared, canary.differing) == (0.0, 100.0, 40.0)
    assert canary.mean_abs_diff == pytest.approx(0.2)


def test_the_shadow_rate_and_tolerance_travel_with_the_split() -> None:
    rule = SplitRule(canary_weight_bp=0, hash_key="x-user-id",
                     shadow=ShadowRule(0.25, 0.001, ("scores",)))
    proto = split_to_proto("m", rule)
    assert (proto.shadow.sample, proto.shadow.tolerance, list(proto.shadow.outputs)) == (
        0.25, 0.001, ["scores"])
    assert split_from_proto(proto) == rule
    assert split_from_proto(split_to_proto("m", SplitRule())).shadow is None


# ---------------------------------------------------------------- the tests


@pytest.mark.parametrize(("ce", "cn", "se", "sn", "margin", "low", "high"), [
    (0, 1000, 0, 1000, 0.0, 0.45, 0.55),      # equal, no errors: no evidence
    (0, 0, 0, 1000, 0.0, 1.0, 1.0),           # no canary data
    (0, 1000, 0, 0, 0.0, 1.0, 1.0),           # no stable data
    (50, 1000, 10, 1000, 0.0, 0.0, 1e-6),     # 5% vs 1%: clearly worse
    (50, 1000, 10, 1000, 0.05, 0.9, 1.0),     # ...but not by more than 5 points
    (2, 20, 0, 20, 0.0, 0.05, 0.5),           # 10% vs 0% on 20 requests: noise
    (20, 20, 0, 20, 0.0, 0.0, 1e-6),          # all failing vs none
])
def test_increase_p_value(ce: float, cn: float, se: float, sn: float, margin: float,
                          low: float, high: float) -> None:
    assert low <= stats.increase_p_value(ce, cn, se, sn, margin) <= high


def buckets(*counts: float) -> tuple[tuple[float, float], ...]:
    """Cumulative buckets at 10, 20, 40, 80 ms and +Inf from per-bucket counts."""
    bounds, running, out = (0.01, 0.02, 0.04, 0.08, INF), 0.0, []
    for bound, count in zip(bounds, counts, strict=True):
        running += count
        out.append((bound, running))
    return tuple(out)


@pytest.mark.parametrize(("canary", "stable", "ratio", "low", "high"), [
    (buckets(0, 0, 0, 100, 0), buckets(100, 0, 0, 0, 0), 1.0, 0.0, 1e-6),   # much slower
    (buckets(100, 0, 0, 0, 0), buckets(100, 0, 0, 0, 0), 1.0, 1.0, 1.0),    # all tied
    (buckets(50, 50, 0, 0, 0), buckets(50, 50, 0, 0, 0), 1.0, 0.3, 0.7),    # same spread
    (buckets(0, 100, 0, 0, 0), buckets(100, 0, 0, 0, 0), 4.0, 0.99, 1.0),   # within 4x
    (buckets(0, 0, 0, 0, 0), buckets(100, 0, 0, 0, 0), 1.0, 1.0, 1.0),      # no canary data
    (buckets(0, 0, 0, 0, 10), buckets(10, 0, 0, 0, 0), 1.5, 0.0, 0.01),     # +Inf bucket
])
def test_slower_p_value(canary: tuple[tuple[float, float], ...],
                        stable: tuple[tuple[float, float], ...], ratio: float, low: float,
                        high: float) -> None:
    assert low <= stats.slower_p_value(canary, stable, ratio) <= high


@pytest.mark.parametrize(("k", "n", "confidence", "expected"), [
    (0, 100, 0.95, 0.0),
    (0, 0, 0.95, 0.0),
    (100, 100, 0.95, 0.05 ** (1 / 100)),      # Clopper-Pearson at k = n: alpha^(1/n)
    (1, 1, 0.95, 0.05),
    (10, 100, 0.95, 0.0553),
])
def test_rate_lower_bound(k: int, n: int, confidence: float, expected: float) -> None:
    assert stats.rate_lower_bound(k, n, confidence) == pytest.approx(expected, abs=5e-4)


def test_statistical_judge_gives_the_p_value_next_to_the_threshold() -> None:
    noisy = VersionWindow(20.0, 2.0, FAST)
    base = VersionWindow(20.0, 0.0, FAST)
    threshold = judge_interval(criteria(min_requests=10, error_rate_max_increase=0.05),
                               noisy, base)
    statistical = judge_interval(criteria(min_requests=10, error_rate_max_increase=0.05,
                                          judge="statistical"), noisy, base)
    assert threshold.outcome == "fail"
    assert statistical.outcome == "pass"
    assert any("not shown worse than maxIncrease 5.00% at 95% (p=" in r
               for r in statistical.reasons), statistical.reasons
    slow = VersionWindow(200.0, 0.0, buckets(0, 0, 0, 200, 0))
    fast = VersionWindow(200.0, 0.0, buckets(200, 0, 0, 0, 0))
    verdict = judge_interval(criteria(latency_p99_max_ratio=1.5, judge="statistical"), slow, fast)
    assert verdict.outcome == "fail"
    assert any("worse than maxRatio 1.50x at 95% (p=" in r for r in verdict.reasons)
