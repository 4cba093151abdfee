"""Shadow scoring on the real server: real SavedModels, the real gRPC stubs and
REST, the shadow rate set with the split through our RolloutService, and the
rollouts_shadow_* series read from the Prometheus endpoint.

v1: y = 0.5x + 2 (stable); v2: the same model (identical answers); v3: 0.5x +
2.2, fast, OK and wrong; v4: like v1 but 5 s per call (a shadow that cannot
keep up, so its queue fills).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.protobuf import text_format
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import (
    classification_pb2,
    model_management_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from serving.generated import rollouts_serving_pb2 as pb
from tests.conftest import ServerProcess, serving, wait_for
from tests.grpc_requests import WAIT_S, predict_request

pytestmark = pytest.mark.integration

PATH = "/monitoring/prometheus/metrics"
SLOW_S = 5.0
QUEUE_CAPACITY = 256  # serving.shadow.DEFAULT_QUEUE_CAPACITY


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, make_model: Any) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("shadow")
    make_model(root / "hp", 1)
    make_model(root / "hp", 2)
    make_model(root / "hp", 3, offset=2.2)
    make_model(root / "hp", 4, slow_seconds=SLOW_S)
    config = root / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "hp" base_path: "{root / "hp"}" '
        'model_platform: "tensorflow" model_version_policy { all {} } '
        'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 3 } '
        "} }\n")
    monitoring = root / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true path: "{PATH}" }}\n')
    with serving([f"--model_config_file={config}", f"--monitoring_config_file={monitoring}"],
                 root / "server.log") as process:
        yield process


LOAD_WAIT_S = 120.0  # a loaded machine may take long to load a version; never a failure


def available(server: ServerProcess, version: int) -> bool:
    reply = httpx.get(f"{server.rest_url}/v1/models/hp/versions/{version}", timeout=WAIT_S)
    states = reply.json().get("model_version_status", []) if reply.is_success else []
    return any(s.get("state") == "AVAILABLE" for s in states)


def relabel(server: ServerProcess, canary: int) -> None:
    """Point the canary label at `canary` through ModelService, keeping the rest,
    once `canary` is AVAILABLE (the policy loads every version; a label may
    only name an available one)."""
    assert wait_for(lambda: available(server, canary), LOAD_WAIT_S, 0.2), (
        f"hp v{canary} never became AVAILABLE")
    reply = server.rollout_stub().GetConfig(pb.GetConfigRequest(), timeout=WAIT_S)
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(reply.model_server_config, config)
    config.model_config_list.config[0].version_labels["canary"] = canary
    request = model_management_pb2.ReloadConfigRequest(config=config)
    assert server.model_stub().HandleReloadConfigRequest(request, timeout=WAIT_S).status \
        .error_code == 0


def set_shadow(server: ServerProcess, sample: float, tolerance: float = 0.001) -> None:
    split = pb.Split(model_name="hp", canary_weight_bp=0, hash_key="x-user-id",
                     shadow=pb.Shadow(sample=sample, tolerance=tolerance))
    server.rollout_stub().SetSplit(pb.SetSplitRequest(split=split), timeout=WAIT_S)


def series(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(server.rest_url + PATH, timeout=WAIT_S).text
    body = text[text.index("# HELP rollouts_"):]
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def shadow_count(server: ServerProcess, version: int, outcome: str) -> float:
    key = (("baseline_version", "1"), ("model", "hp"), ("outcome", outcome),
           ("version", str(version)))
    return series(server).get(("rollouts_shadow_comparisons_total", key), 0.0)


def user_requests(server: ServerProcess, version: int) -> float:
    return sum(v for (name, labels), v in series(server).items()
               if name == "rollouts_requests_total" and ("version", str(version)) in labels)


def example_input(request: Any, x: float) -> None:
    request.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)


def every_api(server: ServerProcess, x: float) -> list[float]:
    """Predict, Classify and Regress over gRPC and REST; the users' answers."""
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel())
    md = (("x-user-id", "someone"),)
    answers = [stub.Predict(predict_request("hp", x), timeout=WAIT_S, metadata=md)
               .outputs["y"].float_val[0]]
    c = classification_pb2.ClassificationRequest()
    c.model_spec.name, c.model_spec.signature_name = "hp", "classify_x_to_y"
    example_input(c, x)
    answers.append(stub.Classify(c, timeout=WAIT_S, metadata=md)
                   .result.classifications[0].classes[0].score)
    r = regression_pb2.RegressionRequest()
    r.model_spec.name, r.model_spec.signature_name = "hp", "regress_x_to_y"
    example_input(r, x)
    answers.append(stub.Regress(r, timeout=WAIT_S, metadata=md).result.regressions[0].value)
    with httpx.Client(base_url=server.rest_url, timeout=WAIT_S,
                      headers={"x-user-id": "someone"}) as http:
        answers.append(http.post("/v1/models/hp:predict", json={"instances": [x]})
                       .json()["predictions"][0])
        classified = http.post("/v1/models/hp:classify", json={
            "signature_name": "classify_x_to_y", "examples": [{"x": x}]}).json()
        answers.append(classified["results"][0][0][1])
        answers.append(http.post("/v1/models/hp:regress", json={
            "signature_name": "regress_x_to_y", "examples": [{"x": x}]}).json()["results"][0])
    return answers


