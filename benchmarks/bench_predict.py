"""Predict throughput and latency, side by side (issue 8, item 1).

One run, same machine, same load generator (benchmarks.loadgen, a separate
process: wrk for REST, a grpc.aio client for gRPC), concurrency 1, 16 and 64:

- in-process: the signature's concrete function called in a loop by N threads
  of this process (no server, no wire): the limit a server can approach;
  and `in-session`, one thread calling the same SavedModel through the
  Session callable the server itself uses (serving/loaders/session_servable):
  what the model call costs the server;
- this server (`python -m serving`) with its default flags (opportunistic
  batching on), REST and gRPC; again with `--opportunistic_batching=false`
  (`unbatched`: today's path before issue 18), and with `--enable_batching`
  (TF Serving's timed batching);
- the transport floors (`benchmarks/floors.py`): grpcio and uvicorn answering
  fixed bytes, no model; with the in-process call they bound what any server
  on these stacks can reach;
- KServe's Python ModelServer serving the same SavedModel (its own venv; the
  column is skipped with a note when the venv is missing): V1 REST through the
  shared peer script, and V2 gRPC `ModelInfer` through our wrapper of it
  (`benchmarks/peers/kserve_grpc_peer.py`). REST is compared with KServe REST,
  gRPC with KServe gRPC.

Models: half_plus_two (one float in) and an MLP 784-256-10 (one 784-vector in).
Goals: REST >= 3x KServe at c=16; batching at c=64 above the in-process
single-call loop; REST p50 at c=1 <= 0.8 ms. Issue 18, default flags: gRPC
>= 3x KServe gRPC at c=16; gRPC p50 at c=1 <= the grpcio floor's p50 + the
in-process call's p50 + 0.3 ms (what this server's own code may add on the
wire, same run); c=64 >= 1.5x the in-process single-call loop on
half_plus_two and >= 1x on the MLP; c=1 p50 no worse than unbatched.
Run: `python -m benchmarks.bench_predict [--quick] [--seconds S]
[--transports rest grpc] [--variants server unbatched batching]`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.common import Result, Table, argument_parser, finish
from benchmarks.loadgen import LoadResult, have_wrk, run_loadgen, summarize_latencies

CONCURRENCIES = (1, 16, 64)
REST_VS_KSERVE_GOAL = 3.0
GRPC_VS_KSERVE_GOAL = 3.0
REST_P50_GOAL_MS = 0.8
# Issue 18: gRPC p50 at c=1 over the grpcio floor's plus the in-process call's.
GRPC_P50_OVER_FLOOR_MS = 0.3
# Default flags' c=1 p50 over --opportunistic_batching=false's, same run: "no
# worse" up to this much run-to-run noise on a shared machine.
P50_NOISE = 1.1
VARIANTS = ("server", "unbatched", "batching")
TRANSPORTS = ("rest", "grpc")
BATCHING_PARAMETERS = """\
max_batch_size { value: 64 }
batch_timeout_micros { value: 500 }
num_batch_threads { value: 2 }
max_enqueued_batches { value: 1000 }
"""


@dataclass(frozen=True)
class ModelCase:
    name: str
    features: int  # 0: a scalar instance (half_plus_two)
    description: str
    c64_goal: float  # default flags' c=64 req/s over the in-process c=1 loop's


MODELS = (
    ModelCase("hp2", 0, "half_plus_two", 1.5),
    ModelCase("mlp", 784, "MLP 784-256-10", 1.0),
)


def batching_supported() -> bool:
    """True once the server has --enable_batching (serving/batching.py landed)."""
    from serving.config.flags import ServerFlags

    fields = getattr(ServerFlags, "__dataclass_fields__", {})
    return "enable_batching" in fields and (harness.REPO / "serving" / "batching.py").exists()


def model_config(models: dict[str, Path]) -> str:
    """A ModelServerConfig text serving every model from its base path."""
    entries = "".join(
        f'  config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" }}\n'
        for name, base in models.items()
    )
    return f"model_config_list {{\n{entries}}}\n"


def in_session(export_dir: Path, features: int, seconds: float,
               cpu_us: dict[str, float | None]) -> LoadResult:
    """One thread calling the SavedModel's Session callable, as the server does."""
    import numpy as np

    from serving.loaders.tensorflow_loader import load_servable

    servable = load_servable(str(export_dir))
    x = {"x": np.asarray(harness.instances(features), dtype=np.float32)}
    servable.run("serving_default", x)  # warm outside the timed window
    latencies: list[float] = []
    start, cpu = time.perf_counter(), time.process_time()
    end = start + seconds
    while (t0 := time.perf_counter()) < end:
        servable.run("serving_default", x)
        latencies.append(time.perf_counter() - t0)
    cpu_us["in-session/-/1"] = per_request_us(time.process_time() - cpu, len(latencies))
    servable.close()
    return summarize_latencies("in-session", 1, time.perf_counter() - start, latencies, 0,
                               "session callable loop")


