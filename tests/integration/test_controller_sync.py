"""GitOps sync end to end: a bare remote, a person's clone, two real servers, the controller."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_management_pb2

from controller.cli.main import main as cli_main
from controller.decide.fleet import TargetAddress
from controller.runtime.runner import Controller, ControllerSettings
from controller.runtime.webhook import signature
from serving.generated import rollouts_serving_pb2 as ext
from tests.conftest import ServerProcess, polling_flags
from tests.gitops import Person, git, spec
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

@pytest.fixture
def fleet(tmp_path: Path, shared_servers: Any, server_pool: Any, make_model: Any,
          ) -> dict[str, Any]:
    """Two servers that start with no models (the pool's, emptied for each test;
    one a test stopped is replaced), v1 and v2 of hp2 and a person's remote."""
    root = tmp_path / "models"
    make_model(root / "hp2", 1)
    make_model(root / "hp2", 2, offset=3.0)
    flags = polling_flags(server_pool.workdir)
    servers = shared_servers(flags, 2)
    person = Person(tmp_path)
    return {"root": root, "servers": servers, "person": person, "flags": flags}


def settings(fleet: dict[str, Any], tmp_path: Path, **extra: Any) -> ControllerSettings:
    servers: list[ServerProcess] = fleet["servers"]
    return ControllerSettings(
        repo=fleet["person"].url,
        model_root=str(fleet["root"]),
        targets=[TargetAddress(f"s{i}", s.address) for i, s in enumerate(servers)],
        state_dir=tmp_path / "state",
        reconcile_deadline_s=60,
        **extra,
    )


def label_version(server: ServerProcess, model: str, label: str) -> int | None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    request.model_spec.version_label = label
    try:
        reply = server.model_stub().GetModelStatus(request, timeout=5)
    except grpc.RpcError:
        return None
    return reply.model_version_status[0].version


def model_info(server: ServerProcess, model: str) -> ext.ModelInfo | None:
    for info in server.rollout_stub().ListModels(ext.ListModelsRequest(), timeout=5).models:
        if info.name == model:
            return info
    return None


def test_specs_reach_every_target_and_follow_git(fleet: dict[str, Any], tmp_path: Path) -> None:
    person: Person = fleet["person"]
    servers: list[ServerProcess] = fleet["servers"]
    person.write("rollouts/hp2.yaml", spec(stable=1), "hp2 at v1")
    controller = Controller(settings(fleet, tmp_path))
    try:
        assert controller.run_once()
        for server in servers:
            assert label_version(server, "hp2", "stable") == 1
            reply = httpx.get(f"{server.rest_url}/v1/models/hp2/labels/stable", timeout=5)
            assert reply.json()["model_version_status"][0]["version"] == "1"

        # A canary bump: loaded, labelled and split on both targets.
        person.write("rollouts/hp2.yaml", spec(stable=1, canary=2), "canary hp2 v2")
        assert controller.run_once()
        for server in servers:
            assert label_version(server, "hp2", "canary") == 2
            info = model_info(server, "hp2")
            assert info is not None and info.has_split
            assert info.split.canary_weight_bp == 5000 and info.split.hash_key == "x-user-id"
        status = controller.status()
        assert status["inSync"] and status["commitApplied"] == person.remote_head()
        assert status["models"]["hp2"]["canary"] == 2
        assert status["models"]["hp2"]["commitApplied"] == person.remote_head()

        # An invalid spec changes nothing and is reported with file:line and commit.
        bad = spec(stable=1, canary=2).replace("stable: 1", "stabel: 1")
        bad_commit = person.write("rollouts/hp2.yaml", bad, "typo")
        assert not controller.run_once()
        errors = controller.status()["specErrors"]
        assert f"commit {bad_commit[:12]}: rollouts/hp2.yaml:7:3: error: unknown field " \
            "'stabel'; did you mean 'stable'?" in errors
        for server in servers:
            assert label_version(server, "hp2", "canary") == 2

        # Removing the spec removes the model from the servers.
        fixed = person.write("rollouts/hp2.yaml", spec(stable=1, canary=2), "fix typo")
        assert controller.run_once()
        assert controller.status()["models"]["hp2"]["commitApplied"] == fixed
        person.write("rollouts/other.yaml", spec(name="other", stable=1).replace(
            "model: {name: other}", "model: {name: other, basePath: hp2}"), "add other")
        person.remove("rollouts/hp2.yaml", "drop hp2")
        assert controller.run_once()
        for server in servers:
            assert model_info(server, "hp2") is None
            assert label_version(server, "other", "stable") == 1
    finally:
        controller.stop()