def test_a_wrong_canary_differs_on_every_api_and_answers_no_user(server: ServerProcess) -> None:
    set_shadow(server, 1.0)
    before = shadow_count(server, 3, "differs")
    answers = every_api(server, 4.0)
    assert answers == pytest.approx([4.0] * 6)  # v1's answers: the users never see v3
    assert wait_for(lambda: shadow_count(server, 3, "differs") == before + 6, WAIT_S)
    key = (("baseline_version", "1"), ("model", "hp"), ("version", "3"))
    values = series(server)
    mean = (values[("rollouts_shadow_abs_diff_total", key)]
            / values[("rollouts_shadow_elements_total", key)])
    assert mean == pytest.approx(0.2, abs=1e-5)
    assert user_requests(server, 3) == 0


def test_an_identical_canary_is_the_same_and_a_zero_rate_scores_nothing(
        server: ServerProcess) -> None:
    relabel(server, 2)
    set_shadow(server, 1.0, tolerance=0.0)
    assert every_api(server, 1.0) == pytest.approx([2.5] * 6)
    assert wait_for(lambda: shadow_count(server, 2, "same") == 6, WAIT_S)
    assert shadow_count(server, 2, "differs") == 0
    set_shadow(server, 0.0)
    every_api(server, 1.0)
    # A probe after the unscored calls: once it is scored, nothing else was.
    set_shadow(server, 1.0, tolerance=0.0)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel())
    stub.Predict(predict_request("hp", 1.0), timeout=WAIT_S)
    assert wait_for(lambda: shadow_count(server, 2, "same") == 7, WAIT_S)
    assert user_requests(server, 2) == 0


def test_a_full_shadow_queue_never_fails_or_slows_a_user(server: ServerProcess) -> None:
    relabel(server, 4)
    set_shadow(server, 1.0)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel())
    sent = QUEUE_CAPACITY + 60
    answers = [stub.Predict(predict_request("hp", 2.0), timeout=WAIT_S).outputs["y"].float_val[0]
               for _ in range(sent)]
    assert answers == [3.0] * sent
    # The slow shadow ran a few at most; the queue held 256; the rest were dropped.
    assert shadow_count(server, 4, "dropped") >= sent - QUEUE_CAPACITY - 10
    assert user_requests(server, 4) == 0
    # No user waited for a 5 s shadow run: every v1 request is in a bucket below it.
    values = series(server)
    below = [v for (name, labels), v in values.items()
             if name == "rollouts_request_latency_seconds_bucket"
             and ("version", "1") in labels and ("le", "2.5") in labels]
    total = [v for (name, labels), v in values.items()
             if name == "rollouts_request_latency_seconds_count" and ("version", "1") in labels]
    assert sum(below) == sum(total)
    set_shadow(server, 0.0)
