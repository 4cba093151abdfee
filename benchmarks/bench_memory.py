"""Peak memory during a swap of a ~200 MB model, per transition policy (issue 8, item 6).

One server per policy serves an MLP whose weights take about 200 MB
(`--megabytes`), version 1 pinned. RSS of the server process is sampled from
/proc every 10 ms: idle (no model), steady with version 1, then through a
one-step swap to version 2 (HandleReloadConfigRequest) until only version 2 is
AVAILABLE. "One model" is steady minus idle; the goal compares the peak's
growth over idle with it: resource-preserving peak <= 1.2x one model, while
availability-preserving holds two models for a moment by design.

Run: `python -m benchmarks.bench_memory [--quick] [--megabytes MB]`.
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

MODEL = "big"
GOAL_RATIO = 1.2
WAIT_S = 300.0
POLICIES = ("resource_preserving", "availability_preserving")


def settle(pid: int, seconds: float = 1.0) -> float:
    """RSS after a short pause (the allocator returns freed pages lazily)."""
    time.sleep(seconds)
    return harness.rss_mb(pid)


def measure(work: Path, base: Path, policy: str) -> dict[str, Any]:
    config = work / f"{policy}.config"
    config.write_text("model_config_list {}\n")
    flags = [f"--model_config_file={config}", f"--version_transition_policy={policy}"]
    with harness.serving_process(flags, work / f"{policy}.log") as server:
        pid = server.proc.pid
        idle = settle(pid)
        harness.reload(server, [harness.model_config(MODEL, base, [1])], timeout=WAIT_S)
        if not harness.wait_for(
                lambda: harness.only_available(harness.version_states(server, MODEL), 1),
                WAIT_S, 0.05):
            raise RuntimeError("version 1 never became AVAILABLE")
        steady = settle(pid)
        start = time.perf_counter()
        with harness.RssSampler(pid) as sampler:
            harness.reload(server, [harness.model_config(MODEL, base, [2])], timeout=WAIT_S)
            if not harness.wait_for(
                    lambda: harness.only_available(harness.version_states(server, MODEL), 2),
                    WAIT_S, 0.02):
                raise RuntimeError("the swap to version 2 did not finish")
            swap_s = time.perf_counter() - start
            time.sleep(0.5)  # the old version's memory is released after END
        after = harness.rss_mb(pid)
    return {"idle": idle, "steady": steady, "peak": max(sampler.peak_mb, steady), "after": after,
            "swap_s": swap_s, "samples": sampler.samples[::10]}


def growth_ratio(idle: float, steady: float, peak: float) -> float | None:
    """(peak - idle) / (steady - idle): the swap's peak in units of one loaded model."""
    return harness.ratio(peak - idle, steady - idle)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="a 100 MB model instead of 200 MB")
    parser.add_argument("--megabytes", type=float, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    megabytes = args.megabytes or (100.0 if args.quick else 200.0)
    result = Result("memory", "Peak RSS during a swap of a large model (issue 8, item 6)")
    table = result.table(
        "Server RSS (MB) through a one-step swap v1 -> v2",
        ["policy", "idle", "steady (v1)", "peak", "after (v2)", "one model", "peak / one model",
         "swap s", "goal", "met"],
    )
    met = True
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        base = work / MODEL
        first = harness.make_mlp(base, 1, hidden=harness.hidden_for_megabytes(megabytes))
        shutil.copytree(first, base / "2")
        size = harness.dir_megabytes(first)
        result.params = {"model_MB_on_disk": round(size, 1)}
        for policy in POLICIES:
            got = measure(work, base, policy)
            r = growth_ratio(got["idle"], got["steady"], got["peak"])
            goal = GOAL_RATIO if policy == "resource_preserving" else None
            ok = None if goal is None else (r is not None and r <= goal)
            met &= ok is not False
            table.add(policy, got["idle"], got["steady"], got["peak"], got["after"],
                      got["steady"] - got["idle"], r, got["swap_s"],
                      f"<= {goal:g}x" if goal else "~2x by design",
                      "n/a" if ok is None else ok)
            result.data[policy] = got
    table.notes.append("one model = steady - idle; peak / one model = (peak - idle) / one model.")
    return finish(result, met)


if __name__ == "__main__":
    sys.exit(main())
