"""PredictionService against the real server process, through the real stubs.

One server for the module, three models made with TensorFlow:
- `hp`: versions 1 (0.5x+2) and 2 (0.5x+3), labels stable=1, canary=2;
- `latest`: the same two versions and no labels (TF Serving's default: highest);
- `sp`: like `hp`, used only by the split tests (they change its split).
The response value tells which version served: 0.5*2+2 = 3.0 vs 0.5*2+3 = 4.0.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    model_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.generated import rollouts_serving_pb2 as rpb
from serving.routing import bucket
from tests.conftest import ServerProcess, serving
from tests.grpc_requests import floats, predict_request

pytestmark = pytest.mark.integration

TIMEOUT_S = 60.0
V1, V2 = 3.0, 4.0  # each version's answer for x = 2.0


def config_text(root: Path) -> str:
    def model(name: str, labels: bool) -> str:
        text = (f'config {{ name: "{name}" base_path: "{root / name}" model_platform: "tensorflow"'
                " model_version_policy { all {} }")
        if labels:
            text += ' version_labels { key: "stable" value: 1 }'
            text += ' version_labels { key: "canary" value: 2 }'
        return text + " }\n"

    return "model_config_list {\n" + model("hp", True) + model("latest", False) + \
        model("sp", True) + "}\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, make_model: Any) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("dataplane-grpc")
    for name in ("hp", "latest", "sp"):
        make_model(root / name, 1)
        make_model(root / name, 2, offset=3.0)
    config = root / "models.config"
    config.write_text(config_text(root))
    with serving([f"--model_config_file={config}"], root / "server.log") as proc:
        yield proc


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Any:
    return prediction_service_pb2_grpc.PredictionServiceStub(server.channel())


def spec(name: str, version: int | None = None, label: str | None = None,
         signature: str = "") -> model_pb2.ModelSpec:
    s = model_pb2.ModelSpec(name=name, signature_name=signature)
    if version is not None:
        s.version.value = version
    if label is not None:
        s.version_label = label
    return s


def example(x: float) -> example_pb2.Example:
    return example_pb2.Example(features=feature_pb2.Features(feature={
        "x": feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[x]))}))


def rpc_error(call: Any, request: Any, metadata: Any = None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=TIMEOUT_S, metadata=metadata)
    return info.value


def served(stub: Any, request: predict_pb2.PredictRequest,
           metadata: list[tuple[str, str]] | None = None) -> tuple[int, float]:
    """(version in the response's model_spec, the first output value)."""
    response = stub.Predict(request, timeout=TIMEOUT_S, metadata=metadata)
    return response.model_spec.version.value, response.outputs["y"].float_val[0]


# ----------------------------------------------------------------- methods


def test_predict_echoes_the_model_spec_with_the_served_version(stub: Any) -> None:
    response = stub.Predict(predict_request(spec("hp", version=1), 2.0, 3.0, 4.0),
                            timeout=TIMEOUT_S)
    assert list(response.outputs["y"].float_val) == [3.0, 3.5, 4.0]
    assert response.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert [d.size for d in response.outputs["y"].tensor_shape.dim] == [3]
    assert response.model_spec.name == "hp"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"


def test_predict_output_filter_and_explicit_signature(stub: Any) -> None:
    request = predict_request(spec("hp", version=1, signature="serving_default"), 2.0,
                              output_filter=("y",))
    response = stub.Predict(request, timeout=TIMEOUT_S)
    assert list(response.outputs) == ["y"]
    assert list(response.outputs["y"].float_val) == [3.0]


def test_string_predict_path_feeds_serialized_examples(stub: Any) -> None:
    # Predict on the classify signature: a DT_STRING input of tf.Examples.
    request = predict_pb2.PredictRequest(model_spec=spec("hp", version=1,
                                                         signature="classify_x_to_y"))
    request.inputs["inputs"].CopyFrom(tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=2)]),
        string_val=[example(2.0).SerializeToString(), example(4.0).SerializeToString()],
    ))
    response = stub.Predict(request, timeout=TIMEOUT_S)
    assert list(response.outputs["scores"].float_val) == [3.0, 4.0]
    assert [d.size for d in response.outputs["scores"].tensor_shape.dim] == [2, 1]


