"""The controller's own metrics, served as Prometheus text on `GET /metrics`.

A registry of its own (never prometheus-client's global one, so nothing else in the
process leaks into the scrape and two controllers in one test process do not clash).
Timings are recorded where they happen (`TimedTarget`, `reconciled`, `git_seen`);
what is state (the applied commit, each canary's phase and weight, the verdict and
write-back failure counts) is read from the controller at scrape time by a collector,
so it can never drift from what `GET /status` says.

Series (all prefixed ``rollouts_controller_``)::

    reconcile_duration_seconds{}                  histogram  one reconcile pass
    target_call_duration_seconds{target,call}     histogram  observe / apply on a target
    reconcile_results_total{target,result}        counter    in_sync|changed|pending|
                                                             unreachable|failed per pass
    git_fetch_lag_seconds{}                       histogram  new head's commit time -> seen
    git_last_seen_timestamp_seconds{}             gauge      when the last new head was seen
    applied_commit_info{model,commit}             gauge 1    commit applied on every target
    canary_phase{model,phase}                     gauge 1    the canary's current phase
    canary_weight_ratio{model}                    gauge      share of users on the canary
    verdicts_total{kind}                          counter    promote|fail commits written
    write_back_failures_total{kind}               counter    verdict commits not written
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.decide.fleet import DesiredModel, ObservedTarget
from controller.decide.plan import Action
from controller.runtime.reconcile import ReconcileResult, Target

PREFIX = "rollouts_controller_"
_PASS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_LAG_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)


@dataclass(frozen=True)
class CanaryView:
    phase: str
    weight_bp: int


@dataclass(frozen=True)
class StateView:
    """What the collector reads from the controller at scrape time."""

    model_commits: Mapping[str, str] = field(default_factory=dict)
    canaries: Mapping[str, CanaryView] = field(default_factory=dict)
    verdicts: Mapping[str, int] = field(default_factory=dict)
    write_failures: Mapping[str, int] = field(default_factory=dict)


def target_results(result: ReconcileResult) -> dict[str, str]:
    """Per target, how this pass ended for it (pure)."""
    applied = {a.target for a in result.applied}
    remaining = {a.target for a in result.plan.actions}
    out: dict[str, str] = {}
    for target in result.observed:
        name = target.name
        if not target.reachable:
            out[name] = "unreachable"
        elif any(error.startswith(f"{name}:") for error in result.errors):
            out[name] = "failed"
        elif name in remaining:
            out[name] = "pending"
        elif name in applied:
            out[name] = "changed"
        else:
            out[name] = "in_sync"
    return out


class _StateCollector(Collector):
    def __init__(self, read: Callable[[], StateView]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        view = self._read()
        commits = GaugeMetricFamily(
            f"{PREFIX}applied_commit_info",
            "The commit whose spec of the model is applied on every target (value 1).",
            labels=["model", "commit"],
        )
        for model, commit in sorted(view.model_commits.items()):
            commits.add_metric([model, commit], 1)
        yield commits
        phase = GaugeMetricFamily(
            f"{PREFIX}canary_phase",
            "The model's canary is in this phase (value 1; absent: no canary).",
            labels=["model", "phase"],
        )
        weight = GaugeMetricFamily(
            f"{PREFIX}canary_weight_ratio",
            "Share of users the canary is meant to get now (0-1).",
            labels=["model"],
        )
        for model, canary in sorted(view.canaries.items()):
            phase.add_metric([model, canary.phase], 1)
            weight.add_metric([model], canary.weight_bp / 10000)
        yield phase
        yield weight
        for name, doc, counts in (
            ("verdicts", "Verdict commits written or proposed, by kind.", view.verdicts),
            ("write_back_failures", "Verdict commits that could not be written, by kind.",
             view.write_failures),
        ):
            family = CounterMetricFamily(f"{PREFIX}{name}", doc, labels=["kind"])
            for kind in ("promote", "fail"):
                family.add_metric([kind], counts.get(kind, 0))
            yield family


class ControllerMetrics:
    """The registry and the recorders; `render()` is the /metrics body."""

    def __init__(self, read_state: Callable[[], StateView] = StateView) -> None:
        # No auto_describe: the state collector is read only when scraped, not at register.
        self.registry = CollectorRegistry()
        self.pass_duration = Histogram(
            f"{PREFIX}reconcile_duration_seconds", "One reconcile pass, observe to in sync.",
            registry=self.registry, buckets=_PASS_BUCKETS,
        )
        self.target_calls = Histogram(
            f"{PREFIX}target_call_duration_seconds", "One observe or apply call on a target.",
            ["target", "call"], registry=self.registry, buckets=_PASS_BUCKETS,
        )
        self.results = Counter(
            f"{PREFIX}reconcile_results", "Reconcile passes by how they ended per target.",
            ["target", "result"], registry=self.registry,
        )
        self.fetch_lag = Histogram(
            f"{PREFIX}git_fetch_lag_seconds",
            "From a new head's commit time to the controller seeing it.",
            registry=self.registry, buckets=_LAG_BUCKETS,
        )
        self.last_seen = Gauge(
            f"{PREFIX}git_last_seen_timestamp_seconds", "When the last new head was seen.",
            registry=self.registry,
        )
        self.registry.register(_StateCollector(read_state))

    def reconciled(self, result: ReconcileResult, duration_s: float) -> None:
        self.pass_duration.observe(duration_s)
        for target, outcome in target_results(result).items():
            self.results.labels(target, outcome).inc()

    def git_seen(self, committed_at: float, now: float) -> None:
        """A new head was seen at `now`; `committed_at` is its committer time. Clocks
        differ between machines, so a negative lag is recorded as 0."""
        self.fetch_lag.observe(max(0.0, now - committed_at))
        self.last_seen.set(now)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class TimedTarget:
    """A reconcile `Target` whose observe and apply calls are timed per target."""

    def __init__(self, inner: Target, metrics: ControllerMetrics) -> None:
        self.inner = inner
        self._observe = metrics.target_calls.labels(inner.name, "observe")
        self._apply = metrics.target_calls.labels(inner.name, "apply")

    @property
    def name(self) -> str:
        return self.inner.name

    def observe(self, desired: Mapping[str, DesiredModel]) -> ObservedTarget:
        start = time.monotonic()
        try:
            return self.inner.observe(desired)
        finally:
            self._observe.observe(time.monotonic() - start)

    def apply(self, action: Action) -> None:
        start = time.monotonic()
        try:
            self.inner.apply(action)
        finally:
            self._apply.observe(time.monotonic() - start)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()
