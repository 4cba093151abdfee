"""Benchmark `rollouts validate` on 1,000 generated spec files (goal: < 2 s).

Times `validate_paths` in-process (best of a few runs) and the installed CLI
end to end in a subprocess, and prints a markdown table. Run:
`python -m benchmarks.bench_validate [--files N]`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import argument_parser
from controller.cli.validate import validate_paths

GOAL_SECONDS = 2.0

TEMPLATE = """\
# yaml-language-server: $schema=../schemas/rollout.schema.json
apiVersion: rollouts/v1
kind: ModelRollout
metadata:
  name: model-{i}
spec:
  model:
    name: model_{i}
    basePath: models/model_{i}
  transition: {transition}
  stable: {stable}
  canary:
    version: {canary}
    split:
      hashKey: x-user-id
      salt: "salt-{i}"
      match:
        - {{header: x-canary, value: "1"}}
    steps:
      - {{weight: 10, hold: 2m}}
      - {{weight: 50, hold: 5m}}
    analysis:
      interval: 30s
      minRequests: 100
      onNoData: pause
      failureLimit: 2
      checks:
        errorRate: {{max: 0.01, maxIncrease: 0.005}}
        latencyP99: {{max: 250ms, maxRatio: 1.5}}
    promotion: auto
  keep: [{keep}]
  labels:
    previous: {keep}
"""


def generate(directory: Path, count: int) -> None:
    for i in range(count):
        stable = 2 + i % 5
        text = TEMPLATE.format(
            i=i,
            transition="resource" if i % 10 == 0 else "availability",
            stable=stable,
            canary=stable + 1,
            keep=stable - 1,
        )
        (directory / f"model-{i:04d}.yaml").write_text(text)


def time_in_process(directory: Path, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        problems = validate_paths([directory])
        best = min(best, time.perf_counter() - start)
        if problems:
            raise SystemExit(f"generated specs are invalid: {problems[0]}")
    return best


def time_cli(directory: Path) -> float:
    script = Path(sys.executable).parent / "rollouts"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "controller"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    done = subprocess.run(
        [*command, "validate", str(directory)], capture_output=True, text=True, env=env, timeout=120
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"rollouts validate failed ({done.returncode}): {done.stderr}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        directory = Path(tmp)
        generate(directory, args.files)
        in_process = time_in_process(directory, args.runs)
        cli = time_cli(directory)
    print(f"| {args.files} spec files | seconds | per file | goal |")
    print("|---|---:|---:|---|")
    for name, seconds in (
        ("validate_paths (best of runs)", in_process),
        ("rollouts validate (CLI)", cli),
    ):
        verdict = "ok" if seconds < GOAL_SECONDS else "SLOW"
        print(f"| {name} | {seconds:.3f} | {seconds / args.files * 1000:.2f} ms | {verdict} |")
    return 0 if cli < GOAL_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
