from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving import tensor_codec
from serving.dataplane import DataPlane
from serving.generated import rollouts_serving_pb2
from serving.grpc.prediction_service import add_to_server
from tests.unit.dataplane_fakes import FakeCore, half_plus_two_core

M = "half_plus_two"


@pytest.fixture
def env() -> Iterator[tuple[prediction_service_pb2_grpc.PredictionServiceStub, FakeCore]]:
    core = half_plus_two_core()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_to_server(DataPlane(core), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel), core
    finally:
        channel.close()
        server.stop(None)


def predict_request(version: int | None = None, label: str = "") -> predict_pb2.PredictRequest:
    req = predict_pb2.PredictRequest()
    req.model_spec.name = M
    if version is not None:
        req.model_spec.version.value = version
    if label:
        req.model_spec.version_label = label
    req.inputs["x"].CopyFrom(tensor_codec.from_ndarray(np.array([2.0, 3.0, 4.0], np.float32)))
    return req


def test_predict_echoes_served_version(env: tuple) -> None:
    stub, _ = env
    resp = stub.Predict(predict_request(version=1), timeout=60)
    assert tensor_codec.parse_tensor(resp.outputs["y"], "y").tolist() == [3.0, 3.5, 4.0]
    assert (resp.model_spec.name, resp.model_spec.signature_name,
            resp.model_spec.version.value) == (M, "serving_default", 1)
    assert stub.Predict(predict_request(label="canary"), timeout=60).model_spec.version.value == 2


def test_metadata_headers_drive_the_split(env: tuple) -> None:
    stub, core = env
    core.splits[M] = rollouts_serving_pb2.Split(
        match=[rollouts_serving_pb2.HeaderMatch(header="X-Canary", value="1")])
    r = stub.Predict(predict_request(), metadata=[("x-canary", "1")], timeout=60)
    assert r.model_spec.version.value == 2
    assert stub.Predict(predict_request(), timeout=60).model_spec.version.value == 1


@pytest.mark.parametrize("mutate, code, text", [
    (lambda r: setattr(r.model_spec, "name", "missing"), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Latest(missing)"),
    (lambda r: r.model_spec.version.__setattr__("value", 9), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Specific(half_plus_two, 9)"),
    (lambda r: setattr(r.model_spec, "name", ""), grpc.StatusCode.INVALID_ARGUMENT, None),
    (lambda r: setattr(r.model_spec, "signature_name", "nope"),
     grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found.'),
    (lambda r: r.output_filter.append("z"), grpc.StatusCode.INVALID_ARGUMENT, None),
    (lambda r: r.inputs["x"].tensor_shape.dim[0].__setattr__("size", -1),
     grpc.StatusCode.INVALID_ARGUMENT, "tensor parsing error: x"),
    (lambda r: r.ClearField("model_spec"), grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec"),
])
def test_predict_errors(env: tuple, mutate: object, code: grpc.StatusCode,
                        text: str | None) -> None:
    stub, _ = env
    req = predict_request()
    mutate(req)  # type: ignore[operator]
    with pytest.raises(grpc.RpcError) as e:
        stub.Predict(req, timeout=60)
    assert e.value.code() == code
    if text is not None:
        assert e.value.details() == text


def _input(target: object, x: float) -> None:
    ex = target.example_list.examples.add()  # type: ignore[attr-defined]
    ex.features.feature["x"].float_list.value.append(x)


def test_classify_regress_multi_metadata(env: tuple) -> None:
    stub, _ = env
    c = classification_pb2.ClassificationRequest()
    c.model_spec.name, c.model_spec.signature_name = M, "classify_x_to_y"
    c.model_spec.version.value = 1
    _input(c.input, 2.0)
    cr = stub.Classify(c, timeout=60)
    assert cr.result.classifications[0].classes[0].score == 3.0
    assert cr.model_spec.signature_name == "classify_x_to_y"
    r = regression_pb2.RegressionRequest()
    r.model_spec.name, r.model_spec.signature_name = M, "regress_x_to_y"
    r.model_spec.version.value = 1
    _input(r.input, 2.0)
    assert stub.Regress(r, timeout=60).result.regressions[0].value == 3.0
    mi = inference_pb2.MultiInferenceRequest()
    for sig, method in (("classify_x_to_y", "tensorflow/serving/classify"),
                        ("regress_x_to_y", "tensorflow/serving/regress")):
        t = mi.tasks.add(method_name=method)
        t.model_spec.name, t.model_spec.signature_name = M, sig
    _input(mi.input, 2.0)
    mr = stub.MultiInference(mi, timeout=60)
    assert mr.results[1].regression_result.regressions[0].value == 4.0  # v2: 0.5x+3
    md = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    md.model_spec.name = M
    resp = stub.GetModelMetadata(md, timeout=60)
    sigs = get_model_metadata_pb2.SignatureDefMap()
    resp.metadata["signature_def"].Unpack(sigs)
    assert set(sigs.signature_def) == {"serving_default", "classify_x_to_y", "regress_x_to_y"}
    assert resp.model_spec.version.value == 2
