"""Metrics providers: where the analysis gets each version's traffic over an interval.

One small interface, two implementations:

- `ScrapeProvider(urls)` scrapes every serving target's Prometheus endpoint
  itself (the default: no Prometheus server needed). It keeps a short history
  of fleet snapshots stamped with the caller's times and diffs the snapshot at
  `end` against the latest one at or before `start`.
- `PrometheusProvider(base_url)` asks a Prometheus server with PromQL
  `increase(...[range])` at time `end` over the range `end - start`.

Both sum over targets and key by (model, version). Missing data is never a
failure: an unreachable target or Prometheus, or an empty answer, gives a
`Reading` without that version's window (the interval is then inconclusive),
with the cause in `problems`. Only loopback or configured addresses are
contacted; HTTP goes through the stdlib (urllib), injected as `fetch` in tests.
"""

from __future__ import annotations

import json
import math
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from controller.adapters.promtext import (
    LATENCY_BUCKET,
    REQUESTS,
    SHADOW_ABS_DIFF_COUNT,
    SHADOW_ABS_DIFF_SUM,
    SHADOW_COMPARISONS,
    Scrape,
    diff_targets,
    parse,
    shadow_by_version,
)
from controller.decide.analysis import VersionWindow

METRICS_PATH = "/monitoring/prometheus/metrics"

Fetch = Callable[[str, float], bytes]
"""(url, timeout seconds) -> response body; raises OSError (or a subclass) on failure."""


