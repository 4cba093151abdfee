"""TF Serving's REST inference API against the real server process, over real HTTP.

One server for the module with a REST deadline of REST_TIMEOUT_MS:
- `hp`: versions 1 (0.5x+2) and 2 (0.5x+3), labels stable=1, canary=2;
- `latest`: the same two versions, no labels (the default is the highest);
- `sp`: like `hp`, for the split test;
- `slow`: one version that takes SLOW_S per request, longer than the deadline.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tensorflow.core.example import example_pb2, feature_pb2

from serving.generated import rollouts_serving_pb2 as rpb
from serving.routing import bucket
from tests.conftest import ServerProcess, serving

pytestmark = pytest.mark.integration

REST_TIMEOUT_MS = 1500
SLOW_S = 3.0
TIMEOUT_S = 60.0


def model_config(root: Path, name: str, labels: bool) -> str:
    text = (f'config {{ name: "{name}" base_path: "{root / name}" model_platform: "tensorflow"'
            " model_version_policy { all {} }")
    if labels:
        text += ' version_labels { key: "stable" value: 1 }'
        text += ' version_labels { key: "canary" value: 2 }'
    return text + " }\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, make_model: Any) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("dataplane-rest")
    for name in ("hp", "latest", "sp"):
        make_model(root / name, 1)
        make_model(root / name, 2, offset=3.0)
    make_model(root / "slow", 1, slow_seconds=SLOW_S)
    make_model(root / "two", 1, two_outputs=True)
    config = root / "models.config"
    config.write_text("model_config_list {\n" + model_config(root, "hp", True)
                      + model_config(root, "latest", False) + model_config(root, "sp", True)
                      + model_config(root, "slow", False) + model_config(root, "two", False)
                      + "}\n")
    with serving([f"--model_config_file={config}",
                  f"--rest_api_timeout_in_ms={REST_TIMEOUT_MS}"], root / "server.log") as proc:
        yield proc


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.rest_url, timeout=TIMEOUT_S) as client:
        yield client


def served(reply: httpx.Response) -> tuple[str, str]:
    return reply.headers["X-Model-Version"], reply.headers["X-Model-Label"]


def example_b64(x: float) -> str:
    ex = example_pb2.Example(features=feature_pb2.Features(feature={
        "x": feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[x]))}))
    return base64.b64encode(ex.SerializeToString()).decode()


# ------------------------------------------------------- exact TF outputs


@pytest.mark.parametrize(("verb", "body", "expected"), [
    ("predict", {"instances": [2.0, 3.0, 4.0]}, '{"predictions": [3.0, 3.5, 4.0]}'),
    ("predict", {"inputs": [2.0, 3.0, 4.0]}, '{"outputs": [3.0, 3.5, 4.0]}'),
    ("predict", {"inputs": {"x": [2.0, 3.0, 4.0]}}, '{"outputs": [3.0, 3.5, 4.0]}'),
    ("classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]},
     '{"results": [[["", 3.0]]]}'),
    ("regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]},
     '{"results": [3.0]}'),
])
def test_half_plus_two_exact_outputs(http: httpx.Client, verb: str, body: dict[str, Any],
                                     expected: str) -> None:
    reply = http.post(f"/v1/models/hp/versions/1:{verb}", json=body)
    assert reply.status_code == 200, reply.text
    assert reply.text == expected
    assert reply.headers["content-type"] == "application/json"
    assert served(reply) == ("1", "")


def test_b64_strings_reach_a_string_signature(http: httpx.Client) -> None:
    body = {"signature_name": "classify_x_to_y",
            "instances": [{"b64": example_b64(2.0)}, {"b64": example_b64(4.0)}]}
    reply = http.post("/v1/models/hp/versions/1:predict", json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"predictions": [[3.0], [4.0]]}
    columnar = {"signature_name": "regress_x_to_y", "inputs": [{"b64": example_b64(6.0)}]}
    reply = http.post("/v1/models/hp/versions/1:predict", json=columnar)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"outputs": [[5.0]]}


def test_metadata(http: httpx.Client) -> None:
    reply = http.get("/v1/models/hp/versions/2/metadata")
    assert reply.status_code == 200, reply.text
    doc = reply.json()
    assert doc["model_spec"] == {"name": "hp", "signature_name": "", "version": "2"}
    defs = doc["metadata"]["signature_def"]["signature_def"]
    assert defs["serving_default"]["method_name"] == "tensorflow/serving/predict"
    assert defs["serving_default"]["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert defs["classify_x_to_y"]["method_name"] == "tensorflow/serving/classify"
    assert defs["regress_x_to_y"]["outputs"]["outputs"]["dtype"] == "DT_FLOAT"
    assert served(reply) == ("2", "")
    assert served(http.get("/v1/models/hp/labels/canary/metadata")) == ("2", "canary")


def test_list_models(http: httpx.Client) -> None:
    reply = http.get("/v1/models")
    assert reply.status_code == 200, reply.text
    models = {m["name"]: m for m in reply.json()["models"]}
    assert set(models) == {"hp", "latest", "sp", "slow", "two"}
    assert models["hp"]["labels"] == {"stable": "1", "canary": "2"}
    assert [(v["version"], v["state"]) for v in models["latest"]["versions"]] == [
        ("2", "AVAILABLE"), ("1", "AVAILABLE")]
    assert models["hp"]["platform"] == "tensorflow"


def test_several_outputs_are_objects_in_both_formats(http: httpx.Client) -> None:
    # One output is a bare value per row; several are an object per row (row
    # format) or one list per output (columnar), as TF Serving writes them.
    rows = http.post("/v1/models/two:predict",
                     json={"signature_name": "two_outputs", "instances": [1.0, 2.0]})
    assert rows.json() == {"predictions": [{"double": 2.0, "y": 2.5}, {"double": 4.0, "y": 3.0}]}
    columns = http.post("/v1/models/two:predict",
                        json={"signature_name": "two_outputs", "inputs": [1.0, 2.0]})
    assert columns.json() == {"outputs": {"double": [2.0, 4.0], "y": [2.5, 3.0]}}


# -------------------------------------------------------- versions, labels


@pytest.mark.parametrize(("path", "version", "label", "y"), [
    ("/v1/models/hp:predict", "1", "stable", 3.0),  # the stable label when no split
    ("/v1/models/latest:predict", "2", "", 4.0),  # no labels: the highest version
    ("/v1/models/hp/versions/2:predict", "2", "", 4.0),
    ("/v1/models/hp/labels/canary:predict", "2", "canary", 4.0),
    ("/v1/models/hp/labels/stable:predict", "1", "stable", 3.0),
])
def test_versions_and_labels(http: httpx.Client, path: str, version: str, label: str,
                             y: float) -> None:
    reply = http.post(path, json={"instances": [2.0]})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"predictions": [y]}
    assert served(reply) == (version, label)


@pytest.mark.parametrize(("path", "version", "label", "y"), [
    ("/v1/models/hp/versions/2:classify", "2", "", [[["", 4.0]]]),
    ("/v1/models/hp/labels/canary:classify", "2", "canary", [[["", 4.0]]]),
    ("/v1/models/hp/labels/stable:regress", "1", "stable", [3.0]),
    ("/v1/models/hp/versions/2:regress", "2", "", [4.0]),
])
def test_classify_and_regress_by_version_and_label(http: httpx.Client, path: str, version: str,
                                                   label: str, y: list[Any]) -> None:
    verb = path.rsplit(":", 1)[1]
    body = {"signature_name": f"{verb}_x_to_y", "examples": [{"x": 2.0}]}
    reply = http.post(path, json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"results": y}
    assert served(reply) == (version, label)


# ------------------------------------------------------------------- errors


@pytest.mark.parametrize(("method", "path", "body", "status", "error"), [
    ("POST", "/v1/models/nope:predict", b'{"instances": [2.0]}', 404,
     "Servable not found for request: Latest(nope)"),
    ("POST", "/v1/models/hp/versions/9:predict", b'{"instances": [2.0]}', 404,
     "Servable not found for request: Specific(hp, 9)"),
    ("POST", "/v1/models/hp/labels/nope:predict", b'{"instances": [2.0]}', 400,
     "Unrecognized servable version label: nope"),
    ("POST", "/v1/models/hp/versions/1/labels/stable:predict", b'{"instances": [2.0]}', 400,
     "Malformed request: POST /v1/models/hp/versions/1/labels/stable:predict"),
    ("POST", "/v1/models/hp:explain", b'{"instances": [2.0]}', 400,
     "Malformed request: POST /v1/models/hp:explain"),
    ("POST", "/v1/models/hp:predict", b'{"signature_name": "nope", "instances": [2.0]}', 400,
     'Serving signature name: "nope" not found in signature def'),
    ("POST", "/v1/models/hp:predict", b'{"instances": [2.0]', 400, None),
    ("POST", "/v1/models/hp:predict", b'{"instances": ["a"]}', 400, None),
    ("POST", "/v1/models/hp:predict", b'{"instances": [2.0], "inputs": [2.0]}', 400, None),
    ("POST", "/v1/models/hp:classify", b'{"signature_name": "nope", "examples": [{"x": 2}]}',
     400, "No signature was found with the name: nope"),
    ("POST", "/v1/models/hp:regress", b'{"signature_name": "regress_x_to_y"}', 400, None),
    ("GET", "/v1/models/nope/metadata", b"", 404,
     "Servable not found for request: Latest(nope)"),
    ("GET", "/v1/models/hp/versions/1/labels/stable/metadata", b"", 400,
     "Malformed request: GET /v1/models/hp/versions/1/labels/stable/metadata"),
    ("GET", "/v1/models/hp/versions/1/labels/stable", b"", 400,
     "Malformed request: GET /v1/models/hp/versions/1/labels/stable"),
    ("GET", "/v1/foo", b"", 400, "Malformed request: GET /v1/foo"),
    ("DELETE", "/v1/models/hp", b"", 400, "Malformed request: DELETE /v1/models/hp"),
    ("GET", "/v2/models/hp", b"", 404, "Malformed request: GET /v2/models/hp"),
])
def test_errors(http: httpx.Client, method: str, path: str, body: bytes, status: int,
                error: str | None) -> None:
    reply = http.request(method, path, content=body)
    assert reply.status_code == status, reply.text
    doc = reply.json()
    assert list(doc) == ["error"]
    if error is not None:
        assert doc["error"] == error


def test_classify_on_a_predict_signature_is_400(http: httpx.Client) -> None:
    reply = http.post("/v1/models/hp:classify", json={"examples": [{"x": 2.0}]})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"].startswith("No classification inputs found in SignatureDef: ")


def test_rest_timeout_is_enforced_as_504(http: httpx.Client) -> None:
    reply = http.post("/v1/models/slow:predict", json={"instances": [2.0]})
    assert reply.status_code == 504, reply.text
    assert "error" in reply.json()
    # The abandoned request does not wedge the server.
    assert http.post("/v1/models/hp:predict", json={"instances": [2.0]}).status_code == 200


# --------------------------------------------------------------- the split


def test_split_by_hash_header_and_header_match(server: ServerProcess,
                                               http: httpx.Client) -> None:
    split = rpb.Split(model_name="sp", canary_weight_bp=5000, hash_key="x-user-id", salt="r")
    split.match.add(header="x-canary", value="yes")
    server.rollout_stub().SetSplit(rpb.SetSplitRequest(split=split), timeout=TIMEOUT_S)
    try:
        keys = [f"u{i}" for i in range(30)]
        for key in keys:
            want = ("2", "canary") if bucket("r", key) < 5000 else ("1", "stable")
            for _ in range(2):  # sticky
                reply = http.post("/v1/models/sp:predict", json={"instances": [2.0]},
                                  headers={"X-User-Id": key})
                assert reply.status_code == 200, reply.text
                assert served(reply) == want, key
                assert reply.json() == {"predictions": [4.0 if want[0] == "2" else 3.0]}
        stable_key = next(k for k in keys if bucket("r", k) >= 5000)
        reply = http.post("/v1/models/sp:predict", json={"instances": [2.0]},
                          headers={"X-User-Id": stable_key, "X-Canary": "yes"})
        assert served(reply) == ("2", "canary")
        reply = http.post("/v1/models/sp/versions/1:predict", json={"instances": [2.0]},
                          headers={"X-Canary": "yes"})
        assert served(reply) == ("1", "")
    finally:
        server.rollout_stub().ClearSplit(rpb.ClearSplitRequest(model_name="sp"),
                                         timeout=TIMEOUT_S)