def per_request_us(cpu_s: float, requests: int) -> float | None:
    """CPU microseconds per request: steadier than req/s on a shared, noisy machine."""
    return cpu_s / requests * 1e6 if requests else None


def in_process(export_dir: Path, features: int, concurrency: int, seconds: float,
               cpu_us: dict[str, float | None]) -> LoadResult:
    """N threads calling the loaded signature directly, each one call at a time."""
    import numpy as np
    import tensorflow as tf

    fn = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    x = tf.constant(np.asarray(harness.instances(features), dtype=np.float32))
    fn(x=x)  # trace and warm outside the timed window
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    end = time.perf_counter() + seconds

    def loop(mine: list[float]) -> None:
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                return
            fn(x=x)["y"].numpy()
            mine.append(time.perf_counter() - t0)

    start, cpu = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=loop, args=(lat,)) for lat in latencies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    flat = [v for lat in latencies for v in lat]
    cpu_us[f"in-process/-/{concurrency}"] = per_request_us(time.process_time() - cpu, len(flat))
    return summarize_latencies("in-process", concurrency, time.perf_counter() - start, flat, 0,
                               "signature loop")


def measured(pid: int, key: str, cpu_us: dict[str, float | None],
             run: Callable[[], LoadResult]) -> LoadResult:
    """run() while counting the serving process's CPU time, kept per request."""
    before = harness.cpu_seconds(pid)
    result = run()
    cpu_us[key] = per_request_us(harness.cpu_seconds(pid) - before, result.requests)
    return result


def drive(server: Any, variant: str, case: ModelCase, concurrency: int, seconds: float,
          rows: dict[str, LoadResult], cpu_us: dict[str, float | None],
          transports: Sequence[str] = TRANSPORTS) -> None:
    url = f"{server.rest_url}/v1/models/{case.name}:predict"
    rest, grpc_body = harness.rest_body(case.features), harness.grpc_predict_body(case.name,
                                                                                 case.features)
    pid = server.proc.pid
    if "rest" in transports:
        key = f"{variant}/rest/{concurrency}"
        rows[key] = measured(pid, key, cpu_us,
                             lambda: run_loadgen("rest", url, rest, concurrency, seconds))
    if "grpc" in transports:
        key = f"{variant}/grpc/{concurrency}"
        rows[key] = measured(pid, key, cpu_us,
                             lambda: run_loadgen("grpc", server.address, grpc_body, concurrency,
                                                 seconds, method=harness.PREDICT_METHOD))


Goal = tuple[str, float | None, str, bool | None]


def grpc_p50_bound(floor_ms: float | None, in_process_ms: float | None) -> float | None:
    """Issue 18's gRPC c=1 p50 bound: p50(floor/grpc/1) + p50(in-process/-/1)
    + 0.3 ms, from the same run (None when either was not measured)."""
    if floor_ms is None or in_process_ms is None:
        return None
    return floor_ms + in_process_ms + GRPC_P50_OVER_FLOOR_MS


