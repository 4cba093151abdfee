"""gRPC adapter: tensorflow.serving.PredictionService on top of the DataPlane.

Translates the real tensorflow_serving.apis messages to data-plane calls; a
ServingError becomes the RPC's status through serving/grpc/errors.py. The
response model_spec echoes the model, the signature and the version that
actually served. Request metadata is passed to the hash-split router.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    model_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving import tensor_codec
from serving.core.status import invalid_argument
from serving.dataplane import DataPlane, ModelRef, Served
from serving.example_results import SignatureLike
from serving.grpc.errors import answers_errors
from serving.request_checks import check_input_names

ENTRYPOINT = "GRPC"


def _headers(context: grpc.ServicerContext) -> dict[str, str]:
    return {k.lower(): v for k, v in context.invocation_metadata() or () if isinstance(v, str)}


def model_ref(spec: model_pb2.ModelSpec, headers: Mapping[str, str],
              wait_s: float | None = None) -> ModelRef:
    which = spec.WhichOneof("version_choice")
    return ModelRef(
        name=spec.name,
        version=spec.version.value if which == "version" else None,
        label=spec.version_label if which == "version_label" else None,
        headers=headers,
        wait_s=wait_s,
    )


def _ref(spec: model_pb2.ModelSpec, context: grpc.ServicerContext) -> ModelRef:
    # A version still loading is waited for only within the RPC's own deadline.
    return model_ref(spec, _headers(context), context.time_remaining())


def _echo(served: Served, target: model_pb2.ModelSpec, with_signature: bool = True) -> None:
    target.name = served.model
    if with_signature:
        target.signature_name = served.signature_name
    target.version.value = served.version


# tensorflow-serving-api ships no type information: its servicer bases are Any.
class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    def __init__(self, dataplane: DataPlane, tensor_content: bool = False) -> None:
        self.dataplane = dataplane
        # --enable_serialization_as_tensor_content: Predict outputs as raw bytes.
        self.tensor_content = tensor_content

    @answers_errors
    def Predict(self, request: predict_pb2.PredictRequest,  # noqa: N802 (gRPC's name)
                context: grpc.ServicerContext) -> predict_pb2.PredictResponse:
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")

        def decode(signature: SignatureLike) -> dict[str, np.ndarray]:
            # Names first, then parsing: predict_util.cc's order of errors.
            check_input_names(signature, list(request.inputs))
            return {k: tensor_codec.parse_tensor(v, k) for k, v in request.inputs.items()}

        result = self.dataplane.predict(
            _ref(request.model_spec, context), decode,
            request.model_spec.signature_name, list(request.output_filter),
            entrypoint=ENTRYPOINT)
        response = predict_pb2.PredictResponse()
        _echo(result.served, response.model_spec)
        for alias, array in result.outputs.items():
            response.outputs[alias].CopyFrom(tensor_codec.from_ndarray(array, self.tensor_content))
        return response

    @answers_errors
    def Classify(self, request: classification_pb2.ClassificationRequest,  # noqa: N802
                 context: grpc.ServicerContext) -> classification_pb2.ClassificationResponse:
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        r = self.dataplane.classify(_ref(request.model_spec, context),
                                    request.input, request.model_spec.signature_name,
                                    entrypoint=ENTRYPOINT)
        response = classification_pb2.ClassificationResponse(result=r.result)
        _echo(r.served, response.model_spec)
        return response

    @answers_errors
    def Regress(self, request: regression_pb2.RegressionRequest,  # noqa: N802
                context: grpc.ServicerContext) -> regression_pb2.RegressionResponse:
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        r = self.dataplane.regress(_ref(request.model_spec, context),
                                   request.input, request.model_spec.signature_name,
                                   entrypoint=ENTRYPOINT)
        response = regression_pb2.RegressionResponse(result=r.result)
        _echo(r.served, response.model_spec)
        return response

    @answers_errors
    def MultiInference(self, request: inference_pb2.MultiInferenceRequest,  # noqa: N802
                       context: grpc.ServicerContext) -> inference_pb2.MultiInferenceResponse:
        names = {t.model_spec.name for t in request.tasks}
        if any(not t.model_spec.name for t in request.tasks):
            raise invalid_argument("Found ModelSpec with an empty model name.")
        if len(names) > 1:
            raise invalid_argument(
                "All ModelSpecs in a MultiInferenceRequest must access the same model name.")
        first = request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec()
        tasks = [(t.model_spec.signature_name, t.method_name) for t in request.tasks]
        r = self.dataplane.multi_inference(_ref(first, context), tasks,
                                           request.input, entrypoint=ENTRYPOINT)
        return inference_pb2.MultiInferenceResponse(results=r.results)

    @answers_errors
    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest,  # noqa: N802
                         context: grpc.ServicerContext
                         ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        r = self.dataplane.get_model_metadata(
            _ref(request.model_spec, context), list(request.metadata_field))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _echo(r.served, response.model_spec, with_signature=False)
        response.metadata["signature_def"].Pack(r.signature_def_map)
        return response


def add_to_server(dataplane: DataPlane, server: grpc.Server,
                  tensor_content: bool = False) -> PredictionServicer:
    servicer = PredictionServicer(dataplane, tensor_content)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    return servicer
