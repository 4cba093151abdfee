"""Fault: corrupt and partial model versions never disturb what is serving.

One real server for the module (load retries off, so a bad version ends at
once). Each corruption is pushed as a second version beside a good stable one:
the stable version keeps answering, GetModelStatus names the load error, and
a canary of such a version is reverted by the controller.

"Wrong permissions" cannot be tested with chmod here: the tests run as root,
which reads a mode-000 file anyway. The stand-in is an unreadable
saved_model.pb of another kind: a dangling symlink (open() fails).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import text_format
from tensorflow_serving.apis import get_model_status_pb2, model_management_pb2
from tensorflow_serving.config import model_server_config_pb2

from controller.decide.fleet import TargetAddress
from controller.runtime.runner import Controller, ControllerSettings
from tests.conftest import ServerProcess, serving
from tests.gitops import Person, git, spec
from tests.helpers import wait_for
from tests.traffic import Traffic

pytestmark = pytest.mark.integration

WAIT_S = 60.0
AVAILABLE, END = 30, 50  # ModelVersionStatus.State


def truncate_graph(version_dir: Path) -> None:
    pb = version_dir / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 3])


def drop_variables(version_dir: Path) -> None:
    shutil.rmtree(version_dir / "variables")


def empty_dir(version_dir: Path) -> None:
    shutil.rmtree(version_dir)
    version_dir.mkdir()


def unreadable_graph(version_dir: Path) -> None:
    pb = version_dir / "saved_model.pb"
    pb.unlink()
    pb.symlink_to(version_dir / "gone" / "saved_model.pb")


# Versions that fail to load end in END with an error. A directory without a
# readable saved_model.pb is never aspired at all: the server treats it as
# still being copied (serving/core/versions.ready_versions), so it stays out.
CORRUPTIONS: dict[str, tuple[int, Callable[[Path], None], str]] = {
    "truncated saved_model.pb": (11, truncate_graph, "error"),
    "missing variables": (12, drop_variables, "error"),
    "empty dir": (13, empty_dir, "never aspired"),
    "unreadable saved_model.pb": (14, unreadable_graph, "never aspired"),
}


def corrupt_version(base: Path, version: int, make_model: Any,
                    corrupt: Callable[[Path], None]) -> None:
    # Corrupt a staged copy and rename it in: the server never sees a good
    # version that then goes bad.
    staged = make_model(base.parent / "staging", version)
    corrupt(staged)
    staged.rename(base / str(version))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, make_model: Any) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("faults-models")
    models = root / "models"
    make_model(models / "hp2", 1)
    (models / "staging").mkdir()
    (root / "empty.conf").write_text("model_config_list {}\n")
    (root / "monitoring.conf").write_text(
        'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n'
    )
    with serving(
        [
            f"--model_config_file={root / 'empty.conf'}",
            f"--monitoring_config_file={root / 'monitoring.conf'}",
            "--max_num_load_retries=0",
            "--file_system_poll_wait_seconds=0.2",
        ],
        root / "server.log",
    ) as server:
        yield {"root": root, "models": models, "server": server}


def reload(server: ServerProcess, base: Path, versions: list[int]) -> None:
    """Push hp2 with these specific versions and `stable: 1`, as the controller would."""
    config = model_server_config_pb2.ModelConfig(
        name="hp2", base_path=str(base), model_platform="tensorflow"
    )
    text_format.Merge(
        "specific { " + " ".join(f"versions: {v}" for v in versions) + " }",
        config.model_version_policy,
    )
    config.version_labels["stable"] = 1
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.append(config)
    try:
        server.model_stub().HandleReloadConfigRequest(request, timeout=WAIT_S)
    except grpc.RpcError:
        pass  # a failed load may fail the reload; the status below is what counts


def statuses(server: ServerProcess) -> dict[int, tuple[int, str]]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "hp2"
    try:
        reply = server.model_stub().GetModelStatus(request, timeout=5)
    except grpc.RpcError:
        return {}
    return {s.version: (s.state, s.status.error_message) for s in reply.model_version_status}


def predict(server: ServerProcess) -> tuple[int, list[float]]:
    reply = httpx.post(f"{server.rest_url}/v1/models/hp2:predict",
                       json={"instances": [1.0]}, timeout=10)
    return reply.status_code, reply.json().get("predictions", [])


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_bad_version_ends_with_an_error_and_stable_keeps_serving(
    env: dict[str, Any], make_model: Any, kind: str
) -> None:
    server: ServerProcess = env["server"]
    version, corrupt, expected = CORRUPTIONS[kind]
    corrupt_version(env["models"] / "hp2", version, make_model, corrupt)
    reload(server, env["models"] / "hp2", [1, version])
    if expected == "error":
        assert wait_for(lambda: statuses(server).get(version, (0, ""))[0] == END, WAIT_S, 0.1), (
            statuses(server)
        )
        assert statuses(server)[version][1], f"{kind}: END without an error message"
    else:
        # Ten file system polls (0.2 s each) and it is still not a version.
        assert not wait_for(lambda: version in statuses(server), 2.0, 0.1), statuses(server)
    assert statuses(server)[1] == (AVAILABLE, "")
    assert predict(server) == (200, [2.5])  # version 1: 0.5 * 1 + 2


def test_controller_reverts_a_canary_that_cannot_load(
    env: dict[str, Any], make_model: Any
) -> None:
    server: ServerProcess = env["server"]
    corrupt_version(env["models"] / "hp2", 21, make_model, truncate_graph)
    person, controller = start_controller(env, "git", "state", deadline_s=30)
    traffic = Traffic([server.rest_url])
    try:
        assert wait_for(lambda: controller.status()["inSync"], WAIT_S, 0.2), controller.status()
        traffic.start()  # once hp2 serves, so every request has a model to reach
        started = person.write(
            "rollouts/hp2.yaml",
            spec(
                stable=1,
                canary=21,
                canary_block="    split: {hashKey: x-user-id}\n"
                "    steps: [{weight: 50, hold: 1h}]\n"
                "    analysis: {interval: 1s, minRequests: 1, checks: {errorRate: {max: 0.05}}}\n",
            ),
            "canary hp2 v21",
        )
        assert wait_for(lambda: person.remote_log()[0].startswith("rollouts: revert hp2"),
                        WAIT_S, 0.3), controller.status()
        message = git(person.remote, "log", "-1", "--format=%B", "main")
        assert f"This reverts commit {started}." in message
        assert "Rollouts-Reverted-Version: 21" in message
        assert "failed to load" in message, message
        assert person.remote_file("rollouts/hp2.yaml") == spec(stable=1).rstrip("\n")
        git(person.clone, "fetch", "-q", "origin", "+refs/notes/*:refs/notes/*")
        journal = git(person.clone, "notes", "--ref=rollouts", "show", started)
        assert "verdict: Analysis failed" in journal and "failed to load" in journal
        assert "started" not in journal  # never judged: it never became ready
        # The failed version is unloaded again, the stable one keeps its label.
        assert wait_for(lambda: 21 not in statuses(server) or statuses(server)[21][0] == END,
                        WAIT_S, 0.2)
        assert predict(server) == (200, [2.5])
    finally:
        controller.stop()
        traffic.stop()
    assert traffic.statuses[200] > 0
    assert set(traffic.statuses) == {200}, traffic.statuses
    assert set(traffic.versions) == {"1"}, traffic.versions


def test_controller_reverts_a_canary_that_never_becomes_ready(
    env: dict[str, Any], make_model: Any
) -> None:
    # An empty version dir is never aspired (it looks half-copied), so no load
    # error ever comes: the canary's progressDeadline fails it instead.
    server: ServerProcess = env["server"]
    corrupt_version(env["models"] / "hp2", 23, make_model, empty_dir)
    person, controller = start_controller(env, "git-deadline", "state-deadline", deadline_s=5)
    try:
        assert wait_for(lambda: controller.status()["inSync"], WAIT_S, 0.2), controller.status()
        started = person.write(
            "rollouts/hp2.yaml",
            spec(
                stable=1,
                canary=23,
                canary_block="    progressDeadline: 3s\n"
                "    split: {hashKey: x-user-id}\n"
                "    steps: [{weight: 50, hold: 1h}]\n",
            ),
            "canary hp2 v23",
        )
        assert wait_for(lambda: person.remote_log()[0].startswith("rollouts: revert hp2"),
                        WAIT_S, 0.3), controller.status()
        message = git(person.remote, "log", "-1", "--format=%B", "main")
        assert f"This reverts commit {started}." in message
        assert "not ready within progressDeadline 3s" in message, message
        assert predict(server) == (200, [2.5])
    finally:
        controller.stop()


def start_controller(
    env: dict[str, Any], git_dir: str, state_dir: str, *, deadline_s: float
) -> tuple[Person, Controller]:
    """A person's remote serving hp2 at v1 and a running controller on the module's server."""
    server: ServerProcess = env["server"]
    root: Path = env["root"]
    (root / git_dir).mkdir()
    person = Person(root / git_dir)
    person.write("rollouts/hp2.yaml", spec(stable=1), "hp2 at v1")
    controller = Controller(
        ControllerSettings(
            repo=person.url,
            model_root=str(env["models"]),
            targets=[TargetAddress("s0", server.address, server.rest_url)],
            state_dir=root / state_dir,
            poll_interval_s=0.5,
            reconcile_interval_s=0.25,
            reconcile_deadline_s=deadline_s,
        )
    )
    controller.start()
    return person, controller
