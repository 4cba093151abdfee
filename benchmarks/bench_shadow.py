"""What shadow scoring costs the primary: p50, p99 and req/s at shadow 0.1 and 1.0
against shadow off, side by side in one run (issue 15).

One server (`python -m serving`) serves half_plus_two and the MLP 784-256-10,
each with two identical versions labelled `stable` (1) and `canary` (2) and a
split of weight 0 set through RolloutService: every user request is answered
by stable. The only thing that changes between windows is the split's shadow
rate (0, 0.1, 1.0): that share of stable's requests is also run on the canary
by the shadow scorer, off the response path, and the answers compared. The
load generator (benchmarks.loadgen, its own process: wrk for REST, grpc.aio /
threads for gRPC) measures what users see. The three rates run back to back
for each model, transport and concurrency (each round starting at another
rate), and the whole sweep is repeated `--rounds` times: a ratio to shadow off
is the median of each round's ratio to that round's own shadow-off window, so
the machine's drift lands on every rate alike. Per window the scorer's
outcomes are read from the server's metrics (compared, dropped when its
bounded queue was full).

Goal: the MLP's p99 at shadow 0.1 within 1.15x of shadow off.
Run: `python -m benchmarks.bench_shadow [--quick] [--seconds S] [--rounds N]`.
"""

from __future__ import annotations

import functools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.bench_predict import MODELS, ModelCase, measured
from benchmarks.common import Result, argument_parser, finish
from benchmarks.loadgen import LoadResult, have_wrk, run_loadgen

RATES = (0.0, 0.1, 1.0)
CONCURRENCIES = (1, 16)
TRANSPORTS = ("rest", "grpc")
GOAL_RATE = 0.1
GOAL_P99_RATIO = 1.15
GOAL_MODEL = "mlp"
TOLERANCE = 0.001
METRICS_PATH = "/monitoring/prometheus/metrics"
SHADOW_SERIES = "rollouts_shadow_comparisons_total"


@dataclass(frozen=True)
class Window:
    """One load window at one shadow rate: what users saw, what the scorer did."""

    load: LoadResult
    cpu_us: float | None
    outcomes: dict[str, float]

    @property
    def compared(self) -> float:
        return sum(v for k, v in self.outcomes.items() if k not in ("dropped", "error"))


def server_config(bases: Mapping[str, Path]) -> str:
    """Both models, versions 1 and 2 loaded, labelled stable and canary."""
    configs = []
    for name, base in bases.items():
        config = harness.model_config(name, base, [1, 2])
        config.version_labels["stable"] = 1
        config.version_labels["canary"] = 2
        configs.append(config)
    return harness.config_text(configs)


def set_shadow(server: Any, model: str, sample: float) -> None:
    """Weight 0 (every user on stable) with shadow rate `sample` (0: off)."""
    from serving.generated import rollouts_serving_pb2 as pb

    split = pb.Split(model_name=model, canary_weight_bp=0,
                     shadow=pb.Shadow(sample=sample, tolerance=TOLERANCE))
    server.rollout_stub().SetSplit(pb.SetSplitRequest(split=split), timeout=30)


def shadow_outcomes(metrics_text: str, model: str) -> dict[str, float]:
    """{outcome: count} of `model`'s shadow comparisons in Prometheus text."""
    counts: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if not line.startswith(SHADOW_SERIES + "{"):
            continue
        labels, _, value = line.rpartition(" ")
        if f'model="{model}"' not in labels:
            continue
        outcome = labels.split('outcome="', 1)[1].split('"', 1)[0]
        counts[outcome] = counts.get(outcome, 0.0) + float(value)
    return counts


