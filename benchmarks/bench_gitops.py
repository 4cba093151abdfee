"""GitOps latency: commit pushed -> applied, and failing canary -> revert commit (issue 8, item 4).

One run, side by side, on 127.0.0.1 only: two real serving processes, a bare git
remote with a person's clone, and the real controller (`python -m controller run`,
a separate process, as users run it).

1. Pushed -> applied. The spec keeps versions 1 and 2 loaded (`keep`) and each
   commit moves `stable` between them, so no model load is measured: only git
   fetch, spec load, plan and the label push. t0 is taken right after `git push`
   returns; t1 when GetModelStatus(label=stable) on every target (polled every
   10 ms through the real stubs) shows the new version. Two controllers in turn:
   git poll every 1 s (a random 0..1 s pause before each push spreads the pushes
   over the poll phase), and webhook (poll 1 h, a signed POST right after the push).
   Goals: p50 <= 1.5 s (poll), <= 0.5 s (webhook).
2. Failing canary -> revert. Steady REST traffic; a commit proposes a canary
   version that fails on half its inputs (a fresh version per sample, so the
   "auto-reverted before" guard never applies). Measured from the push, and from
   "canary ready" (the `started` event the controller journals in the git note;
   its timestamp), to the revert commit on the bare remote (its ref polled every
   20 ms). Goal: ready -> revert <= interval x failureLimit + 2 s.

Run: `python -m benchmarks.bench_gitops [--quick] [--profile DIR]`. With
--profile the controllers run under py-spy (`pip install py-spy`) and leave
collapsed stacks in DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before anything imports TensorFlow

import grpc  # noqa: E402
import httpx  # noqa: E402
from tensorflow_serving.apis import get_model_status_pb2  # noqa: E402

from benchmarks.common import Result, Table, argument_parser, finish, summarize  # noqa: E402
from controller.runtime.webhook import signature  # noqa: E402
from tests.conftest import ServerProcess  # noqa: E402
from tests.gitops import Person, git, spec  # noqa: E402
from tests.helpers import (
    free_port,  # noqa: E402
    wait_for,  # noqa: E402
)
from tests.traffic import Traffic  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODEL = "hp2"
SECRET = b"bench-secret"
MONITORING = 'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n'
POLL_GOAL_P50_S = 1.5
WEBHOOK_GOAL_P50_S = 0.5
CANARY_SLACK_S = 2.0
FIRST_FAULTY_VERSION = 3
FIRST_PROMOTED_VERSION = 100
ROLLBACK_GOAL_P50_S = 1.5
AVAILABLE = 30  # tensorflow.serving.ModelVersionStatus.State
# Promoted after one passing 1 s step: no traffic is needed (no data passes).
PROMOTE_BLOCK = (
    "    steps: [{weight: 50, hold: 1s}]\n"
    "    analysis: {interval: 1s, minRequests: 1, onNoData: pass}\n"
)


# -- small bounded helpers ----------------------------------------------------
def label_version(server: ServerProcess, label: str) -> int | None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    request.model_spec.version_label = label
    try:
        reply = server.model_stub().GetModelStatus(request, timeout=2)
    except grpc.RpcError:
        return None
    return int(reply.model_version_status[0].version)


def remote_ref(remote: Path, ref: str) -> str:
    """The sha of `ref` in the bare remote, read without forking git when it is loose."""
    loose = remote / ref
    try:
        return loose.read_text().strip()
    except OSError:
        pass
    # Packed (after a gc) or absent: ask git.
    done = subprocess.run(
        ["git", "--git-dir", str(remote), "rev-parse", "--verify", "--quiet", ref],
        capture_output=True, text=True, check=False,
    )
    return done.stdout.strip()


def journal_times(remote: Path, commit: str) -> dict[str, list[float]]:
    """Event kind -> timestamps, from the controller's journal in the note on `commit`."""
    done = subprocess.run(
        ["git", "--git-dir", str(remote), "notes", "--ref=rollouts", "show", commit],
        capture_output=True, text=True, check=False,
    )
    return parse_journal_times(done.stdout)


