"""Building PredictRequests for the real tensorflow_serving.apis stubs in tests."""

from __future__ import annotations

from typing import Any

from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

WAIT_S = 30.0


def floats(*values: float, dims: tuple[int, ...] | None = None) -> tensor_pb2.TensorProto:
    """A DT_FLOAT tensor of `values`, shaped [len(values)] unless `dims` says otherwise."""
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=list(values))
    for size in dims if dims is not None else (len(values),):
        proto.tensor_shape.dim.add().size = size
    return proto


def predict_request(
    model: str | model_pb2.ModelSpec,
    *values: float,
    tensor: tensor_pb2.TensorProto | None = None,
    output_filter: tuple[str, ...] = (),
) -> predict_pb2.PredictRequest:
    """A Predict of input "x" = `values` (or `tensor`) on `model` (a name or a ModelSpec)."""
    spec = model if isinstance(model, model_pb2.ModelSpec) else model_pb2.ModelSpec(name=model)
    request = predict_pb2.PredictRequest(model_spec=spec, output_filter=output_filter)
    request.inputs["x"].CopyFrom(tensor if tensor is not None else floats(*values))
    return request


def grpc_predict(server: Any, model: str, x: float) -> float:
    """y for one x through `server`'s gRPC PredictionService (raises grpc.RpcError)."""
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel())
    response = stub.Predict(predict_request(model, x), timeout=WAIT_S)
    return float(response.outputs["y"].float_val[0])