def goals(rows: dict[str, LoadResult], kserve_ok: bool, c64_goal: float = 1.5) -> list[Goal]:
    """(goal, measured, target, met) for one model's rows keyed `<target>/<transport>/<c>`."""
    def rps(key: str) -> float | None:
        r = rows.get(key)
        return r.rps if r is not None else None

    def p50(key: str) -> float | None:
        r = rows.get(key)
        return r.p50_ms if r is not None else None

    out: list[Goal] = []
    for variant in ("server", "batching"):
        for transport, goal in (("rest", REST_VS_KSERVE_GOAL), ("grpc", GRPC_VS_KSERVE_GOAL)):
            kserve = rps(f"kserve/{transport}/16") if kserve_ok else None
            value = harness.ratio(rps(f"{variant}/{transport}/16"), kserve)
            how = "" if variant == "server" else " with batching"
            out.append((f"{transport} c=16 throughput{how} / KServe {transport} c=16", value,
                        f">= {goal:g}x", None if value is None else value >= goal))
    limit = rps("in-process/-/1")
    for transport in ("rest", "grpc"):
        value = harness.ratio(rps(f"batching/{transport}/64"), limit)
        out.append((f"batching {transport} c=64 / in-process c=1", value, "> 1x",
                    None if value is None else value > 1.0))
    value = p50("server/rest/1")
    out.append(("rest p50 at c=1 (ms)", value, f"<= {REST_P50_GOAL_MS:g}",
                None if value is None else value <= REST_P50_GOAL_MS))
    value = p50("server/grpc/1")
    bound = grpc_p50_bound(p50("floor/grpc/1"), p50("in-process/-/1"))
    out.append(("grpc p50 at c=1 (ms)", value,
                f"<= floor + in-process + {GRPC_P50_OVER_FLOOR_MS:g}"
                + (f" = {bound:.3f}" if bound is not None else ""),
                None if value is None or bound is None else value <= bound))
    # Issue 18: opportunistic batching (the default) against the unbatched path.
    for transport in TRANSPORTS:
        value = harness.ratio(rps(f"server/{transport}/64"), limit)
        out.append((f"{transport} c=64 default flags / in-process c=1", value,
                    f">= {c64_goal:g}x", None if value is None else value >= c64_goal))
        value = harness.ratio(p50(f"server/{transport}/1"), p50(f"unbatched/{transport}/1"))
        out.append((f"{transport} p50 at c=1, default / --opportunistic_batching=false", value,
                    f"<= {P50_NOISE:g}x (noise)", None if value is None else value <= P50_NOISE))
    return out


