"""Benchmark the controller's weight: `rollouts plan` wall time and the controller's RSS.

On the example repo (`rollouts/`, pushed to a bare remote) against one running
bundled server holding every version the specs name: first one `rollouts run
--once` converges the server, then `rollouts plan` runs several times as a
fresh process (a cold run clones into a new state dir; warm runs reuse it),
and a running `rollouts run` is sampled for RSS over several reconcile passes.
Goals: plan < 1.5 s, controller < 120 MB (issue 14; both were 11-24 s and
~710 MB while the controller imported TensorFlow). Run:
`python -m benchmarks.bench_controller [--runs N]`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.common import Result, argument_parser, finish, summarize
from benchmarks.harness import RssSampler, make_half_plus_two, rss_mb, serving_process

REPO = Path(__file__).resolve().parents[1]
PLAN_GOAL_S = 1.5
RSS_GOAL_MB = 120.0
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.test",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.test"}


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, **GIT_ENV}, timeout=120)


def example_remote(root: Path) -> Path:
    """A bare remote whose main holds the example specs."""
    remote, work = root / "remote.git", root / "work"
    git(root, "init", "--bare", "-q", "-b", "main", str(remote))
    git(root, "clone", "-q", str(remote), str(work))
    shutil.copytree(REPO / "rollouts", work / "rollouts")
    git(work, "checkout", "-q", "-b", "main")
    git(work, "add", "rollouts")
    git(work, "commit", "-q", "-m", "example specs")
    git(work, "push", "-q", "origin", "HEAD:main")
    return remote


def example_models(model_root: Path) -> int:
    """A small SavedModel at every version the example specs reference."""
    from controller.cli.validate import referenced_versions
    from controller.spec.load import load_specs

    loaded = load_specs([REPO / "rollouts"])
    assert not loaded.problems, loaded.problems
    made = 0
    for document in loaded.documents:
        base = model_root / document.spec.spec.model.path
        for version in sorted({v for v, _ in referenced_versions(document)}):
            if not (base / str(version)).exists():
                make_half_plus_two(base, version)
                made += 1
    return made


def rollouts() -> list[str]:
    script = Path(sys.executable).parent / "rollouts"
    return [str(script)] if script.exists() else [sys.executable, "-m", "controller"]


def timed(command: list[str], expect: set[int]) -> tuple[float, int, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if done.returncode not in expect:
        raise SystemExit(f"{' '.join(command[:2])} exited {done.returncode}: {done.stderr[-2000:]}")
    return elapsed, done.returncode, done.stdout


def status(listen: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://{listen}/status", timeout=5) as reply:
            document: dict[str, Any] = json.load(reply)
            return document
    except OSError:
        return {}


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sample-seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    from tests.conftest import free_port, wait_for

    result = Result("controller", "Controller weight: rollouts plan and the running controller "
                    "(issue 14)", params={"runs": args.runs,
                                          "rss sample seconds": args.sample_seconds})
    with tempfile.TemporaryDirectory(prefix="bench-controller-") as tmp:
        root = Path(tmp)
        remote = example_remote(root)
        model_root = root / "models"
        models = example_models(model_root)
        config = root / "empty.conf"
        config.write_text("model_config_list {}\n")
        with serving_process([f"--model_config_file={config}",
                              "--file_system_poll_wait_seconds=1"], root / "server.log") as server:
            common = ["--repo", str(remote), "--model-root", str(model_root),
                      "--target", f"s0={server.address}"]
            converge, _, _ = timed([*rollouts(), "run", *common, "--once", "--listen", "off",
                                    "--state-dir", str(root / "once")], {0, 1})
            cold, cold_code, _ = timed([*rollouts(), "plan", *common, "--state-dir",
                                        str(root / "plan")], {0, 2, 3})
            warm = [timed([*rollouts(), "plan", *common, "--state-dir", str(root / "plan")],
                          {0, 2, 3})[0] for _ in range(args.runs)]

            listen = f"127.0.0.1:{free_port()}"
            proc = subprocess.Popen(
                [*rollouts(), "run", *common, "--listen", listen, "--poll-interval", "1s",
                 "--reconcile-interval", "1s", "--state-dir", str(root / "run")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                if not wait_for(lambda: bool(status(listen).get("commitApplied")), 120, 0.2):
                    raise SystemExit("the controller never applied the example specs")
                with RssSampler(proc.pid, interval=0.1) as sampler:
                    time.sleep(args.sample_seconds)  # the measuring window, not a wait
                steady = rss_mb(proc.pid)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    plan_p50 = summarize(warm)["p50"]
    table = result.table("Wall time and memory", ["measure", "value", "goal", "met"])
    table.add("rollouts run --once, converging the server (s)", converge, None, None)
    table.add(f"rollouts plan, cold: clones first (s; exit {cold_code})", cold, None, None)
    table.add(f"rollouts plan, warm: p50 of {args.runs} (s)", plan_p50, PLAN_GOAL_S,
              plan_p50 < PLAN_GOAL_S)
    table.add(f"rollouts plan, warm: max of {args.runs} (s)", max(warm), None, None)
    table.add("running controller RSS, peak over the window (MB)", sampler.peak_mb, RSS_GOAL_MB,
              sampler.peak_mb < RSS_GOAL_MB)
    table.add("running controller RSS at the end (MB)", steady, None, None)
    table.notes.append(
        f"One bundled server on loopback with {models} small SavedModels (every version the "
        "3 example specs name); each plan is a new process, as in CI. Before the TF Serving "
        "protos were generated into serving/generated/ the controller imported TensorFlow: "
        "11-24 s per plan and ~710 MB held (issue 14).")
    result.data = {"plan_warm_s": warm, "plan_cold_s": cold, "rss_samples": sampler.samples[-50:]}
    return finish(result, plan_p50 < PLAN_GOAL_S and sampler.peak_mb < RSS_GOAL_MB)


if __name__ == "__main__":
    sys.exit(main())