def delta(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def scrape(server: Any, model: str) -> dict[str, float]:
    import httpx

    return shadow_outcomes(httpx.get(server.rest_url + METRICS_PATH, timeout=30).text, model)


def window(server: Any, case: ModelCase, transport: str, concurrency: int, rate: float,
           seconds: float) -> Window:
    set_shadow(server, case.name, rate)
    # The scorer's queue from the previous window drains first: a backlog of
    # shadow work must not colour this window's figures.
    if not harness.wait_for(lambda: _settled(server, case.name), 60, 0.2):
        raise RuntimeError(f"{case.name}: shadow work still running after 60 s")
    before = scrape(server, case.name)
    if transport == "rest":
        target, body, method = (f"{server.rest_url}/v1/models/{case.name}:predict",
                                harness.rest_body(case.features), "")
    else:
        target, body, method = (server.address,
                                harness.grpc_predict_body(case.name, case.features),
                                harness.PREDICT_METHOD)
    cpu: dict[str, float | None] = {}
    load = measured(server.proc.pid, "w", cpu,
                    lambda: run_loadgen(transport, target, body, concurrency, seconds,
                                        method=method))
    return Window(load, cpu["w"], delta(scrape(server, case.name), before))


def _both_available(server: Any, model: str) -> bool:
    states = harness.version_states(server, model)
    return states.get(1) == "AVAILABLE" and states.get(2) == "AVAILABLE"


def _settled(server: Any, model: str) -> bool:
    """No shadow outcome recorded for a moment: the scorer's queue is empty."""
    first = scrape(server, model)
    time.sleep(0.2)
    return scrape(server, model) == first


def median_window(windows: Sequence[Window]) -> Window:
    """The per-field median over rounds (p50, p99, req/s, CPU; outcomes summed)."""
    loads = [w.load for w in windows]
    first = loads[0]
    load = LoadResult(
        transport=first.transport, concurrency=first.concurrency,
        seconds=sum(r.seconds for r in loads), requests=sum(r.requests for r in loads),
        errors=sum(r.errors for r in loads),
        rps=statistics.median(r.rps for r in loads),
        p50_ms=statistics.median(r.p50_ms for r in loads),
        p99_ms=statistics.median(r.p99_ms for r in loads), tool=first.tool,
    )
    cpus = [w.cpu_us for w in windows if w.cpu_us is not None]
    outcomes: dict[str, float] = {}
    for w in windows:
        for k, v in w.outcomes.items():
            outcomes[k] = outcomes.get(k, 0.0) + v
    return Window(load, statistics.median(cpus) if cpus else None, outcomes)


Key = tuple[str, str, int]  # (model, transport, concurrency)


def sweep(server: Any, models: Sequence[ModelCase], transports: Sequence[str],
          concurrencies: Sequence[int], rounds: int, seconds: float
          ) -> dict[Key, dict[float, list[Window]]]:
    runs: dict[Key, dict[float, list[Window]]] = {}
    for index in range(rounds):
        # Each round starts at another rate, so drift within a point's three
        # windows does not always favour the same one.
        order = RATES[index % len(RATES):] + RATES[:index % len(RATES)]
        for case in models:
            for transport in transports:
                for c in concurrencies:
                    per_rate = runs.setdefault((case.name, transport, c), {})
                    for rate in order:
                        per_rate.setdefault(rate, []).append(
                            window(server, case, transport, c, rate, seconds))
            set_shadow(server, case.name, 0.0)
    return runs


def paired_ratio(windows: Sequence[Window], baseline: Sequence[Window], field: str
                 ) -> float | None:
    """The median over rounds of each round's `field` over the same round's
    baseline window: windows minutes apart never form a ratio, so the
    machine's drift between rounds cancels."""
    ratios = [harness.ratio(getattr(w.load, field), getattr(b.load, field))
              for w, b in zip(windows, baseline, strict=True)]
    found = [r for r in ratios if r is not None]
    return statistics.median(found) if found else None


def report(result: Result, runs: Mapping[Key, Mapping[float, Sequence[Window]]]) -> bool:
    names = {m.name: m.description for m in MODELS}
    table = result.table(
        "The primary's latency and throughput by shadow rate (medians over rounds; "
        "x off: the median of each round's ratio to that round's shadow-off window)",
        ["model", "transport", "concurrency", "shadow", "req/s", "p50 ms", "p99 ms",
         "p99 x off", "req/s x off", "server CPU us/req", "compared", "dropped", "errors"],
    )
    goals = result.table(
        f"Goal: {names.get(GOAL_MODEL, GOAL_MODEL)} p99 at shadow {GOAL_RATE:g} within "
        f"{GOAL_P99_RATIO:g}x of shadow off",
        ["transport", "concurrency", "p99 off ms", f"p99 {GOAL_RATE:g} ms", "ratio", "met"],
    )
    met = True
    for (model, transport, c), per_rate in runs.items():
        off = median_window(per_rate[0.0])
        for rate in RATES:
            w = median_window(per_rate[rate])
            p99_ratio = paired_ratio(per_rate[rate], per_rate[0.0], "p99_ms")
            table.add(names.get(model, model), transport, c, f"{rate:g}" if rate else "off",
                      round(w.load.rps, 1), w.load.p50_ms, w.load.p99_ms, p99_ratio,
                      paired_ratio(per_rate[rate], per_rate[0.0], "rps"),
                      None if w.cpu_us is None else round(w.cpu_us),
                      int(w.compared), int(w.outcomes.get("dropped", 0)), w.load.errors)
            if model == GOAL_MODEL and rate == GOAL_RATE:
                ok = p99_ratio is not None and p99_ratio <= GOAL_P99_RATIO
                met &= ok
                goals.add(transport, c, off.load.p99_ms, w.load.p99_ms, p99_ratio, ok)
    table.notes.append(
        "compared: shadow runs whose answers were compared (identical versions: all `same`); "
        "dropped: samples the scorer's bounded queue had no room for (never queued behind "
        "users). server CPU us/req: the serving process's CPU time per user request, shadow "
        "runs included.")
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="2 s windows, three rounds, instead of 3 s and five rounds")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--concurrency", type=int, nargs="*", default=list(CONCURRENCIES))
    parser.add_argument("--transports", nargs="*", default=list(TRANSPORTS), choices=TRANSPORTS)
    parser.add_argument("--models", nargs="*", default=[m.name for m in MODELS],
                        choices=[m.name for m in MODELS])
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    seconds = args.seconds or (2.0 if args.quick else 3.0)
    # Rounds, not longer windows: on a shared machine a burst of someone
    # else's work lands in one window; the median over rounds drops it.
    rounds = args.rounds or (3 if args.quick else 5)
    models = [m for m in MODELS if m.name in args.models]
    result = Result("shadow", "Shadow scoring's cost to the primary (issue 15)")
    result.params = {"seconds_per_window": seconds, "rounds": rounds,
                     "concurrency": args.concurrency, "rates": list(RATES),
                     "rest_loadgen": "wrk" if have_wrk() else "asyncio (wrk not installed)",
                     "grpc_loadgen": "grpc.aio / threads"}
    with tempfile.TemporaryDirectory(prefix="bench-shadow-") as tmp:
        work = Path(tmp)
        bases: dict[str, Path] = {}
        for case in models:
            base = work / case.name
            first = (harness.make_half_plus_two(base) if case.features == 0
                     else harness.make_mlp(base))
            shutil.copytree(first, base / "2")  # the canary: the same model, same answers
            bases[case.name] = base
        config = work / "models.config"
        config.write_text(server_config(bases))
        monitoring = work / "monitoring.config"
        monitoring.write_text(harness.MONITORING_CONFIG)
        flags = [f"--model_config_file={config}", f"--monitoring_config_file={monitoring}"]
        with harness.serving_process(flags, work / "server.log") as server:
            for case in models:
                if not harness.wait_for(functools.partial(_both_available, server, case.name),
                                        120, 0.2):
                    raise RuntimeError(f"{case.name}: versions 1 and 2 never both AVAILABLE")
            runs = sweep(server, models, args.transports, args.concurrency, rounds, seconds)
    met = report(result, runs)
    result.data["windows"] = {
        f"{m}/{t}/{c}": {f"{rate:g}": [{"load": asdict(w.load), "cpu_us": w.cpu_us,
                                        "outcomes": w.outcomes} for w in ws]
                         for rate, ws in per_rate.items()}
        for (m, t, c), per_rate in runs.items()}
    return finish(result, met)


if __name__ == "__main__":
    sys.exit(main())