def run(result: Result, seconds: float, concurrencies: Sequence[int], use_kserve: bool,
        use_batching: bool, work: Path, models: Sequence[ModelCase] = MODELS,
        transports: Sequence[str] = TRANSPORTS, variants: Sequence[str] = VARIANTS) -> bool:
    bases: dict[str, Path] = {}
    exports: dict[str, Path] = {}
    for case in models:
        base = work / case.name
        exports[case.name] = (harness.make_half_plus_two(base) if case.features == 0
                              else harness.make_mlp(base))
        bases[case.name] = base
    config = work / "models.config"
    config.write_text(model_config(bases))
    rows: dict[str, dict[str, LoadResult]] = {c.name: {} for c in models}
    cpu: dict[str, dict[str, float | None]] = {c.name: {} for c in models}

    for case in models:
        for c in concurrencies:
            rows[case.name][f"in-process/-/{c}"] = in_process(exports[case.name], case.features,
                                                              c, seconds, cpu[case.name])
        rows[case.name]["in-session/-/1"] = in_session(exports[case.name], case.features,
                                                       seconds, cpu[case.name])
    servers: list[tuple[str, list[str]]] = [("server", []),
                                            ("unbatched", ["--opportunistic_batching=false"])]
    if use_batching:
        params = work / "batching.config"
        params.write_text(BATCHING_PARAMETERS)
        servers.append(("batching", ["--enable_batching",
                                     f"--batching_parameters_file={params}"]))
    started = [(v, extra) for v, extra in servers if v in variants]
    handles = {}
    with contextlib.ExitStack() as stack:
        # Every server is up at once and the points alternate between them, so
        # the default and the unbatched path meet the same machine load.
        for variant, extra in started:
            flags = [f"--model_config_file={config}", *extra]
            handles[variant] = stack.enter_context(
                harness.serving_process(flags, work / f"{variant}.log"))
        for case in models:
            for c in concurrencies:
                for variant, _ in started:
                    drive(handles[variant], variant, case, c, seconds, rows[case.name],
                          cpu[case.name], transports)
    with harness.floor_servers(work) as floor:
        for case in models:
            for c in concurrencies:
                for transport, target, body, pid in (
                        ("rest", f"{floor.rest_url}/v1/models/{case.name}:predict",
                         harness.rest_body(case.features), floor.rest_pid),
                        ("grpc", floor.grpc_address,
                         harness.grpc_predict_body(case.name, case.features), floor.grpc_pid)):
                    if transport not in transports:
                        continue
                    key = f"floor/{transport}/{c}"
                    rows[case.name][key] = measured(
                        pid, key, cpu[case.name],
                        functools.partial(run_loadgen, transport, target, body, c, seconds,
                                          method=harness.PREDICT_METHOD))
    if use_kserve:
        for case in models:
            with harness.kserve_peer(case.name, exports[case.name],
                                     work / f"kserve-{case.name}.log") as peer:
                url, body = f"{peer.url}/v1/models/{case.name}:predict", harness.rest_body(
                    case.features)
                infer = harness.kserve_infer_body(case.name, case.features)
                for c in concurrencies:
                    key = f"kserve/rest/{c}"
                    rows[case.name][key] = measured(
                        peer.pid, key, cpu[case.name],
                        functools.partial(run_loadgen, "rest", url, body, c, seconds))
                    key = f"kserve/grpc/{c}"
                    rows[case.name][key] = measured(
                        peer.pid, key, cpu[case.name],
                        functools.partial(run_loadgen, "grpc", peer.grpc_address, infer, c,
                                          seconds, method=harness.KSERVE_INFER_METHOD))

    met = True
    for case in models:
        met &= report(result, case, rows[case.name], cpu[case.name], use_kserve)
    result.data["runs"] = {m: {k: asdict(v) for k, v in r.items()} for m, r in rows.items()}
    result.data["server_cpu_us_per_request"] = cpu
    return met


def report(result: Result, case: ModelCase, rows: dict[str, LoadResult],
           cpu_us: dict[str, float | None], kserve_ok: bool) -> bool:
    table = result.table(
        f"{case.description}: throughput and latency",
        ["target", "transport", "concurrency", "req/s", "p50 ms", "p99 ms", "errors",
         "x KServe (same transport)", "server CPU us/req"],
    )
    for key, r in rows.items():
        target, transport, c = key.split("/")
        same = "rest" if transport == "-" else transport  # in-process: against KServe REST
        kserve = rows.get(f"kserve/{same}/{c}") if kserve_ok else None
        usage = cpu_us.get(key)
        table.add(target, transport, int(c), round(r.rps, 1), r.p50_ms, r.p99_ms, r.errors,
                  harness.ratio(r.rps, kserve.rps if kserve else None),
                  round(usage) if usage is not None else None)
    table.notes.append("server CPU us/req: CPU time of the serving process (all threads; for "
                       "in-process, this process) over the run, per successful request.")
    result.tables.append(bounds(case, cpu_us, kserve_ok))
    goal_table = Table(f"{case.description}: goals", ["goal", "measured", "target", "met"])
    met = True
    for name, value, target, ok in goals(rows, kserve_ok, case.c64_goal):
        goal_table.add(name, value, target, "n/a" if ok is None else ok)
        met &= ok is not False
    result.tables.append(goal_table)
    return met


