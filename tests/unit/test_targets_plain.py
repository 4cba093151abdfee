"""A plain TF Serving target (no extension service), over real gRPC: a model removed
from git is unloaded there too, though a plain server cannot list its models.

The server is an in-process ModelService that behaves as TF Serving does for what the
controller uses: an unset config is "no action", a config list replaces the models,
GetModelStatus answers NOT_FOUND for a model it does not have.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from controller.adapters.targets import TargetClient
from controller.decide.fleet import DesiredModel, DesiredState, TargetAddress
from controller.decide.plan import plan
from serving.generated.tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
)

Status = get_model_status_pb2.ModelVersionStatus


class PlainModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self) -> None:
        # name -> (versions, labels)
        self.models: dict[str, tuple[list[int], dict[str, int]]] = {}
        self.reloads = 0

    def GetModelStatus(  # noqa: N802 (gRPC method name)
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        spec = request.model_spec
        if spec.name not in self.models:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"Could not find any versions of model {spec.name}")
        versions, labels = self.models[spec.name]
        if spec.version_label:
            if spec.version_label not in labels:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unknown label")
            versions = [labels[spec.version_label]]
        reply = get_model_status_pb2.GetModelStatusResponse()
        for version in versions:
            reply.model_version_status.add(version=version, state=Status.AVAILABLE)
        return reply

    def HandleReloadConfigRequest(  # noqa: N802 (gRPC method name)
        self, request: model_management_pb2.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> model_management_pb2.ReloadConfigResponse:
        self.reloads += 1
        if request.config.WhichOneof("config") is not None:  # unset: no action, as TF Serving
            self.models = {
                m.name: (sorted(m.model_version_policy.specific.versions), dict(m.version_labels))
                for m in request.config.model_config_list.config
            }
        return model_management_pb2.ReloadConfigResponse()


@pytest.fixture
def plain() -> Iterator[tuple[PlainModelService, str]]:
    service = PlainModelService()
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield service, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def converge(client: TargetClient, desired: DesiredState) -> bool:
    """Plan, apply, observe again, until in sync (bounded)."""
    for _ in range(5):
        result = plan(desired, [client.observe(desired.models)])
        if result.in_sync:
            return True
        for action in result.actions:
            client.apply(action)
    return False


def test_a_model_removed_from_git_is_unloaded_from_a_plain_target(
    plain: tuple[PlainModelService, str],
) -> None:
    service, address = plain
    client = TargetClient(TargetAddress("tf", address), timeout_s=30)
    try:
        hp2 = DesiredModel("hp2", "/models/hp2", "tensorflow", frozenset({1}), {"stable": 1})
        assert converge(client, DesiredState("c1", {"hp2": hp2}))
        assert service.models == {"hp2": ([1], {"stable": 1})}
        observed = client.observe({"hp2": hp2})
        assert not observed.extension and set(observed.models) == {"hp2"}

        # Every spec removed: the client still asks for what it put there, and the
        # push with an empty list unloads it.
        nothing = DesiredState("c2", {})
        assert set(client.observe({}).models) == {"hp2"}
        assert converge(client, nothing)
        assert service.models == {}
        assert client.observe({}).models == {}
    finally:
        client.close()
