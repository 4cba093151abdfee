"""Zero models: once git holds no spec, every model the controller put on a real server
is unloaded, and `rollouts plan` says so first.

The pushed ModelServerConfig must carry an empty `model_config_list`: an unset one is
"take no action" to TF Serving and to our server, and the fleet would never converge.
Two ways to get there: every spec removed (git drops the folder with its last file),
and a specs folder that keeps only a `.gitkeep`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.cli.main import main as cli_main
from controller.decide.fleet import TargetAddress
from controller.runtime.runner import Controller, ControllerSettings
from serving.generated import rollouts_serving_pb2 as ext
from tests.conftest import ServerProcess, polling_flags, wait_for
from tests.gitops import Person, git, spec

pytestmark = pytest.mark.integration


@pytest.fixture
def fleet(tmp_path: Path, shared_servers: Any, server_pool: Any, make_model: Any,
          ) -> dict[str, Any]:
    root = tmp_path / "models"
    make_model(root / "hp2", 1)
    make_model(root / "other", 1)
    server = shared_servers(polling_flags(server_pool.workdir), 1)[0]
    return {"root": root, "server": server, "person": Person(tmp_path)}


def served(server: ServerProcess) -> list[str]:
    listing = server.rollout_stub().ListModels(ext.ListModelsRequest(), timeout=5)
    return sorted(info.name for info in listing.models)


def remote_files(person: Person) -> list[str]:
    return git(person.remote, "ls-tree", "-r", "--name-only", "main").splitlines()


@pytest.mark.parametrize("emptied", ["removed", "gitkeep"])
def test_no_spec_left_unloads_every_model(
    fleet: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], emptied: str
) -> None:
    person: Person = fleet["person"]
    server: ServerProcess = fleet["server"]
    person.write("rollouts/hp2.yaml", spec(stable=1), "hp2 at v1")
    person.write("rollouts/other.yaml", spec(name="other", stable=1), "other at v1")
    if emptied == "gitkeep":
        person.write("rollouts/.gitkeep", "", "keep the folder")
    settings = ControllerSettings(
        repo=person.url,
        model_root=str(fleet["root"]),
        targets=[TargetAddress("s0", server.address)],
        state_dir=tmp_path / "state",
        reconcile_deadline_s=60,
    )
    controller = Controller(settings)
    try:
        assert controller.run_once()
        assert served(server) == ["hp2", "other"]

        person.remove("rollouts/hp2.yaml", "drop hp2")
        person.remove("rollouts/other.yaml", "drop other: nothing left to serve")
        left = [] if emptied == "removed" else ["rollouts/.gitkeep"]
        assert remote_files(person) == left

        # `rollouts plan` says it first: one reload that unloads both models.
        args = ["plan", "--repo", person.url, "--model-root", str(fleet["root"]),
                "--state-dir", str(tmp_path / "plan-state"), f"--target=s0={server.address}"]
        assert cli_main(args) == 2
        out = capsys.readouterr().out
        assert "s0: reload config [no models: unload hp2, other]" in out, out
        assert "hp2: not in git" in out and "other: not in git" in out
        assert served(server) == ["hp2", "other"]  # plan changed nothing

        assert wait_for(controller.run_once, 60, 0.2), controller.status()
        assert served(server) == []
        status = controller.status()
        assert status["inSync"] and status["models"] == {} and status["specErrors"] == []
        assert status["commitApplied"] == person.remote_head()
        assert cli_main(args[:5] + ["--state-dir", str(tmp_path / "plan-2")] + args[7:]) == 0
        assert "in sync: no changes" in capsys.readouterr().out
    finally:
        controller.stop()


def test_a_specs_folder_that_never_existed_is_an_error_not_zero_models(
    fleet: dict[str, Any], tmp_path: Path
) -> None:
    person: Person = fleet["person"]
    server: ServerProcess = fleet["server"]
    person.write("rollouts/hp2.yaml", spec(stable=1), "hp2 at v1")
    settings = ControllerSettings(
        repo=person.url,
        model_root=str(fleet["root"]),
        targets=[TargetAddress("s0", server.address)],
        state_dir=tmp_path / "state",
        specs_dir="rollout",  # a typo: fail closed, never "serve nothing"
    )
    controller = Controller(settings)
    try:
        assert not controller.run_once()
        assert "'rollout' not found" in " ".join(controller.status()["specErrors"])
        assert served(server) == []  # nothing was pushed either way
    finally:
        controller.stop()