def parse_journal_times(note: str) -> dict[str, list[float]]:
    # Each journal line ends with the event as JSON (see controller.adapters.journal.journal_line).
    times: dict[str, list[float]] = {}
    for line in note.splitlines():
        brace = line.find("{")
        if brace < 0:
            continue
        try:
            event = json.loads(line[brace:])
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and isinstance(event.get("at"), int | float):
            times.setdefault(str(event.get("kind")), []).append(float(event["at"]))
    return times


def canary_block(interval_s: float, failure_limit: int) -> str:
    # A one-hour hold: the canary can only leave by failing, never by promotion.
    return (
        "    split: {hashKey: x-user-id}\n"
        "    steps: [{weight: 50, hold: 1h}]\n"
        "    analysis:\n"
        f"      interval: {interval_s:g}s\n"
        "      minRequests: 10\n"
        f"      failureLimit: {failure_limit}\n"
        # The faulty versions' assertion answers INVALID_ARGUMENT: count it.
        "      checks: {errorRate: {max: 0.05, codes: [INVALID_ARGUMENT, INTERNAL]}}\n"
    )


# -- the fleet: models, servers, remote ----------------------------------------
@dataclass
class Fleet:
    root: Path
    servers: list[ServerProcess]
    person: Person
    faulty_versions: list[int]
    promoted_versions: list[int] = field(default_factory=list)

    def targets(self) -> list[str]:
        return [f"--target=s{i}={s.address},{s.rest_url}" for i, s in enumerate(self.servers)]


def build_models(root: Path, faulty: int, promoted: int = 0) -> tuple[list[int], list[int]]:
    """hp2 versions 1 and 2 (healthy), `faulty` failing versions from 3 on, and
    `promoted` healthy ones from 100 on."""
    from tests.models import make_half_plus_two  # TensorFlow: import only when building

    cache = root / ".cache"
    healthy = make_half_plus_two(cache / "healthy", 1, offset=3.0)
    failing = make_half_plus_two(cache / "failing", 1, offset=3.0, fail_above=5.0)
    base = root / MODEL
    base.mkdir(parents=True)
    shutil.copytree(healthy, base / "1")
    shutil.copytree(healthy, base / "2")
    versions = list(range(FIRST_FAULTY_VERSION, FIRST_FAULTY_VERSION + faulty))
    for version in versions:
        shutil.copytree(failing, base / str(version))
    fresh = list(range(FIRST_PROMOTED_VERSION, FIRST_PROMOTED_VERSION + promoted))
    for version in fresh:
        shutil.copytree(healthy, base / str(version))
    return versions, fresh


@contextmanager
def fleet(work: Path, faulty: int, promoted: int = 0) -> Iterator[Fleet]:
    root = work / "models"
    versions, fresh = build_models(root, faulty, promoted)
    (work / "empty.conf").write_text("model_config_list {}\n")
    (work / "monitoring.conf").write_text(MONITORING)
    flags = [
        f"--model_config_file={work / 'empty.conf'}",
        f"--monitoring_config_file={work / 'monitoring.conf'}",
    ]
    servers: list[ServerProcess] = []
    try:
        for i in range(2):
            servers.append(ServerProcess(flags, work / f"server-{i}.log"))
        for server in servers:
            server.wait_ready()
        person = Person(work)
        person.write(f"rollouts/{MODEL}.yaml", sync_spec(1), "hp2 at v1, v2 kept")
        yield Fleet(root, servers, person, versions, fresh)
    finally:
        for server in servers:
            server.stop()


def sync_spec(stable: int) -> str:
    other = 2 if stable == 1 else 1
    return spec(stable=stable, extra=f"  keep: [{other}]  # both stay loaded\n")