def test_classify(stub: Any) -> None:
    request = classification_pb2.ClassificationRequest(
        model_spec=spec("hp", version=1, signature="classify_x_to_y"))
    request.input.example_list.examples.append(example(2.0))
    response = stub.Classify(request, timeout=TIMEOUT_S)
    classes = response.result.classifications[0].classes
    assert [(c.label, c.score) for c in classes] == [("", 3.0)]
    assert (response.model_spec.name, response.model_spec.version.value) == ("hp", 1)
    assert response.model_spec.signature_name == "classify_x_to_y"


def test_regress_on_a_label(stub: Any) -> None:
    request = regression_pb2.RegressionRequest(
        model_spec=spec("hp", label="canary", signature="regress_x_to_y"))
    request.input.example_list.examples.extend([example(2.0), example(4.0)])
    response = stub.Regress(request, timeout=TIMEOUT_S)
    assert [r.value for r in response.result.regressions] == [4.0, 5.0]
    assert response.model_spec.version.value == 2


def test_multi_inference(stub: Any) -> None:
    request = inference_pb2.MultiInferenceRequest()
    request.tasks.add(model_spec=spec("hp", version=1, signature="classify_x_to_y"),
                      method_name="tensorflow/serving/classify")
    request.tasks.add(model_spec=spec("hp", version=1, signature="regress_x_to_y"),
                      method_name="tensorflow/serving/regress")
    request.input.example_list.examples.append(example(2.0))
    response = stub.MultiInference(request, timeout=TIMEOUT_S)
    classify, regress = response.results
    assert classify.classification_result.classifications[0].classes[0].score == 3.0
    assert regress.regression_result.regressions[0].value == 3.0
    assert [r.model_spec.signature_name for r in response.results] == [
        "classify_x_to_y", "regress_x_to_y"]
    assert {r.model_spec.version.value for r in response.results} == {1}


def test_get_model_metadata_returns_signature_defs(stub: Any) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=spec("hp", version=2), metadata_field=["signature_def"])
    response = stub.GetModelMetadata(request, timeout=TIMEOUT_S)
    assert (response.model_spec.name, response.model_spec.version.value) == ("hp", 2)
    defs = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(defs)
    assert {"serving_default", "classify_x_to_y", "regress_x_to_y"} <= set(defs.signature_def)
    default = defs.signature_def["serving_default"]
    assert default.method_name == "tensorflow/serving/predict"
    assert default.inputs["x"].dtype == types_pb2.DT_FLOAT
    assert defs.signature_def["classify_x_to_y"].method_name == "tensorflow/serving/classify"


# ------------------------------------------------------- versions and labels


def test_no_version_no_label_goes_to_stable_when_assigned(stub: Any) -> None:
    assert served(stub, predict_request(spec("hp"), 2.0)) == (1, V1)


def test_no_labels_means_highest_available_version(stub: Any) -> None:
    assert served(stub, predict_request(spec("latest"), 2.0)) == (2, V2)


def test_explicit_version_and_label(stub: Any) -> None:
    assert served(stub, predict_request(spec("hp", version=2), 2.0)) == (2, V2)
    assert served(stub, predict_request(spec("hp", label="canary"), 2.0)) == (2, V2)
    assert served(stub, predict_request(spec("hp", label="stable"), 2.0)) == (1, V1)


# ------------------------------------------------------------------- errors


