"""Serving targets over gRPC: observe what a target runs, apply planned actions.

Speaks TF Serving's ModelService (HandleReloadConfigRequest, GetModelStatus) to
every target and our RolloutService extension where the target has it. A plain
TensorFlow Serving answers UNIMPLEMENTED for the extension; the target is then
observed through GetModelStatus alone and gets no split.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import grpc
from google.protobuf import text_format

from controller.adapters.channel import client_channel
from controller.decide.fleet import DesiredModel, ObservedModel, ObservedTarget, TargetAddress
from controller.decide.plan import (
    Action,
    ClearSplit,
    ReloadConfig,
    SetSplit,
    SetTransition,
)
from controller.decide.render import (
    model_server_config,
    policy_from_proto,
    policy_proto,
    split_from_proto,
    split_to_proto,
)
from serving.generated import rollouts_serving_pb2 as ext
from serving.generated import rollouts_serving_pb2_grpc as ext_grpc

# TF Serving's protos generated into the project: `tensorflow_serving.apis` would
# load all of TensorFlow into the controller.
from serving.generated.tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
)
from serving.generated.tensorflow_serving.config import model_server_config_pb2

log = logging.getLogger(__name__)

# gRPC's default reconnect backoff grows to two minutes: a restarted server
# would stay "unreachable" long after it is back. The controller has its own
# backoff per target, so the channel retries connecting within a second or two.
RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]

class TargetError(Exception):
    """An action or observation failed on one target; the message names it."""


class TargetClient:
    """One serving target. Cheap to create; holds one gRPC channel."""

    def __init__(
        self,
        address: TargetAddress,
        *,
        timeout_s: float = 10.0,
        token: str = "",
        root_ca: bytes = b"",
        client_cert: bytes = b"",
        client_key: bytes = b"",
    ) -> None:
        """`token`: the servers' --admin_token_file content; `root_ca` and/or a
        client certificate and key switch the channel to TLS (serving/config/tls.py)."""
        self.address = address
        self.timeout_s = timeout_s
        self._channel = client_channel(
            address.grpc_address, token=token, root_ca=root_ca,
            client_cert=client_cert, client_key=client_key,
            options=RECONNECT_OPTIONS,
        )
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._ext = ext_grpc.RolloutServiceStub(self._channel)
        # The models this client's last accepted config push named (see _observe_plain).
        self._configured: set[str] = set()

    @property
    def name(self) -> str:
        return self.address.name

    def close(self) -> None:
        self._channel.close()

    # -- observing -------------------------------------------------------
    def observe(self, desired: Mapping[str, DesiredModel]) -> ObservedTarget:
        try:
            return self._observe_extension()
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                return ObservedTarget(self.name, False, error=_rpc_text(err))
        try:
            return self._observe_plain(desired)
        except grpc.RpcError as err:
            return ObservedTarget(self.name, False, error=_rpc_text(err), extension=False)

    def _observe_extension(self) -> ObservedTarget:
        listing = self._ext.ListModels(ext.ListModelsRequest(), timeout=self.timeout_s)
        config_reply = self._ext.GetConfig(ext.GetConfigRequest(), timeout=self.timeout_s)
        config = text_format.Parse(
            config_reply.model_server_config, model_server_config_pb2.ModelServerConfig()
        )
        configured = {m.name: m for m in config.model_config_list.config}
        models: dict[str, ObservedModel] = {}
        for info in listing.models:
            conf = configured.get(info.name)
            config_versions = (
                frozenset(conf.model_version_policy.specific.versions)
                if conf is not None and conf.model_version_policy.HasField("specific")
                else None
            )
            models[info.name] = ObservedModel(
                name=info.name,
                states={v.version: v.state for v in info.versions},
                labels=dict(info.labels),
                errors={
                    v.version: v.error_message
                    for v in info.versions
                    if v.error_code not in ("", "OK")
                },
                base_path=info.base_path or (conf.base_path if conf else None),
                platform=info.platform or (conf.model_platform if conf else None),
                config_versions=config_versions,
                split=split_from_proto(info.split) if info.has_split else None,
                transition=policy_from_proto(info.transition_policy),
            )
        return ObservedTarget(self.name, True, models, extension=True)

    def _observe_plain(self, desired: Mapping[str, DesiredModel]) -> ObservedTarget:
        # A plain TF Serving cannot list its models: ask for the desired ones and for
        # those this client configured there, so a model removed from git is seen
        # (and unloaded) rather than left serving. (Kept in memory: a controller
        # restarted after the removal cannot see what it had put there.)
        models: dict[str, ObservedModel] = {}
        for name in sorted(set(desired) | self._configured):
            model = desired.get(name)
            states, errors = self._version_states(name)
            if states is None or (model is None and all(s == "END" for s in states.values())):
                continue
            labels: dict[str, int] = {}
            for label in model.labels if model is not None else ():
                request = get_model_status_pb2.GetModelStatusRequest()
                request.model_spec.name = name
                request.model_spec.version_label = label
                try:
                    reply = self._models.GetModelStatus(request, timeout=self.timeout_s)
                except grpc.RpcError as err:
                    if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                        continue
                    raise
                if reply.model_version_status:
                    labels[label] = reply.model_version_status[0].version
            models[name] = ObservedModel(name, states, labels, errors)
        return ObservedTarget(self.name, True, models, extension=False)

    def _version_states(self, name: str) -> tuple[dict[int, str] | None, dict[int, str]]:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        try:
            reply = self._models.GetModelStatus(request, timeout=self.timeout_s)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return None, {}
            raise
        states: dict[int, str] = {}
        errors: dict[int, str] = {}
        for status in reply.model_version_status:
            state_name = get_model_status_pb2.ModelVersionStatus.State.Name(status.state)
            states[status.version] = state_name
            if status.status.error_code != 0:
                errors[status.version] = status.status.error_message
        return states, errors

    # -- acting ----------------------------------------------------------
    def apply(self, action: Action) -> None:
        try:
            self._apply(action)
        except grpc.RpcError as err:
            raise TargetError(
                f"{self.name}: {_describe(action)} failed: {_rpc_text(err)}"
            ) from None

    def _apply(self, action: Action) -> None:
        if isinstance(action, ReloadConfig):
            request = model_management_pb2.ReloadConfigRequest()
            request.config.CopyFrom(model_server_config(action.models))
            reply = self._models.HandleReloadConfigRequest(request, timeout=self.timeout_s * 6)
            if reply.status.error_code != 0:
                raise TargetError(f"{self.name}: reload rejected: {reply.status.error_message}")
            self._configured = {entry.name for entry in action.models}
        elif isinstance(action, SetSplit):
            self._ext.SetSplit(
                ext.SetSplitRequest(split=split_to_proto(action.model, action.split)),
                timeout=self.timeout_s,
            )
        elif isinstance(action, ClearSplit):
            self._ext.ClearSplit(
                ext.ClearSplitRequest(model_name=action.model), timeout=self.timeout_s
            )
        elif isinstance(action, SetTransition):
            self._ext.SetTransitionPolicy(
                ext.SetTransitionPolicyRequest(
                    model_name=action.model, policy=policy_proto(action.policy)
                ),
                timeout=self.timeout_s,
            )


def _describe(action: Action) -> str:
    if isinstance(action, ReloadConfig):
        return "reload config (" + "; ".join(action.reasons) + ")"
    return f"{type(action).__name__} {action.model}"


def _rpc_text(err: grpc.RpcError) -> str:
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else str(err)
    return f"{code.name if code else 'ERROR'}: {details}"