def http_get(url: str, timeout: float) -> bytes:
    """GET `url` with a timeout; any non-2xx status raises (urllib's HTTPError)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body


def metrics_url(address: str) -> str:
    """The metrics endpoint of a serving target given as host:port or a base URL."""
    base = address if "://" in address else f"http://{address}"
    return base.rstrip("/") + METRICS_PATH


@dataclass(frozen=True)
class Reading:
    """Per-version windows for one model over one interval.

    A version is absent from `windows` when its data could not be read; then
    `problems` says why. `counter_reset` flags a restarted server during the
    interval: the numbers are a lower bound and the caller may call it
    inconclusive.
    """

    windows: Mapping[int, VersionWindow] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    counter_reset: bool = False

    def window(self, version: int) -> VersionWindow | None:
        return self.windows.get(version)


class MetricsProvider(Protocol):
    """The analysis' view of metrics. Times are seconds on the caller's clock."""

    def mark(self, at: float) -> None:
        """Record a baseline at `at` if the provider needs one (call when analysis starts)."""
        ...

    def read(self, model: str, versions: Sequence[int], start: float, end: float) -> Reading:
        """Traffic of each version of `model` between `start` and `end` (end is now)."""
        ...


_Snapshot = Mapping[str, Scrape | str]
"""Per target URL: its parsed scrape, or the error text of a failed scrape."""


class ScrapeProvider:
    """Scrapes every target directly and diffs snapshots taken at the caller's times."""

    def __init__(self, urls: Sequence[str], timeout: float = 2.0, history: int = 64,
                 fetch: Fetch = http_get) -> None:
        self._urls = tuple(urls)
        self._timeout = timeout
        self._history = max(history, 2)
        self._fetch = fetch
        self._snapshots: list[tuple[float, _Snapshot]] = []
        self._lock = threading.Lock()

    @property
    def urls(self) -> tuple[str, ...]:
        return self._urls

    def set_urls(self, urls: Sequence[str]) -> None:
        """Scrape these from now on (targets discovered in DNS). An interval is judged
        over the targets scraped at both its ends: a target that joined counts from
        its first full interval on, one that left drops out (neither is a gap)."""
        with self._lock:
            self._urls = tuple(urls)

    def mark(self, at: float) -> None:
        self._snapshot_at(at)

    def read(self, model: str, versions: Sequence[int], start: float, end: float) -> Reading:
        with self._lock:
            baseline = self._latest_at_or_before(start)
        later = self._snapshot_at(end)
        if baseline is None:
            # e.g. just after a controller restart: no honest baseline exists.
            return Reading(problems=(f"no metrics snapshot at or before {start:.3f}",))
        both = set(baseline) & set(later)
        problems = [f"{url}: {value}" for snap in (baseline, later)
                    for url, value in snap.items() if url in both and isinstance(value, str)]
        if problems:
            return Reading(problems=tuple(dict.fromkeys(problems)))
        delta = diff_targets(
            {u: s for u, s in later.items() if u in both and isinstance(s, Scrape)},
            {u: s for u, s in baseline.items() if u in both and isinstance(s, Scrape)},
        )
        empty = VersionWindow(0.0, 0.0)
        # Every target answered: a version without series served no requests.
        windows = {v: delta.windows.get((model, v), empty) for v in versions}
        reset = any((model, v) in delta.resets for v in versions)
        notes = ("counter reset (a target restarted) during the interval",) if reset else ()
        return Reading(windows, notes, reset)

    def _latest_at_or_before(self, at: float) -> _Snapshot | None:
        candidates = [snap for t, snap in self._snapshots if t <= at]
        return candidates[-1] if candidates else None

    def _snapshot_at(self, at: float) -> _Snapshot:
        # Several models analysed at the same tick share one scrape of the fleet.
        with self._lock:
            for t, snap in self._snapshots:
                if t == at:
                    return snap
        snap = self._scrape_all()
        with self._lock:
            self._snapshots.append((at, snap))
            self._snapshots.sort(key=lambda item: item[0])
            del self._snapshots[:-self._history]
        return snap

    def _scrape_all(self) -> _Snapshot:
        urls = self._urls
        if not urls:
            return {}
        with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
            return dict(zip(urls, pool.map(self._scrape_one, urls), strict=True))

    def _scrape_one(self, url: str) -> Scrape | str:
        try:
            return parse(self._fetch(url, self._timeout).decode("utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            return f"scrape failed: {exc}"


def _label_value(value: str) -> str:
    """A PromQL string literal body: backslashes and quotes escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class PrometheusQueryError(Exception):
    """Prometheus could not be asked or did not answer with a vector."""


class PrometheusProvider:
    """Runs PromQL `increase()` queries against a Prometheus server's HTTP API."""

    def __init__(self, base_url: str, timeout: float = 5.0, fetch: Fetch = http_get) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._fetch = fetch

    def mark(self, at: float) -> None:
        """Prometheus keeps its own history: nothing to record."""

    def queries(self, model: str, versions: Sequence[int], start: float,
                end: float) -> dict[str, str]:
        """The PromQL used for one reading (exposed for tests and `rollouts status`)."""
        seconds = max(1, math.ceil(end - start))
        model_only = f'model="{_label_value(model)}"'
        selector = f'{model_only},version=~"{"|".join(str(int(v)) for v in versions)}"'
        return {
            "requests": f"sum by (version) (increase({REQUESTS}{{{selector}}}[{seconds}s]))",
            "errors": (f"sum by (version, status) (increase({REQUESTS}"
                       f"{{{selector},status!=\"OK\"}}[{seconds}s]))"),
            "buckets": (f"sum by (version, le) (increase({LATENCY_BUCKET}{{{selector}}}"
                        f"[{seconds}s]))"),
            # Shadow series: either version may be the baseline, so only the
            # model is selected; the answer is filtered to `versions` here.
            **{name: (f"sum by (version, baseline_version{extra}) "
                      f"(increase({series}{{{model_only}}}[{seconds}s]))")
               for name, series, extra in (
                   ("shadow", SHADOW_COMPARISONS, ", outcome"),
                   ("absDiffSum", SHADOW_ABS_DIFF_SUM, ""),
                   ("absDiffCount", SHADOW_ABS_DIFF_COUNT, ""))},
        }

    def read(self, model: str, versions: Sequence[int], start: float, end: float) -> Reading:
        if not versions:
            return Reading()
        queries = self.queries(model, versions, start, end)
        try:
            answers = {name: self._query(q, end) for name, q in queries.items()}
        except PrometheusQueryError as exc:
            return Reading(problems=(str(exc),))
        requests = _by_version(answers["requests"])
        errors: dict[int, float] = {}
        by_code: dict[int, dict[str, float]] = {}
        for metric, value in answers["errors"]:
            version = _version(metric)
            if version is not None:
                errors[version] = errors.get(version, 0.0) + value
                codes = by_code.setdefault(version, {})
                status = metric.get("status", "")
                codes[status] = codes.get(status, 0.0) + value
        buckets: dict[int, list[tuple[float, float]]] = {}
        for metric, value in answers["buckets"]:
            version, le = _version(metric), _parse_float(metric.get("le", ""))
            if version is not None and le is not None:
                buckets.setdefault(version, []).append((le, value))
        names = {"shadow": SHADOW_COMPARISONS, "absDiffSum": SHADOW_ABS_DIFF_SUM,
                 "absDiffCount": SHADOW_ABS_DIFF_COUNT}
        shadow = shadow_by_version(
            (series, {**metric, "model": model}, value)
            for name, series in names.items() for metric, value in answers[name])
        windows: dict[int, VersionWindow] = {}
        problems: list[str] = []
        for version in versions:
            fields = shadow.get((model, version), {})
            if version not in requests and not fields:
                # Prometheus cannot tell "no traffic" from "not scraped": no window.
                # (A dark-launched canary has shadow series and no requests.)
                problems.append(f"Prometheus has no requests series for {model} v{version}")
                continue
            windows[version] = VersionWindow(
                requests.get(version, 0.0), errors.get(version, 0.0),
                tuple(sorted(buckets.get(version, []))),
                tuple(sorted(by_code.get(version, {}).items())), **fields)
        return Reading(windows, tuple(problems))

    def _query(self, promql: str, at: float) -> list[tuple[dict[str, str], float]]:
        url = (f"{self._base}/api/v1/query?"
               + urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"}))
        try:
            body: Any = json.loads(self._fetch(url, self._timeout))
        except (OSError, ValueError) as exc:
            raise PrometheusQueryError(f"Prometheus query failed: {exc}") from exc
        ok = isinstance(body, dict) and body.get("status") == "success"
        data = body.get("data") if ok else None
        if not isinstance(data, dict) or data.get("resultType") != "vector":
            raise PrometheusQueryError(f"Prometheus answered without a vector: {body!r:.200}")
        samples: list[tuple[dict[str, str], float]] = []
        for item in data.get("result", []):
            value = _parse_float(str(item.get("value", [0, "NaN"])[1]))
            if value is not None and not math.isnan(value):
                samples.append((dict(item.get("metric", {})), value))
        return samples


def _parse_float(text: str) -> float | None:
    try:
        return float(text)  # accepts "+Inf" and "NaN", as Prometheus writes them
    except ValueError:
        return None


def _version(metric: Mapping[str, str]) -> int | None:
    text = metric.get("version", "")
    return int(text) if text.isdigit() else None


def _by_version(samples: Sequence[tuple[dict[str, str], float]]) -> dict[int, float]:
    out: dict[int, float] = {}
    for metric, value in samples:
        version = _version(metric)
        if version is not None:
            out[version] = out.get(version, 0.0) + value
    return out
