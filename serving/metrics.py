"""Prometheus metrics of the server, in the text format.

Two families of series: TF Serving's own names (":tensorflow:serving:..."),
so existing dashboards work unchanged, and ours, which the controller's
analysis reads per version and label:

    rollouts_requests_total{model, version, label, status}
    rollouts_request_latency_seconds{model, version, label}   (histogram)
    rollouts_loaded_versions{model}                           (gauge)
    rollouts_shadow_comparisons_total{model, version, baseline_version, outcome}
    rollouts_shadow_abs_diff_total{model, version, baseline_version}   (counter)
    rollouts_shadow_elements_total{model, version, baseline_version} (counter)

In the shadow series `version` is the version the shadow run used and
`baseline_version` the one that answered the user; `outcome` is same, differs,
mismatch, error or dropped (serving/shadow_compare.py). The abs-diff pair is
the sum and number of elementwise |difference|s of the floating-point outputs
compared, so their ratio over any window is the mean absolute difference.

`LoadedVersions` (a manager listener) and `timed_loads` (a loader-factory
wrapper) feed the gauge and TF's model load series from the server process.

A custom collector on a private registry emits exact names (prometheus-client's
Counter would rename the TF ones with a "_total" suffix and add "_created").
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from serving.core.loader import Loader
from serving.core.manager import VersionStatus
from serving.core.states import VersionState
from serving.core.status import Code

# TF's monitoring::Buckets::Exponential(10, 1.8, 33), in microseconds.
TF_LATENCY_BUCKETS_US: tuple[float, ...] = tuple(10 * 1.8**i for i in range(33))
# 0.1 ms .. 10 s, dense enough for a p99 comparison between stable and canary.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
TF_REQUEST_COUNT = ":tensorflow:serving:request_count"
TF_REQUEST_LATENCY = ":tensorflow:serving:request_latency"
TF_LOAD_LATENCY = ":tensorflow:cc:saved_model:load_latency"
TF_LOAD_ATTEMPTS = ":tensorflow:cc:saved_model:load_attempt_count"
REQUESTS = "rollouts_requests_total"
LATENCY = "rollouts_request_latency_seconds"
LOADED = "rollouts_loaded_versions"
# Batching (serving/batching.py): TF's batching_session samplers, rows per
# batch; ours counts requests merged into each model call, per version.
TF_BATCH_PREFIX = ":tensorflow:serving:batching_session:"
BATCH_SIZE_BUCKETS: tuple[float, ...] = tuple(2.0**i for i in range(14))  # Exponential(1, 2, 14)
BATCH_REQUESTS = "rollouts_batch_requests"
SHADOW_COMPARISONS = "rollouts_shadow_comparisons_total"
SHADOW_ABS_DIFF_SUM = "rollouts_shadow_abs_diff_total"
SHADOW_ABS_DIFF_COUNT = "rollouts_shadow_elements_total"
_SHADOW_LABELS = ("model", "version", "baseline_version")


@dataclass
class _Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def add(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        i = next((i for i, b in enumerate(self.bounds) if value <= b), len(self.bounds))
        self.counts[i] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for b, c in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += c
            out.append(("+Inf" if b == float("inf") else f"{b:g}", float(running)))
        return out


def _histogram_metric(name: str, doc: str, labels: Sequence[str],
                      data: Mapping[tuple[str, ...], _Histogram]) -> Metric:
    m = Metric(name, doc, "histogram")
    for key, h in data.items():
        base = dict(zip(labels, key, strict=True))
        for le, count in h.cumulative():
            m.add_sample(name + "_bucket", {**base, "le": le}, count)
        m.add_sample(name + "_count", base, float(sum(h.counts)))
        m.add_sample(name + "_sum", base, h.total)
    return m


def _scalar_metric(name: str, doc: str, kind: str, labels: Sequence[str],
                   data: Mapping[tuple[str, ...], float]) -> Metric:
    # A counter family is named without "_total"; its samples carry it.
    m = Metric(name.removesuffix("_total"), doc, kind)
    for key, value in data.items():
        m.add_sample(name, dict(zip(labels, key, strict=True)), value)
    return m


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{n}="{esc(v)}"' for n, v in zip(names, values, strict=True)) + "}"


class Metrics:
    """Thread-safe request and load metrics; `collect` is the registry hook."""

    def __init__(self, loaded_versions: Callable[[], Mapping[str, int]] | None = None) -> None:
        self._lock = threading.Lock()
        self._tf_count: dict[tuple[str, ...], float] = defaultdict(float)
        self._tf_latency: dict[tuple[str, ...], _Histogram] = {}
        self._requests: dict[tuple[str, ...], float] = defaultdict(float)
        self._latency: dict[tuple[str, ...], _Histogram] = {}
        self._load_latency: dict[tuple[str, ...], float] = defaultdict(float)
        self._load_attempts: dict[tuple[str, ...], float] = defaultdict(float)
        self._loaded: dict[str, int] = {}
        self._tf_batch: dict[tuple[str, ...], _Histogram] = {}
        self._batch_requests: dict[tuple[str, ...], _Histogram] = {}
        self._shadow: dict[tuple[str, ...], float] = defaultdict(float)
        self._shadow_sum: dict[tuple[str, ...], float] = defaultdict(float)
        self._shadow_count: dict[tuple[str, ...], float] = defaultdict(float)
        self._loaded_source = loaded_versions
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def observe(self, model: str, version: int | None, label: str, api: str, entrypoint: str,
                status_code: Code, seconds: float) -> None:
        """One finished request. `version` is None when no version was reached."""
        v = "" if version is None else str(version)
        with self._lock:
            if api in ("Predict", "Classify", "Regress"):
                # TF Serving counts these three APIs and times successes only.
                self._tf_count[(model, status_code.name)] += 1
                if status_code is Code.OK:
                    key = (model, api, entrypoint)
                    self._tf_latency.setdefault(key, _Histogram(TF_LATENCY_BUCKETS_US)).add(
                        seconds * 1e6)
            self._requests[(model, v, label, status_code.name)] += 1
            self._latency.setdefault((model, v, label), _Histogram(LATENCY_BUCKETS_S)).add(seconds)

    def observe_load(self, model_path: str, seconds: float, ok: bool) -> None:
        """One SavedModel load attempt (TF's cc/saved_model metrics, microseconds)."""
        with self._lock:
            self._load_attempts[(model_path, "success" if ok else "fail")] += 1
            if ok:
                self._load_latency[(model_path,)] += round(seconds * 1e6)

    def observe_batch(self, model: str, version: int, input_sizes: Sequence[int],
                      processed_size: int, padding: int) -> None:
        """One batched model call: each request's rows, rows run, padding rows."""
        with self._lock:
            def tf(name: str, label: str = "") -> _Histogram:
                return self._tf_batch.setdefault((name, label), _Histogram(BATCH_SIZE_BUCKETS))

            for size in input_sizes:
                tf("input_batch_size").add(size)
            tf("processed_batch_size").add(processed_size)
            tf("padding_size", str(processed_size)).add(padding)
            self._batch_requests.setdefault(
                (model, str(version)), _Histogram(BATCH_SIZE_BUCKETS)).add(len(input_sizes))

    def observe_shadow(self, model: str, version: int, baseline_version: int, outcome: str,
                       abs_diff_sum: float, abs_diff_count: int) -> None:
        """One shadow comparison (or a dropped sample) of `version` against the
        `baseline_version` that answered the user."""
        key = (model, str(version), str(baseline_version))
        with self._lock:
            self._shadow[(*key, outcome)] += 1
            if abs_diff_count:
                self._shadow_sum[key] += abs_diff_sum
                self._shadow_count[key] += abs_diff_count
            elif outcome in ("same", "differs"):
                # Present from the first comparison on, so a rate over a window
                # that starts at it is defined (0 elements compared).
                self._shadow_sum[key] += 0.0
                self._shadow_count[key] += 0

    def set_loaded_versions(self, model: str, count: int) -> None:
        with self._lock:
            self._loaded[model] = count

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            loaded = dict(self._loaded)
            if self._loaded_source is not None:
                loaded.update(self._loaded_source())
            yield _scalar_metric(REQUESTS,
                                 "Requests by model, version, label and status.",
                                 "counter", ("model", "version", "label", "status"),
                                 self._requests)
            yield _histogram_metric(LATENCY, "Request latency by model, version and label.",
                                    ("model", "version", "label"), self._latency)
            yield _scalar_metric(LOADED, "Versions loaded (AVAILABLE) per model.", "gauge",
                                 ("model",), {(m,): float(n) for m, n in loaded.items()})
            if self._shadow:
                yield _scalar_metric(SHADOW_COMPARISONS,
                                     "Shadow comparisons by model, version, baseline version "
                                     "and outcome.", "counter", (*_SHADOW_LABELS, "outcome"),
                                     self._shadow)
                yield _scalar_metric(SHADOW_ABS_DIFF_SUM,
                                     "Sum of |shadow - baseline| over compared float elements.",
                                     "counter", _SHADOW_LABELS, self._shadow_sum)
                yield _scalar_metric(SHADOW_ABS_DIFF_COUNT,
                                     "Float elements compared by shadow scoring.", "counter",
                                     _SHADOW_LABELS, self._shadow_count)
            if self._batch_requests:
                yield _histogram_metric(BATCH_REQUESTS, "Requests merged into one model call.",
                                        ("model", "version"), self._batch_requests)

    def tf_text(self) -> str:
        """TF Serving's series exactly as util/prometheus_exporter.cc writes them:
        a TYPE line per family, no HELP, counters without a "_total" suffix."""
        with self._lock:
            lines = [f"# TYPE {TF_REQUEST_COUNT} counter"]
            lines += [f"{TF_REQUEST_COUNT}{_labels(('model_name', 'status'), k)} {int(v)}"
                      for k, v in self._tf_count.items()]
            lines.append(f"# TYPE {TF_REQUEST_LATENCY} histogram")
            for k, h in self._tf_latency.items():
                names = ("model_name", "API", "entrypoint")
                for le, count in h.cumulative():
                    inner = _labels(names, k)[1:-1]
                    lines.append(f'{TF_REQUEST_LATENCY}_bucket{{{inner},le="{le}"}} {int(count)}')
                lines.append(f"{TF_REQUEST_LATENCY}_sum{_labels(names, k)} {h.total:g}")
                lines.append(f"{TF_REQUEST_LATENCY}_count{_labels(names, k)} {sum(h.counts)}")
            lines.append(f"# TYPE {TF_LOAD_ATTEMPTS} counter")
            lines += [f"{TF_LOAD_ATTEMPTS}{_labels(('model_path', 'status'), k)} {int(v)}"
                      for k, v in self._load_attempts.items()]
            lines.append(f"# TYPE {TF_LOAD_LATENCY} counter")
            lines += [f"{TF_LOAD_LATENCY}{_labels(('model_path',), k)} {int(v)}"
                      for k, v in self._load_latency.items()]
            lines += self._tf_batch_lines()
        return "\n".join(lines) + "\n"

    def _tf_batch_lines(self) -> list[str]:
        """batching_util.h's samplers; padding_size is labelled by execution size."""
        lines: list[str] = []
        for name in ("input_batch_size", "processed_batch_size", "padding_size"):
            series = {k[1]: h for k, h in self._tf_batch.items() if k[0] == name}
            if not series:
                continue
            metric = TF_BATCH_PREFIX + name
            lines.append(f"# TYPE {metric} histogram")
            for label, h in series.items():
                base = _labels(("execution_batch_size",), (label,))[1:-1] if label else ""
                sep = "," if base else ""
                for le, count in h.cumulative():
                    lines.append(f'{metric}_bucket{{{base}{sep}le="{le}"}} {int(count)}')
                plain = f"{{{base}}}" if base else ""
                lines.append(f"{metric}_sum{plain} {h.total:g}")
                lines.append(f"{metric}_count{plain} {sum(h.counts)}")
        return lines

    def render(self) -> bytes:
        return self.tf_text().encode() + generate_latest(self.registry)


def metrics_route(path: str, metrics: Metrics) -> Route:
    """GET `path` (TF Serving's default: /monitoring/prometheus/metrics)."""

    async def endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return Route(path, endpoint, methods=["GET"])


class LoadedVersions:
    """A manager listener that keeps `rollouts_loaded_versions{model}` current.

    Listeners run under the manager's lock, so this only updates a set per
    model from the state it is told about; it never calls back into the core.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._lock = threading.Lock()
        self._available: dict[str, set[int]] = defaultdict(set)

    def __call__(self, status: VersionStatus) -> None:
        with self._lock:
            versions = self._available[status.model]
            if status.state is VersionState.AVAILABLE:
                versions.add(status.version)
            else:
                versions.discard(status.version)
            self._metrics.set_loaded_versions(status.model, len(versions))


class _TimedLoader:
    def __init__(self, loader: Loader, path: str, metrics: Metrics,
                 clock: Callable[[], float]) -> None:
        self._loader = loader
        self._path = path
        self._metrics = metrics
        self._clock = clock

    def load(self) -> object:
        start = self._clock()
        try:
            servable = self._loader.load()
        except BaseException:
            self._metrics.observe_load(self._path, self._clock() - start, ok=False)
            raise
        self._metrics.observe_load(self._path, self._clock() - start, ok=True)
        return servable

    def unload(self) -> None:
        self._loader.unload()


def timed_loads(factory: Callable[[str], Loader], metrics: Metrics,
                clock: Callable[[], float] = time.perf_counter) -> Callable[[str], Loader]:
    """Wrap a platform's loader factory so every load attempt feeds TF's
    load_latency / load_attempt_count series, labelled with the version's
    path as TF Serving's model_path label is (the manager's state events do
    not carry the path, the loader does)."""

    def make(path: str) -> Loader:
        return _TimedLoader(factory(path), path, metrics, clock)

    return make
