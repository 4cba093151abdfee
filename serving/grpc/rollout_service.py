"""gRPC adapter for our extension service rollouts.serving.v1.RolloutService.

Per-model transition policy, the applied config (TF Serving #1800), a listing
of models with versions, labels and splits, and setting/clearing splits. All
decisions live in ServerCore; this only converts messages (a ServingError
becomes the RPC's status through serving/grpc/errors.py).
"""

from __future__ import annotations

import grpc
from google.protobuf import text_format

from serving.core.policies import TransitionPolicy
from serving.core.status import invalid_argument
from serving.generated import rollouts_serving_pb2 as pb
from serving.generated import rollouts_serving_pb2_grpc as pb_grpc
from serving.grpc.errors import answers_errors
from serving.server_core import ServerCore

_TO_PROTO = {
    TransitionPolicy.AVAILABILITY_PRESERVING: pb.AVAILABILITY_PRESERVING,
    TransitionPolicy.RESOURCE_PRESERVING: pb.RESOURCE_PRESERVING,
}
_FROM_PROTO = {value: key for key, value in _TO_PROTO.items()}


def model_info(core: ServerCore, name: str) -> pb.ModelInfo:
    info = pb.ModelInfo(
        name=name,
        base_path=core.base_path(name) or "",
        platform=core.platform(name) or "",
        transition_policy=_TO_PROTO[core.transition_policy(name)],
    )
    for status in core.manager.statuses(name):
        info.versions.add(
            version=status.version,
            state=status.state.value,
            error_code=status.error.code.name if status.error else "OK",
            error_message=status.error.message if status.error else "",
        )
    info.labels.update(core.labels(name))
    split = core.get_split(name)
    if split is not None:
        info.split.CopyFrom(split)
        info.has_split = True
    return info


class RolloutServiceServicer(pb_grpc.RolloutServiceServicer):
    def __init__(self, core: ServerCore) -> None:
        self._core = core

    @answers_errors
    def SetTransitionPolicy(  # noqa: N802 (gRPC method name)
        self, request: pb.SetTransitionPolicyRequest, context: grpc.ServicerContext
    ) -> pb.SetTransitionPolicyResponse:
        if not request.model_name:
            raise invalid_argument("model_name is required")
        # UNSPECIFIED returns the model to the server's default policy.
        self._core.set_transition_policy(request.model_name, _FROM_PROTO.get(request.policy))
        return pb.SetTransitionPolicyResponse()

    def GetConfig(  # noqa: N802 (gRPC method name)
        self, request: pb.GetConfigRequest, context: grpc.ServicerContext
    ) -> pb.GetConfigResponse:
        config = self._core.current_config()
        response = pb.GetConfigResponse(model_server_config=text_format.MessageToString(config))
        for model in config.model_config_list.config:
            response.transition_policies[model.name] = _TO_PROTO[
                self._core.transition_policy(model.name)
            ]
            split = self._core.get_split(model.name)
            if split is not None:
                response.splits.append(split)
        return response

    def ListModels(  # noqa: N802 (gRPC method name)
        self, request: pb.ListModelsRequest, context: grpc.ServicerContext
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[model_info(self._core, name) for name in self._core.list_models()]
        )

    @answers_errors
    def SetSplit(  # noqa: N802 (gRPC method name)
        self, request: pb.SetSplitRequest, context: grpc.ServicerContext
    ) -> pb.SetSplitResponse:
        self._core.set_split(request.split)
        return pb.SetSplitResponse()

    @answers_errors
    def ClearSplit(  # noqa: N802 (gRPC method name)
        self, request: pb.ClearSplitRequest, context: grpc.ServicerContext
    ) -> pb.ClearSplitResponse:
        if not request.model_name:
            raise invalid_argument("model_name is required")
        self._core.clear_split(request.model_name)
        return pb.ClearSplitResponse()


def add_rollout_service(core: ServerCore, server: grpc.Server) -> None:
    pb_grpc.add_RolloutServiceServicer_to_server(RolloutServiceServicer(core), server)
