"""gRPC adapter for tensorflow.serving.ModelService (GetModelStatus, HandleReloadConfigRequest).

Translates the real tensorflow_serving.apis messages to ServerCore calls, like
TF Serving's model_service_impl.cc; a ServingError becomes the RPC's status
through serving/grpc/errors.py.
"""

from __future__ import annotations

import logging

import grpc
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    status_pb2,
)

from serving.core.manager import VersionStatus
from serving.core.status import Code, ServingError
from serving.grpc.errors import answers_errors, set_status
from serving.server_core import ServerCore

log = logging.getLogger(__name__)

_STATE = get_model_status_pb2.ModelVersionStatus.State


def status_proto(error: ServingError | None) -> status_pb2.StatusProto:
    if error is None:
        return status_pb2.StatusProto(error_code=0, error_message="")
    return status_pb2.StatusProto(error_code=int(error.code), error_message=error.message)


def model_status_response(
    statuses: list[VersionStatus],
) -> get_model_status_pb2.GetModelStatusResponse:
    response = get_model_status_pb2.GetModelStatusResponse()
    for status in statuses:
        entry = response.model_version_status.add(
            version=status.version, state=_STATE.Value(status.state.value)
        )
        entry.status.CopyFrom(status_proto(status.error))
    return response


def get_model_status(
    core: ServerCore, request: get_model_status_pb2.GetModelStatusRequest
) -> get_model_status_pb2.GetModelStatusResponse:
    """Protocol-neutral GetModelStatus (REST uses it too); raises ServingError."""
    if not request.HasField("model_spec"):
        raise ServingError(Code.INVALID_ARGUMENT, "Missing ModelSpec")
    spec = request.model_spec
    choice = spec.WhichOneof("version_choice")
    version = spec.version.value if choice == "version" else None
    label = spec.version_label if choice == "version_label" else None
    return model_status_response(core.model_status(spec.name, version=version, label=label))


# tensorflow-serving-api ships no type information: its servicer bases are Any.
class ModelServiceServicer(model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc]
    def __init__(self, core: ServerCore) -> None:
        self._core = core

    @answers_errors
    def GetModelStatus(  # noqa: N802 (gRPC method name)
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        return get_model_status(self._core, request)

    def HandleReloadConfigRequest(  # noqa: N802 (gRPC method name)
        self, request: model_management_pb2.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> model_management_pb2.ReloadConfigResponse:
        error: ServingError | None = None
        try:
            self._core.reload_config(request.config)
        except ServingError as exc:
            error = exc
            log.error("ServerCore::ReloadConfig failed: %s", exc.message)
        # TF Serving reports the outcome twice: in the response and as the RPC status.
        response = model_management_pb2.ReloadConfigResponse(status=status_proto(error))
        if error is not None:
            set_status(context, error)
        return response


def add_model_service(core: ServerCore, server: grpc.Server) -> None:
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServiceServicer(core), server)