def bounds(case: ModelCase, cpu_us: Mapping[str, float | None], kserve_ok: bool) -> Table:
    """The best ratio to KServe any server on these stacks could reach at c=16.

    On 2 cores shared with the load generator every server is CPU-bound, so
    throughput follows CPU per request. A server with no code of its own
    would still pay the transport floor (benchmarks.floors: grpcio or uvicorn
    answering fixed bytes) plus the TensorFlow call as the server makes it
    (the Session callable, `in-session`). KServe's CPU per request over that
    sum bounds the ratio."""
    table = Table(f"{case.description}: what bounds the KServe ratios (c=16, CPU us/request)",
                  ["transport", "transport floor", "TF call in-session", "floor + TF call",
                   "this server", "KServe", "best possible x KServe", "this server x KServe"])
    tf_call = cpu_us.get("in-session/-/1")
    for transport in ("rest", "grpc"):
        floor, ours = cpu_us.get(f"floor/{transport}/16"), cpu_us.get(f"server/{transport}/16")
        kserve = cpu_us.get(f"kserve/{transport}/16") if kserve_ok else None
        least = floor + tf_call if floor is not None and tf_call is not None else None
        table.add(transport, _round(floor), _round(tf_call), _round(least), _round(ours),
                  _round(kserve), harness.ratio(kserve, least), harness.ratio(kserve, ours))
    table.notes.append("best possible x KServe = KServe / (floor + TF call): what a server "
                       "whose own code cost nothing would reach, by CPU per request.")
    return table


def _round(value: float | None) -> int | None:
    return None if value is None else round(value)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s per point instead of 5 s")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--concurrency", type=int, nargs="*", default=list(CONCURRENCIES))
    parser.add_argument("--no-kserve", action="store_true")
    parser.add_argument("--no-batching", action="store_true")
    parser.add_argument("--models", nargs="*", default=[m.name for m in MODELS],
                        choices=[m.name for m in MODELS])
    parser.add_argument("--transports", nargs="*", default=list(TRANSPORTS), choices=TRANSPORTS)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS,
                        help="server: default flags; unbatched: --opportunistic_batching=false;"
                             " batching: --enable_batching")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    use_kserve = not args.no_kserve and harness.kserve_python() is not None
    use_batching = not args.no_batching and batching_supported()
    result = Result("predict", "Predict throughput and latency (issue 8, item 1)")
    result.params = {"seconds_per_point": seconds, "concurrency": args.concurrency,
                     "rest_loadgen": "wrk" if have_wrk() else "asyncio (wrk not installed)",
                     "grpc_loadgen": "grpc.aio", "batching": use_batching,
                     "kserve": use_kserve, "transports": args.transports,
                     "variants": args.variants}
    if not use_kserve:
        result.notes.append(f"KServe column skipped: no KServe venv. Create it with: "
                            f"{harness.KSERVE_HOWTO}.")
    if not use_batching:
        result.notes.append("Batching rows skipped: the server has no --enable_batching yet "
                            "(or --no-batching was given).")
    result.notes.append("KServe: V1 REST (`:predict`, JSON) and V2 gRPC (`ModelInfer`, FP32 "
                        "contents); each of our transports is compared with KServe's same "
                        "transport at the same concurrency (in-process with KServe REST).")
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        models = [m for m in MODELS if m.name in args.models]
        met = run(result, seconds, args.concurrency, use_kserve, use_batching, Path(tmp), models,
                  args.transports, args.variants)
    return finish(result, met)


if __name__ == "__main__":
    sys.exit(main())
