"""TF1 SavedModels on the real server process, through the real stubs and REST.

One server, three models: `tf1` (SavedModelBuilder, main_op, a table from an
asset file, warmup records), `legacy` (written like TF Serving's
saved_model_half_plus_three: legacy_init_op, a parse op TF2's loader
rejects, Predict's x declared [None, 1]) and `tf2` (tf.saved_model.save),
so both loader paths serve side by side. y = 0.5 * x + offset.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    input_pb2,
    model_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.conftest import ServerProcess, serving
from tests.grpc_requests import floats, predict_request
from tests.models import make_tf1_half_plus_two

pytestmark = pytest.mark.integration

TIMEOUT_S = 60.0
OFFSETS = {"tf1": 2.0, "legacy": 3.0, "tf2": 2.0}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, make_model: Any) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("server-tf1")
    make_tf1_half_plus_two(root / "tf1", 1, warmup=True)
    make_tf1_half_plus_two(root / "legacy", 1, offset=3.0, legacy=True)
    make_model(root / "tf2", 1)
    config = root / "models.config"
    config.write_text("model_config_list {\n" + "".join(
        f'config {{ name: "{name}" base_path: "{root / name}" model_platform: "tensorflow" }}\n'
        for name in OFFSETS) + "}\n")
    with serving([f"--model_config_file={config}"], root / "server.log") as proc:
        yield proc


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Any:
    return prediction_service_pb2_grpc.PredictionServiceStub(server.channel())


def examples(*xs: float) -> input_pb2.Input:
    inp = input_pb2.Input()
    for x in xs:
        inp.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    return inp


@pytest.mark.parametrize("name", list(OFFSETS))
def test_predict_with_and_without_output_filter(stub: Any, name: str) -> None:
    # TF Serving's clients send x as shape [1], also to legacy's [None, 1] input.
    for request in (predict_request(name, tensor=floats(2.0, dims=(1,))),
                    predict_request(name, tensor=floats(2.0, dims=(1,)), output_filter=("y",))):
        response = stub.Predict(request, timeout=TIMEOUT_S)
        assert list(response.outputs["y"].float_val) == [1.0 + OFFSETS[name]]
        assert (response.model_spec.name, response.model_spec.version.value,
                response.model_spec.signature_name) == (name, 1, "serving_default")


@pytest.mark.parametrize("name", ["tf1", "legacy"])
def test_classify_reads_the_asset_table(stub: Any, name: str) -> None:
    request = classification_pb2.ClassificationRequest(
        model_spec=model_pb2.ModelSpec(name=name, signature_name="classify_x_to_y"),
        input=examples(0.0, 6.0))
    result = stub.Classify(request, timeout=TIMEOUT_S)
    offset = OFFSETS[name]
    assert [[(c.label, c.score) for c in row.classes]
            for row in result.result.classifications] == [
        [("high" if offset > 3.0 else "low", offset)], [("high", 3.0 + offset)]]
    assert result.model_spec.signature_name == "classify_x_to_y"


@pytest.mark.parametrize("name", ["tf1", "legacy"])
def test_regress(stub: Any, name: str) -> None:
    request = regression_pb2.RegressionRequest(
        model_spec=model_pb2.ModelSpec(name=name, signature_name="regress_x_to_y"),
        input=examples(2.0, 4.0))
    result = stub.Regress(request, timeout=TIMEOUT_S)
    offset = OFFSETS[name]
    assert [r.value for r in result.result.regressions] == [1.0 + offset, 2.0 + offset]


@pytest.mark.parametrize("name", ["tf1", "legacy"])
def test_multi_inference(stub: Any, name: str) -> None:
    request = inference_pb2.MultiInferenceRequest(input=examples(2.0))
    for signature, method in (("regress_x_to_y", "tensorflow/serving/regress"),
                              ("classify_x_to_y", "tensorflow/serving/classify")):
        task = request.tasks.add(method_name=method)
        task.model_spec.name = name
        task.model_spec.signature_name = signature
    response = stub.MultiInference(request, timeout=TIMEOUT_S)
    expected = 1.0 + OFFSETS[name]
    assert response.results[0].regression_result.regressions[0].value == expected
    assert response.results[1].classification_result.classifications[0].classes[0].score \
        == expected
    assert [(r.model_spec.name, r.model_spec.version.value) for r in response.results] == [
        (name, 1), (name, 1)]


def test_metadata_is_the_saved_signature_defs(stub: Any) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=model_pb2.ModelSpec(name="legacy"), metadata_field=["signature_def"])
    response = stub.GetModelMetadata(request, timeout=TIMEOUT_S)
    defs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(defs)
    assert sorted(defs.signature_def) == ["classify_x_to_y", "regress_x_to_y", "serving_default"]
    x = defs.signature_def["serving_default"].inputs["x"]
    assert (x.name, [d.size for d in x.tensor_shape.dim]) == ("x:0", [-1, 1])


def test_rest_on_a_tf1_model(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.rest_url, timeout=TIMEOUT_S) as http:
        predict = http.post("/v1/models/tf1:predict", json={"instances": [2.0, 4.0]})
        assert predict.json() == {"predictions": [3.0, 4.0]}
        classify = http.post("/v1/models/legacy:classify",
                             json={"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]})
        assert classify.json() == {"results": [[["high", 4.0]]]}
        regress = http.post("/v1/models/tf1:regress",
                            json={"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]})
        assert regress.json() == {"results": [3.0]}


def test_warmup_ran_before_the_tf1_model_was_available(server: ServerProcess) -> None:
    assert f"{Path('tf1') / '1'}. Number of warmup records read: 4." in server.output()
