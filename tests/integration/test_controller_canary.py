"""Canary analysis end to end: real servers, real models, real traffic, real git.

The controller judges each canary from the servers' metrics and writes its
verdict to the bare remote: a promotion commit, or a revert commit after the
canary left traffic. Intervals are a second or two so each test takes seconds.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from tensorflow_serving.apis import get_model_status_pb2

from controller.adapters.gitrepo import GitRepo
from controller.adapters.journal import GitNotes
from controller.decide.fleet import TargetAddress
from controller.runtime.runner import Controller, ControllerSettings
from serving.generated import rollouts_serving_pb2 as ext
from tests.conftest import REPO, ServerProcess, monitored_flags
from tests.gitops import Person, git, spec
from tests.helpers import free_port, wait_for
from tests.traffic import Traffic

pytestmark = pytest.mark.integration

MONITORING = 'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n'


def canary_block(
    *, hold: str = "2s", interval: str = "1s", failure_limit: int = 2, min_requests: int = 10
) -> str:
    return (
        "    split: {hashKey: x-user-id}\n"
        f"    steps: [{{weight: 50, hold: {hold}}}]  # half the users\n"
        "    analysis:\n"
        f"      interval: {interval}\n"
        f"      minRequests: {min_requests}\n"
        f"      failureLimit: {failure_limit}\n"
        # The faulty v3's in-graph assertion answers INVALID_ARGUMENT, which is not
        # a server-side failure: count it, as a spec would for a canary rejecting
        # inputs stable accepts.
        "      checks: {errorRate: {max: 0.05, codes: [INVALID_ARGUMENT, INTERNAL]}}\n"
    )


@pytest.fixture
def fleet(tmp_path: Path, shared_servers: Any, server_pool: Any, make_model: Any,
          ) -> dict[str, Any]:
    """Two servers that start with no models (the pool's, emptied for each test:
    starting them was most of a test's time), v1-v3 of hp2 and a person's remote."""
    root = tmp_path / "models"
    make_model(root / "hp2", 1)
    make_model(root / "hp2", 2, offset=3.0)
    make_model(root / "hp2", 3, offset=3.0, fail_above=5.0)  # fails on half the inputs
    flags = monitored_flags(server_pool.workdir)
    servers = shared_servers(flags, 2)
    person = Person(tmp_path)
    person.write("rollouts/hp2.yaml", spec(stable=1), "hp2 at v1")
    return {"root": root, "servers": servers, "person": person, "flags": flags}


def settings(fleet: dict[str, Any], tmp_path: Path, **extra: Any) -> ControllerSettings:
    servers: list[ServerProcess] = fleet["servers"]
    return ControllerSettings(
        repo=fleet["person"].url,
        model_root=str(fleet["root"]),
        targets=[
            TargetAddress(f"s{i}", s.address, s.rest_url) for i, s in enumerate(servers)
        ],
        state_dir=tmp_path / "state",
        poll_interval_s=0.5,
        reconcile_interval_s=0.25,
        reconcile_deadline_s=30,
        **extra,
    )


def label_version(server: ServerProcess, label: str) -> int | None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "hp2"
    request.model_spec.version_label = label
    try:
        return server.model_stub().GetModelStatus(request, timeout=5).model_version_status[
            0
        ].version
    except grpc.RpcError:
        return None


def split_of(server: ServerProcess) -> ext.Split | None:
    for info in server.rollout_stub().ListModels(ext.ListModelsRequest(), timeout=5).models:
        if info.name == "hp2" and info.has_split:
            return info.split
    return None


def notes(person: Person) -> str:
    git(person.clone, "fetch", "-q", "origin", "+refs/notes/*:refs/notes/*")
    return git(person.clone, "log", "--notes=rollouts", "--format=%s%n%N", "origin/main")


def running(fleet: dict[str, Any], tmp_path: Path, **extra: Any) -> Controller:
    controller = Controller(settings(fleet, tmp_path, **extra))
    controller.start()
    return controller


def test_passing_canary_is_promoted_with_comments_kept(
    fleet: dict[str, Any], tmp_path: Path
) -> None:
    person: Person = fleet["person"]
    servers: list[ServerProcess] = fleet["servers"]
    traffic = Traffic([s.rest_url for s in servers]).start()
    controller = running(fleet, tmp_path)
    try:
        assert wait_for(lambda: label_version(servers[0], "stable") == 1, 60, 0.2)
        person.write(
            "rollouts/hp2.yaml",
            spec(stable=1, canary=2, canary_block=canary_block()),
            "canary hp2 v2",
        )
        assert wait_for(lambda: "rollouts: promote hp2 to 2" in person.remote_log(), 90, 0.3), (
            controller.status()
        )
        text = person.remote_file("rollouts/hp2.yaml")
        assert text == spec(stable=2).rstrip("\n"), text  # canary gone, comments kept
        message = git(person.remote, "log", "-1", "--format=%B", "main")
        assert "Rollouts-Promoted-Version: 2" in message and "Rollouts-Verdict: pass" in message
        # Trailers summarise the analysis, as `git interpret-trailers` reads them.
        parsed = git(person.remote, "log", "-1", "--format=%(trailers:only,unfold)", "main")
        assert re.search(r"^Rollouts-Intervals: [1-9]\d* passed, 0 failed, \d+ not judged$",
                         parsed, re.M), parsed
        assert re.search(r"^Rollouts-Last-Interval: pass at 50%: canary \d+ req", parsed, re.M)
        # The promotion is applied: stable -> 2 everywhere, the split gone.
        assert wait_for(
            lambda: all(label_version(s, "stable") == 2 and split_of(s) is None for s in servers),
            60,
            0.2,
        )
        journal = notes(person)
        assert "v2 started" in journal and "interval: pass at 50%" in journal
        assert "verdict: Analysis passed" in journal
    finally:
        controller.stop()
        traffic.stop()
    assert traffic.statuses[500] == 0 and traffic.statuses[0] == 0
    assert traffic.versions["2"] > 0 and traffic.versions["1"] > 0


def test_failing_canary_leaves_traffic_then_is_reverted(
    fleet: dict[str, Any], tmp_path: Path
) -> None:
    person: Person = fleet["person"]
    servers: list[ServerProcess] = fleet["servers"]
    traffic = Traffic([s.rest_url for s in servers]).start()
    controller = running(fleet, tmp_path)
    try:
        assert wait_for(lambda: label_version(servers[0], "stable") == 1, 60, 0.2)
        started = person.write(
            "rollouts/hp2.yaml",
            spec(stable=1, canary=3, canary_block=canary_block(hold="30s")),
            "canary hp2 v3",
        )
        assert wait_for(lambda: person.remote_log()[0].startswith("rollouts: revert hp2"), 90,
                        0.3), controller.status()
        message = git(person.remote, "log", "-1", "--format=%B", "main")
        assert f"This reverts commit {started}." in message
        assert "Rollouts-Reverted-Version: 3" in message and "error rate" in message
        assert person.remote_file("rollouts/hp2.yaml") == spec(stable=1).rstrip("\n")
        for server in servers:
            assert split_of(server) is None and label_version(server, "canary") is None
        assert "verdict: Analysis failed" in notes(person)
        # The controller fetches its own revert right after pushing it; on a busy
        # machine the status may show it a moment after the remote does.
        assert wait_for(lambda: controller.status()["models"]["hp2"]["canary"] is None, 30,
                        0.1), controller.status()
    finally:
        controller.stop()
        traffic.stop()


def test_answers_the_client_caused_do_not_fail_a_canary_by_default(
    fleet: dict[str, Any], tmp_path: Path
) -> None:
    # v3 rejects half the inputs with INVALID_ARGUMENT, as any server does a
    # client's bad request. Without errorRate.codes only server-side failures
    # count, so the canary passes, and the journal and the promotion's trailers
    # still give the rejected answers' count by code.
    person: Person = fleet["person"]
    servers: list[ServerProcess] = fleet["servers"]
    traffic = Traffic([s.rest_url for s in servers]).start()
    controller = running(fleet, tmp_path)
    block = canary_block().replace(", codes: [INVALID_ARGUMENT, INTERNAL]", "")
    assert "codes" not in block
    try:
        assert wait_for(lambda: label_version(servers[0], "stable") == 1, 60, 0.2)
        person.write("rollouts/hp2.yaml", spec(stable=1, canary=3, canary_block=block),
                     "canary hp2 v3, default error codes")
        assert wait_for(lambda: "rollouts: promote hp2 to 3" in person.remote_log(), 90, 0.3), (
            controller.status())
        parsed = git(person.remote, "log", "-1", "--format=%(trailers:only,unfold)", "main")
        assert re.search(r"^Rollouts-Last-Interval: pass at 50%: canary \d+ req 0\.00% err "
                         r"\(INVALID_ARGUMENT \d+ not counted\)", parsed, re.M), parsed
        assert "INVALID_ARGUMENT" in notes(person) and '"errorsByCode"' in notes(person)
    finally:
        controller.stop()
        traffic.stop()
    assert traffic.statuses[400] > 0  # the rejected answers really happened


def test_persons_revert_mid_canary_is_applied(fleet: dict[str, Any], tmp_path: Path) -> None:
    person: Person = fleet["person"]
    servers: list[ServerProcess] = fleet["servers"]
    controller = running(fleet, tmp_path)
    try:
        started = person.write(
            "rollouts/hp2.yaml",
            spec(stable=1, canary=2, canary_block=canary_block(hold="1h", interval="1m")),
            "canary hp2 v2",
        )
        assert wait_for(lambda: all(split_of(s) is not None for s in servers), 60, 0.2)
        person.revert(started)
        assert wait_for(
            lambda: all(
                split_of(s) is None and label_version(s, "canary") is None for s in servers
            ),
            30,
            0.2,
        )
        subjects = person.remote_log()
        assert subjects[0].startswith("Revert") and not any("rollouts:" in s for s in subjects)
    finally:
        controller.stop()


def test_concurrent_push_during_promotion_keeps_both_commits(
    fleet: dict[str, Any], tmp_path: Path
) -> None:
    person: Person = fleet["person"]
    servers: list[ServerProcess] = fleet["servers"]
    traffic = Traffic([s.rest_url for s in servers]).start()
    controller = Controller(settings(fleet, tmp_path))
    real_push = controller.git.push
    raced: list[str] = []

    def racing_push(sha: str) -> Any:
        if not raced:  # a person pushes between the controller's fetch and its push
            raced.append(person.write("README.md", "hello\n", "unrelated change"))
        return real_push(sha)

    controller.git.push = racing_push  # type: ignore[method-assign]
    controller.start()
    try:
        person.write(
            "rollouts/hp2.yaml",
            spec(stable=1, canary=2, canary_block=canary_block()),
            "canary hp2 v2",
        )
        assert wait_for(lambda: "rollouts: promote hp2 to 2" in person.remote_log(), 90, 0.3)
        subjects = person.remote_log()
        assert subjects.index("rollouts: promote hp2 to 2") < subjects.index("unrelated change")
        assert person.remote_file("README.md") == "hello"
    finally:
        controller.stop()
        traffic.stop()


def test_killed_controller_resumes_with_exactly_one_promotion(
    fleet: dict[str, Any], tmp_path: Path
) -> None:
    person: Person = fleet["person"]
    servers: list[ServerProcess] = fleet["servers"]
    traffic = Traffic([s.rest_url for s in servers]).start()
    state = tmp_path / "state"
    args = [
        sys.executable, "-m", "controller", "run", "--repo", person.url,
        "--model-root", str(fleet["root"]), "--state-dir", str(state),
        "--poll-interval", "0.5s", "--reconcile-interval", "0.25s", "--listen", "off",
        *[f"--target=s{i}={s.address},{s.rest_url}" for i, s in enumerate(servers)],
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    log = open(tmp_path / "controller.log", "ab")  # noqa: SIM115
    first = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=log)
    try:
        start = person.write(
            "rollouts/hp2.yaml",
            spec(stable=1, canary=2, canary_block=canary_block(hold="4s")),
            "canary hp2 v2",
        )
        # Kill it (SIGKILL: no cleanup) once analysis has begun.
        reader = GitRepo(person.url, tmp_path / "reader")
        reader_notes = GitNotes(reader)
        assert wait_for(lambda: _has_note(reader, reader_notes, start, "interval"), 90, 0.3), (
            (tmp_path / "controller.log").read_text()
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        second = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=log)
        try:
            assert wait_for(
                lambda: "rollouts: promote hp2 to 2" in person.remote_log(), 90, 0.3
            ), (tmp_path / "controller.log").read_text()
            # Let the restarted controller run on: it must not write anything more.
            assert not wait_for(lambda: len(person.remote_log()) > 3, 3, 0.3)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0
    finally:
        if first.poll() is None:
            first.kill()
        traffic.stop()
        log.close()
    subjects = person.remote_log()
    assert subjects.count("rollouts: promote hp2 to 2") == 1
    assert not any(s.startswith("rollouts: revert") for s in subjects)


def _has_note(reader: GitRepo, reader_notes: GitNotes, commit: str, kind: str) -> bool:
    reader.sync()
    return any(f" {kind}: " in line for line in reader_notes.notes(commit))


def test_prometheus_provider_judges_from_a_real_prometheus(
    fleet: dict[str, Any], tmp_path: Path
) -> None:
    prometheus_bin = Path("/usr/bin/prometheus")
    if not prometheus_bin.exists() and os.environ.get("ROLLOUTS_REQUIRE_PROMETHEUS") != "1":
        pytest.skip("/usr/bin/prometheus absent: apt-get install -y prometheus")
    person: Person = fleet["person"]
    servers: list[ServerProcess] = fleet["servers"]
    port = free_port()
    targets = ", ".join(f"'127.0.0.1:{s.rest_port}'" for s in servers)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: serving\n"
        "    metrics_path: /monitoring/prometheus/metrics\n"
        f"    static_configs: [{{targets: [{targets}]}}]\n"
    )
    prometheus = subprocess.Popen(
        [
            str(prometheus_bin), f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    traffic = Traffic([s.rest_url for s in servers]).start()
    controller = running(fleet, tmp_path, prometheus_url=f"http://127.0.0.1:{port}")
    try:
        person.write(
            "rollouts/hp2.yaml",
            spec(stable=1, canary=2, canary_block=canary_block(hold="8s", interval="4s",
                                                               failure_limit=3)),
            "canary hp2 v2",
        )
        assert wait_for(lambda: "rollouts: promote hp2 to 2" in person.remote_log(), 120, 0.5), (
            controller.status()
        )
        assert "interval: pass at 50%" in notes(person)
    finally:
        controller.stop()
        traffic.stop()
        prometheus.terminate()
        prometheus.wait(timeout=30)
