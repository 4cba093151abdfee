"""Load isolation: model A's p99 while a large model B loads (issue 8, item 3).

TF Serving #1866: loading a big model starves the requests of models already
serving. One server serves half_plus_two as A; B is an MLP whose weights take
about 200 MB (`--megabytes`). Load on A: REST (wrk) and gRPC (grpc.aio), 4
clients each, from separate processes; first a steady window, then the same
window while B is loaded and unloaded again and again through
HandleReloadConfigRequest, so the whole window is B's load or unload.
Goal: A's p99 during <= 1.5x steady.

Run: `python -m benchmarks.bench_isolation [--quick] [--megabytes MB]`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.common import Result, argument_parser, finish, summarize
from benchmarks.loadgen import LoadProcess

A, B = "hp2", "big"
CLIENTS = 4
GOAL_RATIO = 1.5
WAIT_S = 300.0


def start_load(server: Any, seconds: float, start_at: float) -> list[LoadProcess]:
    return [
        LoadProcess("rest", f"{server.rest_url}/v1/models/{A}:predict", harness.rest_body(0),
                    CLIENTS, seconds, start_at=start_at),
        LoadProcess("grpc", server.address, harness.grpc_predict_body(A, 0), CLIENTS, seconds,
                    method=harness.PREDICT_METHOD, start_at=start_at),
    ]


def cycle_b(server: Any, a: Any, b: Any, until: float) -> list[float]:
    """Load and unload B until `until` (perf_counter); returns each load's seconds."""
    loads = []
    while time.perf_counter() < until:
        start = time.perf_counter()
        harness.reload(server, [a, b], timeout=WAIT_S)
        if not harness.wait_for(lambda: harness.version_states(server, B).get(1) == "AVAILABLE",
                                  WAIT_S, 0.02):
            raise RuntimeError("model B never became AVAILABLE")
        loads.append(time.perf_counter() - start)
        harness.reload(server, [a], timeout=WAIT_S)
        if not harness.wait_for(lambda: harness.version_states(server, B).get(1) != "AVAILABLE",
                                  WAIT_S, 0.02):
            raise RuntimeError("model B was never unloaded")
    return loads


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter windows, 100 MB model")
    parser.add_argument("--megabytes", type=float, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    megabytes = args.megabytes or (100.0 if args.quick else 200.0)
    seconds = args.seconds or (5.0 if args.quick else 10.0)
    result = Result("isolation", "Load isolation: model A while model B loads (issue 8, item 3)")
    met = True
    with tempfile.TemporaryDirectory(prefix="bench-isolation-") as tmp:
        work = Path(tmp)
        harness.make_half_plus_two(work / A)
        hidden = harness.hidden_for_megabytes(megabytes)
        harness.make_mlp(work / B, hidden=hidden)
        size = harness.dir_megabytes(work / B / "1")
        a = harness.model_config(A, work / A)
        b = harness.model_config(B, work / B)
        config = work / "models.config"
        config.write_text(harness.config_text([a]))
        with harness.serving_process([f"--model_config_file={config}"], work / "server.log"
                                     ) as server:
            start_at = time.time() + harness.LOADGEN_STARTUP_S
            steady = [p.result() for p in start_load(server, seconds, start_at)]
            start_at = time.time() + harness.LOADGEN_STARTUP_S
            loads = start_load(server, seconds, start_at)
            time.sleep(max(0.0, start_at - time.time()))
            b_loads = cycle_b(server, a, b, time.perf_counter() + seconds)
            during = [p.result() for p in loads]
    result.params = {"model_B_MB_on_disk": round(size, 1), "B_hidden_units": hidden,
                     "window_seconds": seconds, "clients": f"{CLIENTS} REST + {CLIENTS} gRPC"}
    table = result.table(
        f"p99 of model A (half_plus_two) while B ({size:.0f} MB MLP) loads",
        ["transport", "steady req/s", "steady p99 ms", "during req/s", "during p99 ms",
         "errors during", "p99 ratio", "goal", "met"],
    )
    for s, d in zip(steady, during, strict=True):
        r = harness.ratio(d.p99_ms, s.p99_ms)
        ok = r is not None and r <= GOAL_RATIO and d.errors == 0
        met &= ok
        table.add(s.transport, round(s.rps, 1), s.p99_ms, round(d.rps, 1), d.p99_ms, d.errors,
                  r, f"<= {GOAL_RATIO:g}x", ok)
    stats = summarize(b_loads) if b_loads else None
    table.notes.append(
        f"B loaded {len(b_loads)} times in the window"
        + (f" (load p50 {stats['p50']:.2f} s, max {stats['max']:.2f} s)." if stats else ".")
    )
    result.data = {"steady": [vars(r) for r in steady], "during": [vars(r) for r in during],
                   "b_load_s": b_loads}
    return finish(result, met)


if __name__ == "__main__":
    sys.exit(main())
