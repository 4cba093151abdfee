"""Prometheus text exposition -> per-version totals, and deltas between two scrapes.

Pure: parses the text a serving target exposes at /monitoring/prometheus/metrics
(with `prometheus_client.parser`) and subtracts snapshots. The series read:

- `rollouts_requests_total{model, version, label, status}`: counter; every status
  other than "OK" (a canonical gRPC code name) is an error, counted per code
  (the spec's `errorRate.codes` decides which count against the canary).
- `rollouts_request_latency_seconds_bucket{model, version, label, le}`: histogram.
- `rollouts_loaded_versions{model}`: gauge (kept for status display).
- `rollouts_shadow_comparisons_total{model, version, baseline_version, outcome}`
  and `rollouts_shadow_abs_diff_total` / `rollouts_shadow_elements_total{model, version,
  baseline_version}`:
  shadow scoring. A comparison counts for both versions (either may be the
  canary); a run, an error or a drop only for `version`, the one that ran it.

Everything is keyed by (model, version) and summed over the other labels:
versions are judged, not labels, because labels move at promotion. Deltas are
taken per raw series before summing, so a label moving from "canary" to
"stable" (a new series starting at zero) is not mistaken for a counter reset.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from controller.decide.analysis import SHADOW_FIELDS, VersionWindow

REQUESTS = "rollouts_requests_total"
LATENCY_BUCKET = "rollouts_request_latency_seconds_bucket"
LOADED_VERSIONS = "rollouts_loaded_versions"
SHADOW_COMPARISONS = "rollouts_shadow_comparisons_total"
SHADOW_ABS_DIFF_SUM = "rollouts_shadow_abs_diff_total"
SHADOW_ABS_DIFF_COUNT = "rollouts_shadow_elements_total"
_READ = frozenset({REQUESTS, LATENCY_BUCKET, SHADOW_COMPARISONS, SHADOW_ABS_DIFF_SUM,
                   SHADOW_ABS_DIFF_COUNT})
_COMPARED = frozenset({"same", "differs", "mismatch"})
_DIFFERING = frozenset({"differs", "mismatch"})

VersionKey = tuple[str, int]
"""(model name, version number)."""
SeriesId = tuple[str, tuple[tuple[str, str], ...]]
"""(sample name, sorted label pairs): one raw time series."""


class PromTextError(ValueError):
    """The text is not valid Prometheus exposition format."""


@dataclass(frozen=True)
class Scrape:
    """One target's rollouts_* series at one moment (cumulative values)."""

    series: Mapping[SeriesId, float] = field(default_factory=dict)
    loaded_versions: Mapping[str, float] = field(default_factory=dict)

    def totals(self) -> dict[VersionKey, VersionWindow]:
        """Per-version totals since each series started (a delta from zero)."""
        return _aggregate(self.series)


@dataclass(frozen=True)
class Delta:
    """Per-version windows between two scrapes, and the versions whose counters reset."""

    windows: Mapping[VersionKey, VersionWindow] = field(default_factory=dict)
    resets: frozenset[VersionKey] = frozenset()


def parse(text: str) -> Scrape:
    """Parse Prometheus text format; raises PromTextError on malformed input."""
    series: dict[SeriesId, float] = {}
    loaded: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in _READ:
                    sid = (sample.name, tuple(sorted(sample.labels.items())))
                    series[sid] = series.get(sid, 0.0) + float(sample.value)
                elif sample.name == LOADED_VERSIONS and "model" in sample.labels:
                    model = sample.labels["model"]
                    loaded[model] = loaded.get(model, 0.0) + float(sample.value)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise PromTextError(f"malformed Prometheus text: {exc}") from exc
    return Scrape(series, loaded)


def _version_key(labels: Mapping[str, str]) -> VersionKey | None:
    # Series without a numeric version cannot belong to a model version: skip them.
    model, version = labels.get("model"), labels.get("version", "")
    if not model or not version.isdigit():
        return None
    return model, int(version)


def _le(value: str) -> float | None:
    try:
        return math.inf if value in ("+Inf", "Inf") else float(value)
    except ValueError:
        return None


def _shadow_fields(name: str, labels: Mapping[str, str], key: VersionKey, value: float,
                   shadow: dict[VersionKey, dict[str, float]]) -> None:
    """Add one shadow series to the fields of its version and, for what both
    sides share (comparisons, differences), of its baseline version."""
    baseline = labels.get("baseline_version", "")
    keys = [key] + ([(key[0], int(baseline))] if baseline.isdigit() else [])

    def add(field_name: str, *to: VersionKey) -> None:
        for k in to:
            fields = shadow.setdefault(k, {})
            fields[field_name] = fields.get(field_name, 0.0) + value

    if name == SHADOW_COMPARISONS:
        outcome = labels.get("outcome", "")
        if outcome in _COMPARED:
            add("shadow_runs", key)
            add("compared", *keys)
            if outcome in _DIFFERING:
                add("differing", *keys)
        elif outcome == "error":
            add("shadow_runs", key)
            add("shadow_errors", key)
        elif outcome == "dropped":
            add("dropped", key)
    elif name == SHADOW_ABS_DIFF_SUM:
        add("abs_diff_sum", *keys)
    elif name == SHADOW_ABS_DIFF_COUNT:
        add("abs_diff_count", *keys)