# -- the controller under test ------------------------------------------------
@dataclass
class ControllerProcess:
    """`python -m controller run` on a free loopback port; optionally under py-spy."""

    fleet: Fleet
    work: Path
    name: str
    poll: str
    reconcile: str = "5s"
    profile_dir: Path | None = None
    listen: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.listen}"

    def start(self) -> ControllerProcess:
        secret = self.work / f"{self.name}.secret"
        secret.write_bytes(SECRET)
        command = [
            sys.executable, "-m", "controller", "run",
            "--repo", self.fleet.person.url, "--model-root", str(self.fleet.root),
            *self.fleet.targets(), "--state-dir", str(self.work / f"state-{self.name}"),
            "--poll-interval", self.poll, "--reconcile-interval", self.reconcile,
            "--listen", self.listen, "--webhook-secret-file", str(secret),
        ]
        if self.profile_dir is not None:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            out = self.profile_dir / f"{self.name}.txt"
            command = ["py-spy", "record", "--format", "raw", "-r", "200", "-o", str(out),
                       "--", *command]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        log = open(self.work / f"controller-{self.name}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                     env=env)
        log.close()  # the child holds its own descriptor
        if not wait_for(lambda: self.proc is not None and self.proc.poll() is None
                          and bool(self.status()), 120, 0.2):
            raise SystemExit(f"controller {self.name} did not start; see {self.log_path}")
        return self

    @property
    def log_path(self) -> Path:
        return self.work / f"controller-{self.name}.log"

    def status(self) -> dict[str, Any]:
        try:
            return dict(httpx.get(f"{self.url}/status", timeout=2).json())
        except (httpx.HTTPError, ValueError):
            return {}

    def applied(self, commit: str) -> bool:
        state = self.status()
        return bool(state.get("inSync")) and state.get("commitApplied") == commit

    def webhook(self) -> None:
        body = b'{"ref": "refs/heads/main"}'
        reply = httpx.post(f"{self.url}/webhook", content=body, timeout=5,
                           headers={"X-Hub-Signature-256": signature(SECRET, body)})
        if reply.status_code != 202:
            raise SystemExit(f"webhook refused: {reply.status_code} {reply.text}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # py-spy forwards nothing; signal the controller itself when profiling.
        self.proc.send_signal(signal.SIGINT if self.profile_dir else signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextmanager
def controller(fleet_: Fleet, work: Path, name: str, poll: str, reconcile: str,
               profile: Path | None) -> Iterator[ControllerProcess]:
    proc = ControllerProcess(fleet_, work, name, poll, reconcile, profile)
    try:
        yield proc.start()
    finally:
        proc.stop()


# -- 1. pushed -> applied ------------------------------------------------------
def measure_sync(ctl: ControllerProcess, samples: int, webhook: bool, seed: int) -> list[float]:
    person, servers = ctl.fleet.person, ctl.fleet.servers
    head = person.remote_head()
    if not wait_for(lambda: ctl.applied(head), 120, 0.1):
        raise SystemExit(f"{ctl.name}: initial state never applied: {ctl.status()}")
    stable = label_version(servers[0], "stable") or 1
    rng = random.Random(seed)
    latencies = []
    for i in range(samples):
        stable = 2 if stable == 1 else 1
        time.sleep(rng.uniform(0.0, 1.0))  # spread pushes over the poll phase
        person.write(f"rollouts/{MODEL}.yaml", sync_spec(stable), f"stable -> {stable}")
        t0 = time.monotonic()
        if webhook:
            ctl.webhook()
        if not wait_for(moved(servers, stable), 30, 0.01):
            raise SystemExit(f"{ctl.name}: sample {i} not applied in 30 s: {ctl.status()}")
        latencies.append(time.monotonic() - t0)
        print(f"  {ctl.name} sample {i + 1}/{samples}: {latencies[-1]:.3f} s", flush=True)
    return latencies


def moved(servers: Sequence[ServerProcess], want: int) -> Callable[[], bool]:
    """A predicate: `stable` is `want` on every server (each asked until it is)."""
    pending = list(servers)

    def check() -> bool:
        pending[:] = [s for s in pending if label_version(s, "stable") != want]
        return not pending

    return check


# -- 2. failing canary -> revert ------------------------------------------------
@dataclass
class CanarySample:
    push_to_revert_s: float
    ready_to_revert_s: float | None
    push_to_ready_s: float | None
    # Where ready -> revert goes: judging the intervals, then writing the revert.
    interval_gaps_s: list[float]
    verdict_to_revert_s: float | None


def measure_canary(ctl: ControllerProcess, version: int, interval_s: float,
                   failure_limit: int) -> CanarySample:
    person = ctl.fleet.person
    remote = person.remote
    person.pull()  # the controller's previous revert
    head = person.remote_head()
    if not wait_for(lambda: ctl.applied(head), 60, 0.1):
        raise SystemExit(f"canary: previous state never applied: {ctl.status()}")
    block = canary_block(interval_s, failure_limit)
    canary = person.write(f"rollouts/{MODEL}.yaml", spec(stable=1, canary=version,
                                                          canary_block=block),
                          f"canary hp2 v{version}")
    pushed = time.time()
    budget = 60 + 3 * interval_s * failure_limit
    if not wait_for(lambda: remote_ref(remote, "refs/heads/main") != canary, budget, 0.02):
        raise SystemExit(f"canary v{version}: no revert within {budget:g} s: {ctl.status()}")
    reverted = time.time()
    subject = git(remote, "log", "-1", "--format=%s", "main")
    if not subject.startswith(f"rollouts: revert {MODEL}"):
        raise SystemExit(f"canary v{version}: unexpected commit on the remote: {subject!r}")
    journal = journal_times(remote, canary)
    ready = journal.get("started", [None])[0]
    judged = [ready, *journal.get("interval", [])] if ready is not None else []
    verdict = journal.get("verdict", [None])[-1]
    return CanarySample(
        push_to_revert_s=reverted - pushed,
        ready_to_revert_s=None if ready is None else reverted - ready,
        push_to_ready_s=None if ready is None else ready - pushed,
        interval_gaps_s=[b - a for a, b in zip(judged, judged[1:], strict=False)],
        verdict_to_revert_s=None if verdict is None else reverted - verdict,
    )


# -- 3. revert of a promotion -> stable serves the old version --------------------
def loads_of(server: ServerProcess, version: int) -> float:
    """Successful SavedModel loads of hp2 `version` on `server` (its own counter)."""
    from benchmarks.harness import load_attempts

    text = httpx.get(f"{server.rest_url}/monitoring/prometheus/metrics", timeout=5).text
    return sum(n for path, n in load_attempts(text).items() if Path(path).name == str(version))


def states_of(server: ServerProcess) -> dict[int, int]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    try:
        reply = server.model_stub().GetModelStatus(request, timeout=2)
    except grpc.RpcError:
        return {}
    return {s.version: s.state for s in reply.model_version_status}


@dataclass
class RollbackSample:
    revert_to_served_s: float
    loads: float  # SavedModel loads of the old version on all targets during the revert


def measure_rollback(ctl: ControllerProcess, version: int, keep: str,
                     rng: random.Random) -> RollbackSample:
    person, servers = ctl.fleet.person, ctl.fleet.servers
    person.pull()
    extra = f"  keepPrevious: {keep}\n" if keep else ""
    person.write(f"rollouts/{MODEL}.yaml",
                 spec(stable=1, canary=version, canary_block=PROMOTE_BLOCK, extra=extra),
                 f"canary hp2 v{version}")
    subject = f"rollouts: promote {MODEL} to {version}"
    if not wait_for(lambda: subject in person.remote_log(), 120, 0.1):
        raise SystemExit(f"v{version} never promoted: {ctl.status()}")
    promotion = person.remote_head()
    # Applied: stable is the new version everywhere, and v1 is kept or unloaded.
    kept = keep != "0s"
    promoted = moved(servers, version)
    if not wait_for(lambda: promoted() and all(
            (states_of(s).get(1) == AVAILABLE) == kept for s in servers), 60, 0.05):
        raise SystemExit(f"promotion of v{version} never applied: {ctl.status()}")
    before = sum(loads_of(s, 1) for s in servers)
    time.sleep(rng.uniform(0.0, 1.0))  # spread the reverts over the poll phase
    person.pull()
    person.revert(promotion)
    t0 = time.monotonic()
    if not wait_for(moved(servers, 1), 60, 0.01):
        raise SystemExit(f"revert of v{version}: stable never back on v1: {ctl.status()}")
    took = time.monotonic() - t0
    loads = sum(loads_of(s, 1) for s in servers) - before
    # The revert brought the canary block back, held out of traffic: drop it, so the
    # next sample (or the canary benchmark after this one) starts from a spec in sync.
    person.pull()
    person.write(f"rollouts/{MODEL}.yaml", spec(stable=1), f"hp2: drop reverted canary v{version}")
    if not wait_for(lambda: ctl.applied(person.remote_head()), 60, 0.1):
        raise SystemExit(f"v{version}: the spec without its canary never applied: {ctl.status()}")
    return RollbackSample(took, loads)


def run_rollback(result: Result, fl: Fleet, work: Path, samples: int,
                 profile: Path | None) -> bool:
    table = result.table(
        "A person's revert of a promotion -> stable serves the old version on every target "
        "(git poll 1s, 2 targets)",
        ["keepPrevious", "N", "p50 s", "p99 s", "max s", "loads per revert",
         "goal p50 s", "met"],
    )
    table.notes.append(
        "t0 = the revert's push; t1 = GetModelStatus(label=stable) is the old version on "
        "both targets (polled every 10 ms). loads = the servers' own "
        "load_attempt_count for the old version, summed over both targets, per revert. "
        "Default keepPrevious: the old version was still loaded (a label move); 0s: it "
        "was unloaded at the promotion and is loaded again."
    )
    versions = iter(fl.promoted_versions)
    met = True
    for name, keep, goal in (("10m (default)", "", ROLLBACK_GOAL_P50_S),
                             ("0s", "0s", None)):
        rng = random.Random(7)
        with controller(fl, work, f"rollback-{keep or 'default'}", "1s", "5s", profile) as ctl:
            got = []
            for i in range(samples):
                got.append(measure_rollback(ctl, next(versions), keep, rng))
                print(f"  rollback keepPrevious {name}, sample {i + 1}/{samples}: {got[-1]}",
                      flush=True)
        stats = summarize([s.revert_to_served_s for s in got])
        loads = sum(s.loads for s in got) / len(got)
        ok = goal is None or (stats["p50"] <= goal and loads == 0)
        met &= ok
        table.add(name, len(got), stats["p50"], stats["p99"], stats["max"], loads,
                  goal if goal is not None else "-", ok if goal is not None else "-")
        result.data[f"rollback_{keep or 'default'}"] = [vars(s) for s in got]
    return met


# -- the run ---------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples and configs")
    parser.add_argument("--samples", type=int, default=None, help="pushed->applied samples")
    parser.add_argument("--canary-samples", type=int, default=None)
    parser.add_argument("--canary-reconcile", default="0.5s",
                        help="controller --reconcile-interval(s) while judging canaries, "
                        "comma-separated (e.g. 0.5s,5s: one controller each, side by side)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="run the controllers under py-spy; collapsed stacks go here")
    parser.add_argument("--skip-sync", action="store_true")
    parser.add_argument("--skip-canary", action="store_true")
    parser.add_argument("--rollback-samples", type=int, default=None,
                        help="revert-of-a-promotion samples per keepPrevious setting")
    parser.add_argument("--skip-rollback", action="store_true")
    parser.add_argument("--keep-work", action="store_true", help="keep logs and repos")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    samples = args.samples or (3 if args.quick else 10)
    canary_samples = args.canary_samples or (1 if args.quick else 3)
    rollback_samples = args.rollback_samples or (3 if args.quick else 10)
    configs: list[tuple[float, int]] = [(1.0, 1)] if args.quick else [(1.0, 1), (1.0, 2),
                                                                        (2.0, 2)]
    result = Result("bench_gitops", "GitOps latency")
    result.params = {
        "targets": 2, "sync_samples": samples, "canary_samples": canary_samples,
        "sync_reconcile_interval": "5s (default)",
        "canary_poll_interval": "1s", "canary_reconcile_interval": args.canary_reconcile,
        "rollback_samples": rollback_samples,
    }
    work = Path(tempfile.mkdtemp(prefix="bench-gitops-"))
    met = True
    try:
        reconciles = [r.strip() for r in args.canary_reconcile.split(",") if r.strip()]
        faulty = 0 if args.skip_canary else canary_samples * len(configs) * len(reconciles)
        promoted = 0 if args.skip_rollback else 2 * rollback_samples
        with fleet(work, faulty, promoted) as fl:
            if not args.skip_sync:
                met &= run_sync(result, fl, work, samples, args.profile)
            if not args.skip_rollback:
                met &= run_rollback(result, fl, work, rollback_samples, args.profile)
            if not args.skip_canary:
                met &= run_canary(result, fl, work, configs, canary_samples,
                                  reconciles, args.profile)
    finally:
        if args.keep_work:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return finish(result, met)


def run_sync(result: Result, fl: Fleet, work: Path, samples: int,
             profile: Path | None) -> bool:
    table = result.table(
        "Commit pushed -> applied (stable moved between two loaded versions; "
        "seen on both targets via GetModelStatus)",
        ["path", "N", "p50 s", "p90 s", "max s", "goal p50 s", "met"],
    )
    met = True
    for name, poll, webhook, goal in (
        ("git poll 1s", "1s", False, POLL_GOAL_P50_S),
        ("webhook (poll 1h)", "1h", True, WEBHOOK_GOAL_P50_S),
    ):
        key = "poll" if not webhook else "webhook"
        with controller(fl, work, key, poll, "5s", profile) as ctl:
            latencies = measure_sync(ctl, samples, webhook, seed=len(key))
        stats = summarize(latencies)
        ok = stats["p50"] <= goal
        met &= ok
        table.add(name, len(latencies), stats["p50"], stats["p90"], stats["max"], goal, ok)
        result.data[f"sync_{key}_s"] = latencies
    return met


def run_canary(result: Result, fl: Fleet, work: Path, configs: Sequence[tuple[float, int]],
               samples: int, reconciles: Sequence[str], profile: Path | None) -> bool:
    table = result.table(
        "Failing canary -> revert commit on the remote (steady REST traffic, 2 targets)",
        ["reconcile", "interval s", "failureLimit", "N", "goal s (i x f + 2)", "push->revert p50 s",
         "push->revert max s", "ready->revert p50 s", "ready->revert max s", "met",
         "interval gap mean s", "verdict->revert p50 s"],
    )
    table.notes.append(
        "ready = the `started` event in the canary commit's git note (canary AVAILABLE, "
        "labelled and split on every target); met = ready->revert max <= goal. "
        "interval gap = time between successive judged intervals (ideal: the interval); "
        "verdict->revert = from the verdict event to the revert commit on the remote."
    )
    versions = iter(fl.faulty_versions)
    raw: dict[str, Any] = {}
    traffic = Traffic([s.rest_url for s in fl.servers], max_seconds=1800).start()
    try:
        for reconcile in reconciles:
            with controller(fl, work, f"canary-{reconcile}", "1s", reconcile, profile) as ctl:
                run_canary_configs(ctl, table, raw, versions, configs, samples, reconcile)
    finally:
        traffic.stop()
    result.data["canary"] = raw
    result.data["traffic_statuses"] = {str(k): v for k, v in traffic.statuses.items()}
    return all(row[9] is True for row in table.rows)


def run_canary_configs(ctl: ControllerProcess, table: Table, raw: dict[str, Any],
                       versions: Iterator[int], configs: Sequence[tuple[float, int]],
                       samples: int, reconcile: str) -> None:
    for interval_s, limit in configs:
        got = []
        for i in range(samples):
            got.append(measure_canary(ctl, next(versions), interval_s, limit))
            print(f"  canary reconcile {reconcile}, {interval_s:g}s x {limit}, "
                  f"sample {i + 1}/{samples}: {got[-1]}", flush=True)
        goal = interval_s * limit + CANARY_SLACK_S
        push = summarize([s.push_to_revert_s for s in got])
        ready_values = [s.ready_to_revert_s for s in got if s.ready_to_revert_s is not None]
        ready = summarize(ready_values) if ready_values else None
        gaps = [g for s in got for g in s.interval_gaps_s]
        writes = [s.verdict_to_revert_s for s in got if s.verdict_to_revert_s is not None]
        table.add(reconcile, f"{interval_s:g}", limit, len(got), goal, push["p50"], push["max"],
                  ready["p50"] if ready else None, ready["max"] if ready else None,
                  ready is not None and ready["max"] <= goal,
                  sum(gaps) / len(gaps) if gaps else None,
                  summarize(writes)["p50"] if writes else None)
        raw[f"reconcile {reconcile}, {interval_s:g}s x {limit}"] = [vars(s) for s in got]


if __name__ == "__main__":
    sys.exit(main())