def test_drift_and_restarts_converge(
    fleet: dict[str, Any], tmp_path: Path, start_server: Any
) -> None:
    person: Person = fleet["person"]
    servers: list[ServerProcess] = fleet["servers"]
    person.write("rollouts/hp2.yaml", spec(stable=1, canary=2), "canary")
    # A running controller: nobody calls reconcile; its own jobs and backoff act.
    controller = Controller(settings(fleet, tmp_path, poll_interval_s=0.5,
                                     reconcile_interval_s=0.5))
    controller.start()

    def converged(server: ServerProcess) -> bool:
        info = model_info(server, "hp2")
        return (label_version(server, "hp2", "canary") == 2 and info is not None
                and info.has_split and info.split.canary_weight_bp == 5000)

    try:
        assert wait_for(lambda: all(converged(s) for s in servers), 60, 0.2), controller.status()
        # Someone hand-edits a server: drops the canary, its labels and the split.
        request = model_management_pb2.ReloadConfigRequest()
        model = request.config.model_config_list.config.add()
        model.name, model.base_path, model.model_platform = (
            "hp2", str(fleet["root"] / "hp2"), "tensorflow",
        )
        model.model_version_policy.specific.versions.append(1)
        servers[0].rollout_stub().ClearSplit(ext.ClearSplitRequest(model_name="hp2"))
        servers[0].model_stub().HandleReloadConfigRequest(request, timeout=30)
        assert wait_for(lambda: converged(servers[0]), 60, 0.2), controller.status()

        # A server killed: reported unreachable; restarted empty on the same
        # ports, it converges again without anyone acting.
        port, rest_port = servers[1].port, servers[1].rest_port
        servers[1].proc.kill()
        servers[1].proc.wait(timeout=10)
        assert wait_for(lambda: any(
            f["target"] == "s1" and "unreachable" in f["message"]
            for f in controller.status()["findings"]), 30, 0.2), controller.status()
        restarted = start_server(*fleet["flags"], port=port, rest_port=rest_port)
        assert wait_for(lambda: converged(restarted) and controller.status()["inSync"], 60, 0.2), (
            controller.status())
    finally:
        controller.stop()


def test_plan_reports_pending_changes_then_none(
    fleet: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    person: Person = fleet["person"]
    servers: list[ServerProcess] = fleet["servers"]
    person.write("rollouts/hp2.yaml", spec(stable=1), "hp2")
    args = [
        "plan", "--repo", person.url, "--model-root", str(fleet["root"]),
        "--state-dir", str(tmp_path / "plan-state"),
        *[f"--target=s{i}={s.address}" for i, s in enumerate(servers)],
    ]
    assert cli_main(args + ["--json"]) == 2
    pending = json.loads(capsys.readouterr().out)
    assert {a["target"] for a in pending["actions"]} == {"s0", "s1"}
    controller = Controller(settings(fleet, tmp_path))
    try:
        assert controller.run_once()
    finally:
        controller.stop()
    assert cli_main(args[:5] + ["--state-dir", str(tmp_path / "plan-2")] + args[7:]) == 0
    assert "in sync: no changes" in capsys.readouterr().out

    # A canary whose version the controller reverted before is held out of
    # traffic: nothing to apply, and still no green (exit 3, saying why).
    git(person.clone, "commit", "-q", "--allow-empty", "-m",
        "rollouts: revert hp2 canary 2\n\nRollouts-Model: hp2\nRollouts-Verdict: fail\n"
        "Rollouts-Reverted-Version: 2\n")
    person.write("rollouts/hp2.yaml", spec(stable=1, canary=2), "hp2 v2 again")
    assert cli_main(args[:5] + ["--state-dir", str(tmp_path / "plan-3")] + args[7:]) == 3
    out = capsys.readouterr().out
    assert "✗ hp2: canary 2 blocked: version 2 was auto-reverted before" in out
    assert "not in sync: 1 canary(ies) held back (hp2)" in out
    assert "in sync: no changes" not in out
    person.write("rollouts/hp2.yaml", spec(stable=1), "back to v1 alone")

    # A target that cannot be observed: exit 3 naming it, never "in sync".
    servers[1].stop()
    assert cli_main(args[:5] + ["--state-dir", str(tmp_path / "plan-4")] + args[7:]
                    + ["--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["unobserved"] == ["s1"] and not report["in_sync"]
    assert report["exit_code"] == 3
    assert cli_main(args[:5] + ["--state-dir", str(tmp_path / "plan-5")] + args[7:]) == 3
    out = capsys.readouterr().out
    assert "! s1: target unreachable" in out
    assert "not in sync: 1 target(s) could not be observed (s1)" in out


def test_webhook_triggers_fetch_and_refuses_forgeries(
    fleet: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    person: Person = fleet["person"]
    from tests.helpers import free_port

    first = person.write("rollouts/hp2.yaml", spec(stable=1), "hp2")
    listen = f"127.0.0.1:{free_port()}"
    controller = Controller(
        settings(fleet, tmp_path, poll_interval_s=3600, listen=listen, webhook_secret=b"s3cret")
    )
    thread = threading.Thread(
        target=controller.serve_forever, kwargs={"install_signals": False}, daemon=True
    )
    thread.start()
    url = f"http://{listen}"
    try:
        assert wait_for(lambda: _get_status(url).get("commitSeen") == first, 60, 0.2)
        second = person.write("rollouts/hp2.yaml", spec(stable=1, canary=2), "canary")
        body = b'{"ref": "refs/heads/main"}'
        forged = httpx.post(f"{url}/webhook", content=body,
                            headers={"X-Hub-Signature-256": signature(b"wrong", body)})
        assert forged.status_code == 401
        missing = httpx.post(f"{url}/webhook", content=body)
        assert missing.status_code == 401
        assert _get_status(url)["commitSeen"] == first
        good = httpx.post(f"{url}/webhook", content=body,
                          headers={"X-Hub-Signature-256": signature(b"s3cret", body)})
        assert good.status_code == 202
        assert wait_for(lambda: _get_status(url).get("commitSeen") == second, 30, 0.1)
        capsys.readouterr()
        assert cli_main(["status", "--controller", url, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["commitSeen"] == second
        assert cli_main(["status", "--controller", url]) == 0
        table = capsys.readouterr().out
        assert "hp2" in table and second[:12] in table
        assert cli_main(["status", "--controller", "http://127.0.0.1:9"]) == 2
    finally:
        controller._stop.set()
        thread.join(timeout=30)


def _get_status(url: str) -> dict[str, Any]:
    try:
        return dict(httpx.get(f"{url}/status", timeout=5).json())
    except httpx.HTTPError:
        return {}
