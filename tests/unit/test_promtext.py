"""controller.adapters.promtext: parsing the serving target's exposition, diffs, resets, sums."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from controller.adapters.promtext import (
    PromTextError,
    Scrape,
    combine,
    diff,
    diff_targets,
    parse,
)

INF = math.inf


def exposition(
    canary_ok: int,
    canary_err: int,
    stable_ok: int,
    fast: int,
    slow: int,
    stable_fast: int | None = None,
) -> str:
    """Text the way prometheus_client writes it, with help, types and _created lines."""
    stable_fast = stable_ok if stable_fast is None else stable_fast
    canary_all = canary_ok + canary_err
    c, s = 'model="m",version="2",label="canary"', 'model="m",version="1",label="stable"'
    return f"""\
# HELP rollouts_requests_total Requests served, by model version and status.
# TYPE rollouts_requests_total counter
rollouts_requests_total{{{c},status="OK"}} {canary_ok}.0
rollouts_requests_total{{{c},status="INTERNAL"}} {canary_err}.0
rollouts_requests_total{{{s},status="OK"}} {stable_ok}.0
rollouts_requests_total{{model="other",version="7",label="",status="NOT_FOUND"}} 3.0
# HELP rollouts_requests_created Requests served, by model version and status.
# TYPE rollouts_requests_created gauge
rollouts_requests_created{{{c},status="OK"}} 1.7e+09
# HELP rollouts_request_latency_seconds Request latency.
# TYPE rollouts_request_latency_seconds histogram
rollouts_request_latency_seconds_bucket{{{c},le="0.1"}} {fast}.0
rollouts_request_latency_seconds_bucket{{{c},le="0.5"}} {canary_all}.0
rollouts_request_latency_seconds_bucket{{{c},le="+Inf"}} {canary_all}.0
rollouts_request_latency_seconds_sum{{{c}}} {fast * 0.05 + slow * 0.3}
rollouts_request_latency_seconds_count{{{c}}} {canary_all}.0
rollouts_request_latency_seconds_bucket{{{s},le="0.1"}} {stable_fast}.0
rollouts_request_latency_seconds_bucket{{{s},le="0.5"}} {stable_ok}.0
rollouts_request_latency_seconds_bucket{{{s},le="+Inf"}} {stable_ok}.0
rollouts_request_latency_seconds_sum{{{s}}} 1.0
rollouts_request_latency_seconds_count{{{s}}} {stable_ok}.0
# HELP rollouts_loaded_versions Versions loaded per model.
# TYPE rollouts_loaded_versions gauge
rollouts_loaded_versions{{model="m"}} 2.0
rollouts_loaded_versions{{model="other"}} 1.0
"""


def test_parse_sums_labels_into_versions() -> None:
    scrape = parse(exposition(canary_ok=90, canary_err=10, stable_ok=500, fast=95, slow=5))
    totals = scrape.totals()
    assert set(totals) == {("m", 2), ("m", 1), ("other", 7)}
    canary = totals[("m", 2)]
    assert (canary.requests, canary.errors) == (100, 10)
    assert canary.latency_buckets == ((0.1, 95.0), (0.5, 100.0), (INF, 100.0))
    assert totals[("m", 1)].errors == 0
    assert totals[("other", 7)].errors == 3  # any status but OK is an error
    assert scrape.loaded_versions == {"m": 2.0, "other": 1.0}


def test_parse_ignores_unrelated_and_versionless_series() -> None:
    text = """\
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
rollouts_requests_total{model="m",version="latest",status="OK"} 9
rollouts_requests_total{version="3",status="OK"} 9
rollouts_requests_total{model="m",version="3",status="OK"} 4
"""
    assert parse(text).totals() == {("m", 3): parse(text).totals()[("m", 3)]}
    assert parse(text).totals()[("m", 3)].requests == 4


def test_parse_of_empty_text_is_an_empty_scrape() -> None:
    assert parse("").totals() == {}


@pytest.mark.parametrize(
    "text",
    [
        'rollouts_requests_total{model="m" 1\n',
        'rollouts_requests_total{model="m"} not-a-number\n',
    ],
)
def test_malformed_text_raises(text: str) -> None:
    with pytest.raises(PromTextError):
        parse(text)


def test_diff_gives_the_interval_deltas() -> None:
    earlier = parse(exposition(canary_ok=90, canary_err=10, stable_ok=500, fast=95, slow=5))
    later = parse(
        exposition(
            canary_ok=180, canary_err=30, stable_ok=1500, fast=190, slow=20, stable_fast=1400
        )
    )
    delta = diff(later, earlier)
    assert delta.resets == frozenset()
    canary = delta.windows[("m", 2)]
    assert (canary.requests, canary.errors) == (110, 20)
    assert canary.latency_buckets == ((0.1, 95.0), (0.5, 110.0), (INF, 110.0))
    assert canary.error_rate == pytest.approx(20 / 110)
    stable = delta.windows[("m", 1)]
    assert (stable.requests, stable.latency_buckets[0]) == (1000, (0.1, 900.0))
    assert delta.windows[("other", 7)].requests == 0


def test_counter_reset_counts_the_later_value_and_is_flagged() -> None:
    before = parse(exposition(canary_ok=900, canary_err=100, stable_ok=5000, fast=990, slow=10))
    # The target restarted: every counter starts over.
    after = parse(exposition(canary_ok=40, canary_err=10, stable_ok=300, fast=50, slow=0))
    delta = diff(after, before)
    assert ("m", 2) in delta.resets and ("m", 1) in delta.resets
    assert (delta.windows[("m", 2)].requests, delta.windows[("m", 2)].errors) == (50, 10)
    assert delta.windows[("m", 1)].requests == 300


def test_label_move_is_not_a_reset() -> None:
    earlier = parse(
        'rollouts_requests_total{model="m",version="2",label="canary",status="OK"} 50\n'
    )
    # Promotion: version 2 is now labelled stable; the canary series is gone.
    later = parse(
        'rollouts_requests_total{model="m",version="2",label="stable",status="OK"} 8\n'
        'rollouts_requests_total{model="m",version="2",label="canary",status="OK"} 50\n'
    )
    assert diff(later, earlier).resets == frozenset()
    assert diff(later, earlier).windows[("m", 2)].requests == 8


def test_a_series_new_since_the_earlier_scrape_counts_from_zero() -> None:
    later = parse(exposition(canary_ok=5, canary_err=1, stable_ok=7, fast=6, slow=0))
    delta = diff(later, Scrape())
    assert delta.windows[("m", 2)].requests == 6
    assert delta.resets == frozenset()


def test_sum_over_targets_with_one_target_restarted() -> None:
    a0 = parse(exposition(canary_ok=100, canary_err=0, stable_ok=100, fast=100, slow=0))
    a1 = parse(exposition(canary_ok=160, canary_err=4, stable_ok=700, fast=150, slow=14))
    b0 = parse(exposition(canary_ok=1000, canary_err=0, stable_ok=1000, fast=1000, slow=0))
    b1 = parse(exposition(canary_ok=30, canary_err=6, stable_ok=200, fast=36, slow=0))
    delta = diff_targets({"a": a1, "b": b1}, {"a": a0, "b": b0})
    canary = delta.windows[("m", 2)]
    assert (canary.requests, canary.errors) == (64 + 36, 4 + 6)
    assert dict(canary.latency_buckets) == {0.1: 50 + 36, 0.5: 64 + 36, INF: 64 + 36}
    assert delta.windows[("m", 1)].requests == 600 + 200
    # Summing before diffing would have hidden b's restart behind a's growth.
    assert ("m", 2) in delta.resets
    assert combine([diff(a1, a0), diff(b1, b0)]) == delta


def test_diff_targets_needs_the_same_targets() -> None:
    with pytest.raises(ValueError, match="b"):
        diff_targets({"a": Scrape()}, {"a": Scrape(), "b": Scrape()})


def test_parse_reads_what_prometheus_client_exposes() -> None:
    registry = CollectorRegistry()
    requests = Counter("rollouts_requests", "Requests.", ["model", "version", "label", "status"],
                       registry=registry)
    latency = Histogram("rollouts_request_latency_seconds", "Latency.",
                        ["model", "version", "label"], buckets=(0.1, 1.0), registry=registry)
    requests.labels("m", "3", "canary", "OK").inc(7)
    requests.labels("m", "3", "canary", "DEADLINE_EXCEEDED").inc(2)
    for seconds in (0.05, 0.05, 0.5):
        latency.labels("m", "3", "canary").observe(seconds)
    window = parse(generate_latest(registry).decode()).totals()[("m", 3)]
    assert (window.requests, window.errors) == (9, 2)
    assert window.latency_buckets == ((0.1, 2.0), (1.0, 3.0), (INF, 3.0))