def shadow_by_version(samples: Iterable[tuple[str, Mapping[str, str], float]],
                      ) -> dict[VersionKey, dict[str, float]]:
    """VersionWindow's shadow fields per (model, version) from (name, labels,
    value) samples of the shadow series (PromQL answers, for one)."""
    shadow: dict[VersionKey, dict[str, float]] = {}
    for name, labels, value in samples:
        key = _version_key(labels)
        if key is not None:
            _shadow_fields(name, labels, key, value, shadow)
    return shadow


def _aggregate(values: Mapping[SeriesId, float]) -> dict[VersionKey, VersionWindow]:
    """Sum raw series values into one window per (model, version)."""
    requests: dict[VersionKey, float] = {}
    errors: dict[VersionKey, float] = {}
    by_code: dict[VersionKey, dict[str, float]] = {}
    buckets: dict[VersionKey, dict[float, float]] = {}
    shadow: dict[VersionKey, dict[str, float]] = {}
    for (name, pairs), value in values.items():
        labels = dict(pairs)
        key = _version_key(labels)
        if key is None:
            continue
        if name.startswith("rollouts_shadow_"):
            _shadow_fields(name, labels, key, value, shadow)
        elif name == REQUESTS:
            requests[key] = requests.get(key, 0.0) + value
            status = labels.get("status", "")
            if status != "OK":
                errors[key] = errors.get(key, 0.0) + value
                codes = by_code.setdefault(key, {})
                codes[status] = codes.get(status, 0.0) + value
        elif name == LATENCY_BUCKET:
            le = _le(labels.get("le", ""))
            if le is not None:
                per_le = buckets.setdefault(key, {})
                per_le[le] = per_le.get(le, 0.0) + value
    keys = set(requests) | set(buckets) | set(shadow)
    return {key: VersionWindow(requests=requests.get(key, 0.0), errors=errors.get(key, 0.0),
                               latency_buckets=tuple(sorted(buckets.get(key, {}).items())),
                               errors_by_code=tuple(sorted(by_code.get(key, {}).items())),
                               **shadow.get(key, {}))
            for key in keys}


def diff(later: Scrape, earlier: Scrape) -> Delta:
    """What one target served between two scrapes of it.

    A series whose value went down belongs to a restarted server: its later
    value is the delta since the restart (as Prometheus' increase() assumes),
    and its version is flagged in `resets` so the caller can mark the interval
    inconclusive. A series new in `later` started at zero since `earlier`.
    A reset followed by growth past the old value is invisible here, as it is
    to Prometheus without a start timestamp.
    """
    deltas: dict[SeriesId, float] = {}
    resets: set[VersionKey] = set()
    for sid, value in later.series.items():
        before = earlier.series.get(sid, 0.0)
        if value < before:
            deltas[sid] = value
            key = _version_key(dict(sid[1]))
            if key is not None:
                resets.add(key)
        else:
            deltas[sid] = value - before
    return Delta(_aggregate(deltas), frozenset(resets))


def _add(a: VersionWindow, b: VersionWindow) -> VersionWindow:
    merged: dict[float, float] = dict(a.latency_buckets)
    for le, count in b.latency_buckets:
        merged[le] = merged.get(le, 0.0) + count
    codes: dict[str, float] = dict(a.errors_by_code)
    for code, count in b.errors_by_code:
        codes[code] = codes.get(code, 0.0) + count
    return VersionWindow(a.requests + b.requests, a.errors + b.errors,
                         tuple(sorted(merged.items())), tuple(sorted(codes.items())),
                         **{name: getattr(a, name) + getattr(b, name) for name in SHADOW_FIELDS})


def combine(deltas: Iterable[Delta]) -> Delta:
    """Sum per-target deltas into fleet-wide windows (resets are united)."""
    windows: dict[VersionKey, VersionWindow] = {}
    resets: set[VersionKey] = set()
    for delta in deltas:
        resets |= delta.resets
        for key, window in delta.windows.items():
            windows[key] = _add(windows[key], window) if key in windows else window
    return Delta(windows, frozenset(resets))


def diff_targets(later: Mapping[str, Scrape], earlier: Mapping[str, Scrape]) -> Delta:
    """Per-target diffs summed over targets; both mappings must name the same targets.

    Differences are taken per target before summing, so one target's restart
    is not hidden by another target's growth.
    """
    if set(later) != set(earlier):
        missing = sorted(set(later) ^ set(earlier))
        raise ValueError(f"targets differ between scrapes: {', '.join(missing)}")
    return combine(diff(later[target], earlier[target]) for target in later)
