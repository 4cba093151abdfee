"""Version swaps under load: errors and p99 during 20 swaps vs steady state (issue 8, item 2).

One server per transition policy (`--version_transition_policy`), serving
half_plus_two with a specific-version policy. Load: REST (wrk) and gRPC
(grpc.aio), 4 clients each, from separate processes. First a steady window,
then the same load while 20 swaps are paced evenly over the window through
HandleReloadConfigRequest; each swap waits until only the new version is
AVAILABLE. Swap styles:

- one step {v} -> {v+1}: availability-preserving loads before it unloads (goal:
  0 errors); resource-preserving unloads first, and requests arriving in the
  gap wait for the new version (--max_wait_for_version_ms; goal: 0 errors);
- two steps {v} -> {v, v+1} -> {v+1}: how resource-preserving users swap
  without a gap (goal: 0 errors).

Run: `python -m benchmarks.bench_swaps [--quick] [--swaps N]`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.common import Result, argument_parser, finish
from benchmarks.loadgen import LoadProcess, LoadResult

MODEL = "hp2"
CLIENTS = 4
SWAP_WAIT_S = 60.0
CASES = (
    ("availability_preserving", "one step", 0),
    ("resource_preserving", "one step", 0),  # requests in the gap wait for v+1
    ("resource_preserving", "two steps", 0),
)


def start_load(server: Any, seconds: float, start_at: float | None = None
               ) -> tuple[LoadProcess, LoadProcess]:
    return (
        LoadProcess("rest", f"{server.rest_url}/v1/models/{MODEL}:predict",
                    harness.rest_body(0), CLIENTS, seconds, start_at=start_at),
        LoadProcess("grpc", server.address, harness.grpc_predict_body(MODEL, 0), CLIENTS,
                    seconds, method=harness.PREDICT_METHOD, start_at=start_at),
    )


def swap(server: Any, base: Path, old: int, new: int, two_steps: bool) -> float:
    """Move the model from `old` to `new`; seconds until only `new` is AVAILABLE."""
    start = time.perf_counter()
    if two_steps:
        harness.reload(server, [harness.model_config(MODEL, base, [old, new])])
        if not harness.wait_for(
                lambda: harness.version_states(server, MODEL).get(new) == "AVAILABLE",
                SWAP_WAIT_S, 0.01):
            raise RuntimeError(f"version {new} never became AVAILABLE")
    harness.reload(server, [harness.model_config(MODEL, base, [new])])
    if not harness.wait_for(
            lambda: harness.only_available(harness.version_states(server, MODEL), new),
            SWAP_WAIT_S, 0.01):
        raise RuntimeError(f"swap {old} -> {new} did not finish")
    return time.perf_counter() - start


def measure(work: Path, base: Path, policy: str, style: str, swaps: int, pace_s: float,
            steady_s: float) -> dict[str, Any]:
    config = work / f"{policy}-{style.replace(' ', '-')}.config"
    config.write_text(harness.config_text([harness.model_config(MODEL, base, [1])]))
    flags = [f"--model_config_file={config}", f"--version_transition_policy={policy}",
             "--file_system_poll_wait_seconds=0.2"]
    with harness.serving_process(flags, config.with_suffix(".log")) as server:
        steady = [p.result() for p in start_load(server, steady_s)]
        window = swaps * pace_s
        start_at = time.time() + harness.LOADGEN_STARTUP_S
        loads = start_load(server, window, start_at)
        time.sleep(max(0.0, start_at - time.time()))
        t0 = time.perf_counter()
        durations = []
        for i in range(swaps):
            # Pace swaps evenly over the load window, so the window is all swaps.
            slot = t0 + i * pace_s
            time.sleep(max(0.0, slot - time.perf_counter()))
            durations.append(swap(server, base, i + 1, i + 2, style == "two steps"))
        swapping_s = time.perf_counter() - t0
        during = [p.result() for p in loads]
    return {"steady": steady, "during": during, "swap_s": durations,
            "overran": swapping_s > window}


def add_rows(table: Any, policy: str, style: str, got: dict[str, Any],
             goal: int | None) -> bool:
    met = True
    for i, transport in enumerate(("rest", "grpc")):
        s: LoadResult = got["steady"][i]
        d: LoadResult = got["during"][i]
        ok = None if goal is None else d.errors <= goal and s.errors == 0
        met &= ok is not False
        table.add(policy, style, transport, d.requests, d.errors, s.p99_ms, d.p99_ms,
                  harness.ratio(d.p99_ms, s.p99_ms), max(got["swap_s"]),
                  "by design" if goal is None else ok)
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="0.5 s per swap instead of 1 s")
    parser.add_argument("--swaps", type=int, default=20)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    pace_s = 0.5 if args.quick else 1.0
    steady_s = 3.0 if args.quick else 5.0
    result = Result("swaps", "Version swaps under load (issue 8, item 2)")
    result.params = {"swaps": args.swaps, "seconds_per_swap": pace_s, "steady_seconds": steady_s,
                     "clients": f"{CLIENTS} REST (wrk) + {CLIENTS} gRPC"}
    table = result.table(
        f"{args.swaps} swaps of half_plus_two under load, per transition policy",
        ["policy", "swap", "transport", "requests during", "errors during", "steady p99 ms",
         "during p99 ms", "p99 ratio", "slowest swap s", "0 errors"],
    )
    table.notes.append("A one-step swap under resource-preserving unloads before it loads: "
                       "requests in the gap wait for the new version (TF Serving fails them).")
    met = True
    with tempfile.TemporaryDirectory(prefix="bench-swaps-") as tmp:
        work = Path(tmp)
        first = harness.make_half_plus_two(work / "template")
        for policy, style, goal in CASES:
            base = work / f"{policy}-{style.replace(' ', '-')}"
            for version in range(1, args.swaps + 2):
                shutil.copytree(first, base / str(version))
            got = measure(work, base, policy, style, args.swaps, pace_s, steady_s)
            met &= add_rows(table, policy, style, got, goal)
            if got["overran"]:
                table.notes.append(f"{policy} {style}: swaps outlasted the load window; "
                                   "the last ones ran without load.")
            result.data[f"{policy}/{style}"] = {
                "swap_s": got["swap_s"],
                "steady": [vars(r) for r in got["steady"]],
                "during": [vars(r) for r in got["during"]],
            }
    return finish(result, met)


if __name__ == "__main__":
    sys.exit(main())