@pytest.mark.parametrize(("model_spec", "code", "message"), [
    (spec("nope"), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
    (spec("hp", version=9), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Specific(hp, 9)"),
    (spec(""), grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified."),
    (spec("hp", label="nope"), grpc.StatusCode.INVALID_ARGUMENT,
     "Unrecognized servable version label: nope"),
    (spec("hp", signature="nope"), grpc.StatusCode.FAILED_PRECONDITION,
     'Serving signature key "nope" not found.'),
])
def test_predict_errors(stub: Any, model_spec: model_pb2.ModelSpec, code: grpc.StatusCode,
                        message: str) -> None:
    err = rpc_error(stub.Predict, predict_request(model_spec, 2.0))
    assert (err.code(), err.details()) == (code, message)


def test_predict_bad_input_alias_and_output_filter(stub: Any) -> None:
    request = predict_pb2.PredictRequest(model_spec=spec("hp"))
    request.inputs["z"].CopyFrom(floats(2.0))
    err = rpc_error(stub.Predict, request)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "input tensor alias not found in signature: z. " \
        "Inputs expected to be in the set {x}."
    request.inputs["x"].CopyFrom(floats(2.0))
    err = rpc_error(stub.Predict, request)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.details() or "").startswith("input size does not match signature: 2!=1")

    err = rpc_error(stub.Predict, predict_request(spec("hp"), 2.0, output_filter=("z",)))
    assert (err.code(), err.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "output tensor alias not found in signature: z Outputs expected to be in the set {y}.")
    err = rpc_error(stub.Predict, predict_request(spec("hp"), 2.0, output_filter=("y", "y")))
    assert (err.code(), err.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                           "duplicate output tensor alias: y")
    # A TensorProto names its dtype; it must be the signature's (TensorFlow's text).
    ints = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[2])
    ints.tensor_shape.dim.add().size = 1
    err = rpc_error(stub.Predict, predict_request(spec("hp"), tensor=ints))
    assert (err.code(), err.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                           "Expects arg[0] to be float but int32 is provided")


def test_classify_regress_multi_and_metadata_errors(stub: Any) -> None:
    request = classification_pb2.ClassificationRequest(
        model_spec=spec("hp", signature="nope"))
    request.input.example_list.examples.append(example(2.0))
    err = rpc_error(stub.Classify, request)
    assert (err.code(), err.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                           "No signature was found with the name: nope")
    empty = regression_pb2.RegressionRequest(model_spec=spec("hp", signature="regress_x_to_y"))
    err = rpc_error(stub.Regress, empty)
    assert (err.code(), err.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "Input is empty.")

    multi = inference_pb2.MultiInferenceRequest()
    multi.tasks.add(model_spec=spec("", signature="regress_x_to_y"),
                    method_name="tensorflow/serving/regress")
    multi.input.example_list.examples.append(example(2.0))
    err = rpc_error(stub.MultiInference, multi)
    assert (err.code(), err.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                           "Found ModelSpec with an empty model name.")

    meta = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec("hp"))
    err = rpc_error(stub.GetModelMetadata, meta)
    assert (err.code(), err.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "GetModelMetadataRequest must specify at least one metadata_field")
    meta.metadata_field.append("nope")
    err = rpc_error(stub.GetModelMetadata, meta)
    assert (err.code(), err.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                           "Metadata field nope is not supported")


# --------------------------------------------------------------- the split


def set_split(server: ServerProcess, weight_bp: int, *, salt: str = "s1") -> None:
    split = rpb.Split(model_name="sp", stable_label="stable", canary_label="canary",
                      canary_weight_bp=weight_bp, hash_key="x-user-id", salt=salt)
    split.match.add(header="x-canary", value="1")
    server.rollout_stub().SetSplit(rpb.SetSplitRequest(split=split), timeout=TIMEOUT_S)


def test_split_routes_by_hash_key_header_match_and_is_bypassed_by_version(
    server: ServerProcess, stub: Any
) -> None:
    set_split(server, 3000)
    try:
        keys = [f"user-{i}" for i in range(40)]
        expected = {k: (2, V2) if bucket("s1", k) < 3000 else (1, V1) for k in keys}
        assert {expected[k] for k in keys} == {(1, V1), (2, V2)}  # both sides exercised
        for key in keys:
            # Twice: the same key is sticky.
            for _ in range(2):
                got = served(stub, predict_request(spec("sp"), 2.0), [("x-user-id", key)])
                assert got == expected[key], key
        # Header match forces canary whatever the key; metadata keys are lower-case.
        stable_key = next(k for k in keys if expected[k] == (1, V1))
        got = served(stub, predict_request(spec("sp"), 2.0),
                     [("x-user-id", stable_key), ("x-canary", "1")])
        assert got == (2, V2)
        # An explicit version or label bypasses the split.
        canary_key = next(k for k in keys if expected[k] == (2, V2))
        assert served(stub, predict_request(spec("sp", version=1), 2.0),
                      [("x-user-id", canary_key)]) == (1, V1)
        assert served(stub, predict_request(spec("sp", label="stable"), 2.0),
                      [("x-canary", "1")]) == (1, V1)
        # Full weight: everything without a version goes to canary.
        set_split(server, 10000)
        assert served(stub, predict_request(spec("sp"), 2.0)) == (2, V2)
    finally:
        server.rollout_stub().ClearSplit(rpb.ClearSplitRequest(model_name="sp"),
                                         timeout=TIMEOUT_S)
    assert served(stub, predict_request(spec("sp"), 2.0), [("x-canary", "1")]) == (1, V1)
