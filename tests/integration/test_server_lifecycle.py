"""One real server, many behaviours: versions appear and go, policies, reload rules, labels.

Talks to `python -m serving` with the real tensorflow_serving.apis stubs and
httpx, using SavedModels made with TensorFlow. Each test uses its own model
names and sends complete configs, so the tests do not depend on each other's order.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import text_format
from tensorflow_serving.apis import get_model_status_pb2, model_management_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving.generated import rollouts_serving_pb2 as rpb
from tests.conftest import ServerProcess, serving
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END
POLL_S = 0.2
WAIT_S = 30.0


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, make_model: Any) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("lifecycle")
    make_model(root / "hp", 1)
    config_path = root / "models.config"
    config_path.write_text(
        f'model_config_list {{ config {{ name: "hp" base_path: "{root / "hp"}" '
        f'model_platform: "tensorflow" }} }}\n'
    )
    with serving(
        [
            f"--model_config_file={config_path}",
            f"--file_system_poll_wait_seconds={POLL_S}",
            "--reload_config_timeout_seconds=3",
            "--max_num_load_retries=0",
        ],
        root / "server.log",
    ) as server:
        yield {"root": root, "server": server}


def model_config(name: str, base: Path, *, policy: str = "", **labels: int) -> Any:
    config = model_server_config_pb2.ModelConfig(
        name=name, base_path=str(base), model_platform="tensorflow"
    )
    if policy:
        text_format.Merge(policy, config.model_version_policy)
    config.version_labels.update(labels)
    return config


def reload(server: ServerProcess, *configs: Any) -> tuple[grpc.StatusCode, str, Any]:
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.extend(configs)
    try:
        response, call = server.model_stub().HandleReloadConfigRequest.with_call(
            request, timeout=WAIT_S
        )
        return call.code(), call.details() or "", response
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or "", None


def states(server: ServerProcess, name: str) -> dict[int, int]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    try:
        response = server.model_stub().GetModelStatus(request, timeout=5)
    except grpc.RpcError:
        return {}
    return {s.version: s.state for s in response.model_version_status}


def test_new_version_loads_and_removed_version_unloads(env: dict[str, Any], make_model: Any):
    server, root = env["server"], env["root"]
    base = root / "hp"
    make_model(base, 2, offset=3.0)
    assert wait_for(lambda: states(server, "hp") == {2: AVAILABLE, 1: END}, WAIT_S)
    shutil.rmtree(base / "2")  # latest{1} falls back to version 1
    assert wait_for(lambda: states(server, "hp") == {2: END, 1: AVAILABLE}, WAIT_S)

    reply = httpx.get(f"{server.rest_url}/v1/models/hp/versions/1", timeout=5)
    assert reply.status_code == 200
    assert json.loads(reply.text) == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE",
             "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    missing = httpx.get(f"{server.rest_url}/v1/models/hp/versions/9", timeout=5)
    assert (missing.status_code, missing.json()) == (
        404, {"error": "Could not find version 9 of model hp"}
    )


def test_version_policies_latest_all_specific(env: dict[str, Any], make_model: Any):
    server, root = env["server"], env["root"]
    base = root / "pol"
    for version in (1, 2, 3):
        make_model(base, version)
    hp = model_config("hp", root / "hp")
    for policy, expected in [
        ("all {}", {1, 2, 3}),
        ("specific { versions: 1 versions: 3 }", {1, 3}),
        ("latest { num_versions: 2 }", {2, 3}),
    ]:
        code, details, _ = reload(server, hp, model_config("pol", base, policy=policy))
        assert code == grpc.StatusCode.OK, details

        def available(want: set[int] = expected) -> bool:
            return {v for v, s in states(server, "pol").items() if s == AVAILABLE} == want

        assert wait_for(available, WAIT_S), (policy, states(server, "pol"))


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (lambda root: [model_config("hp", root / "hp")], grpc.StatusCode.INVALID_ARGUMENT,
         "Illegal to list model hp multiple times in config list"),
        (lambda root: [model_config("rel", Path("relative/dir"))],
         grpc.StatusCode.INVALID_ARGUMENT,
         "Expected model rel to have an absolute path or URI; got base_path()=relative/dir"),
        (lambda root: [model_server_config_pb2.ModelConfig(
            name="odd", base_path=str(root / "odd"), model_platform="pytorch")],
         grpc.StatusCode.INVALID_ARGUMENT, "Model odd requests unsupported platform pytorch"),
    ],
)
def test_reload_validation_errors(env: dict[str, Any], extra: Any, code: Any, message: str):
    server, root = env["server"], env["root"]
    got_code, details, _ = reload(server, model_config("hp", root / "hp"), *extra(root))
    assert (got_code, details) == (code, message)


def test_platform_change_is_refused(env: dict[str, Any]):
    server, root = env["server"], env["root"]
    changed = model_server_config_pb2.ModelConfig(
        name="hp", base_path=str(root / "hp"), model_platform="pytorch"
    )
    code, details, _ = reload(server, changed)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == (
        "Illegal to change a model's platform. For model hp platform was tensorflow "
        "and new platform requested is pytorch"
    )


def test_label_rules(env: dict[str, Any], make_model: Any):
    server, root = env["server"], env["root"]
    base = root / "lab"
    make_model(base, 1)
    hp = model_config("hp", root / "hp")
    code, details, _ = reload(server, hp, model_config("lab", base, stable=1))
    assert code == grpc.StatusCode.OK, details
    code, details, response = reload(server, hp, model_config("lab", base, stable=1, canary=5))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert details == (
        "Request to assign label to version 5 of model lab, which is not currently "
        "available for inference"
    )
    reply = httpx.get(f"{server.rest_url}/v1/models/lab/labels/stable", timeout=5)
    assert reply.json()["model_version_status"][0]["version"] == "1"
    reply = httpx.get(f"{server.rest_url}/v1/models/lab/labels/canary", timeout=5)
    assert (reply.status_code, reply.json()) == (
        400, {"error": "Unrecognized servable version label: canary"}
    )


def test_labels_for_unavailable_versions_with_the_flag(
    tmp_path: Path, make_model: Any, start_server: Any
) -> None:
    # --allow_version_labels_for_unavailable_models: a new label may name a version
    # that is not loaded yet (it is served once it is); moving one still may not.
    base = tmp_path / "lab"
    make_model(base, 1)
    empty = tmp_path / "empty.conf"
    empty.write_text("model_config_list {}\n")
    server = start_server("--allow_version_labels_for_unavailable_models",
                          f"--model_config_file={empty}",
                          f"--file_system_poll_wait_seconds={POLL_S}")
    all_versions = "all {}"
    code, details, _ = reload(server, model_config("lab", base, policy=all_versions,
                                                   stable=1, canary=2))
    assert code == grpc.StatusCode.OK, details
    reply = httpx.get(f"{server.rest_url}/v1/models/lab/labels/canary", timeout=5)
    assert reply.status_code == 404, reply.text  # the label is there; version 2 is not
    code, details, _ = reload(server, model_config("lab", base, policy=all_versions,
                                                   stable=2, canary=2))
    assert code == grpc.StatusCode.FAILED_PRECONDITION, details  # stable would move
    make_model(base, 2)
    assert wait_for(lambda: httpx.post(
        f"{server.rest_url}/v1/models/lab/labels/canary:predict", json={"instances": [2.0]},
        timeout=5).status_code == 200, WAIT_S)


def test_reload_deadline_and_failed_load_name_model_and_version(
    env: dict[str, Any], make_model: Any
):
    server, root = env["server"], env["root"]
    hp = model_config("hp", root / "hp")
    # Five warmup calls (one of each record kind; multi-inference runs two) of 2 s
    # each make the load far slower than the 3 s reload deadline.
    make_model(root / "slow", 7, slow_seconds=2.0, warmup=True)
    code, details, _ = reload(server, hp, model_config("slow", root / "slow"))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "name: slow version: 7" in details

    make_model(root / "broken", 4, fail_above=0.5, warmup=True)  # warmup fails the load
    code, details, response = reload(server, hp, model_config("broken", root / "broken"))
    assert code == grpc.StatusCode.UNKNOWN
    assert "{name: broken version: 4} due to error: INVALID_ARGUMENT" in details
    assert response is None or response.status.error_code != 0
    assert wait_for(lambda: states(server, "hp").get(1) == AVAILABLE, WAIT_S)


def test_get_model_status_errors(env: dict[str, Any]):
    stub = env["server"].model_stub()
    cases = [
        (get_model_status_pb2.GetModelStatusRequest(), grpc.StatusCode.INVALID_ARGUMENT,
         "Missing ModelSpec"),
        (text_format.Parse('model_spec { name: "nope" }',
                           get_model_status_pb2.GetModelStatusRequest()),
         grpc.StatusCode.NOT_FOUND, "Could not find any versions of model nope"),
        (text_format.Parse('model_spec { name: "hp" version { value: 42 } }',
                           get_model_status_pb2.GetModelStatusRequest()),
         grpc.StatusCode.NOT_FOUND, "Could not find version 42 of model hp"),
    ]
    for request, code, message in cases:
        with pytest.raises(grpc.RpcError) as err:
            stub.GetModelStatus(request, timeout=5)
        assert (err.value.code(), err.value.details()) == (code, message)


def test_extension_service(env: dict[str, Any]):
    server, root = env["server"], env["root"]
    code, details, _ = reload(server, model_config("hp", root / "hp", stable=1))
    assert code == grpc.StatusCode.OK, details
    stub = server.rollout_stub()
    stub.SetTransitionPolicy(
        rpb.SetTransitionPolicyRequest(model_name="hp", policy=rpb.RESOURCE_PRESERVING),
        timeout=5,
    )
    config = stub.GetConfig(rpb.GetConfigRequest(), timeout=5)
    parsed = text_format.Parse(
        config.model_server_config, model_server_config_pb2.ModelServerConfig()
    )
    assert [m.name for m in parsed.model_config_list.config] == ["hp"]
    assert dict(parsed.model_config_list.config[0].version_labels) == {"stable": 1}
    assert config.transition_policies["hp"] == rpb.RESOURCE_PRESERVING
    listing = stub.ListModels(rpb.ListModelsRequest(), timeout=5)
    (info,) = [m for m in listing.models if m.name == "hp"]
    assert info.platform == "tensorflow" and dict(info.labels) == {"stable": 1}
    assert any(v.version == 1 and v.state == "AVAILABLE" for v in info.versions)
    with pytest.raises(grpc.RpcError) as err:  # no canary label: refused
        stub.SetSplit(rpb.SetSplitRequest(split=rpb.Split(model_name="hp", canary_weight_bp=10)),
                      timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
