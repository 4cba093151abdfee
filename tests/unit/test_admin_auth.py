"""Admin access control and request limits: pure decisions and the interceptors, with fakes."""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.config.model_server_config_pb2 import ModelServerConfig

from serving import admin_auth, limits
from serving.admin_auth import (
    AdminInterceptor,
    AdminRestGuard,
    TokenFileError,
    bearer_matches,
    is_admin_method,
    read_token_file,
)
from serving.config.flags import FlagError, parse_flags
from serving.core.status import Code, ServingError
from serving.grpc.tensor_limit import TensorLimitInterceptor

TOKEN = "s3cr3t-Token_value"
RELOAD = "/tensorflow.serving.ModelService/HandleReloadConfigRequest"
STATUS = "/tensorflow.serving.ModelService/GetModelStatus"
PREDICT = "/tensorflow.serving.PredictionService/Predict"


class Details(NamedTuple):
    method: str
    invocation_metadata: tuple[tuple[str, str], ...] = ()


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class FakeContext:
    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


SENTINEL: grpc.RpcMethodHandler[Any, str] = grpc.unary_unary_rpc_method_handler(
    lambda request, context: "handled"
)


def intercept(interceptor: grpc.ServerInterceptor, details: Details) -> tuple[Any, list[Details]]:
    seen: list[Details] = []

    def continuation(d: Any) -> Any:
        seen.append(d)
        return SENTINEL

    return interceptor.intercept_service(continuation, details), seen  # type: ignore[arg-type]


def refusal(handler: Any) -> Aborted:
    with pytest.raises(Aborted) as caught:
        handler.unary_unary(b"request bytes", FakeContext())
    return caught.value


# ----- bearer tokens -----


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),  # the scheme is case-insensitive (RFC 7235)
        (f"Bearer  {TOKEN} ", True),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (f"Basic {TOKEN}", False),
        (TOKEN, False),
        ("Bearer ", False),
        ("", False),
        (None, False),
    ],
)
def test_bearer_matches(header: str | None, ok: bool) -> None:
    assert bearer_matches(TOKEN, header) is ok


def test_empty_expected_token_never_matches() -> None:
    assert not bearer_matches("", "Bearer ")


def test_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return a == b

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert bearer_matches(TOKEN, f"Bearer {TOKEN}")
    assert not bearer_matches(TOKEN, "Bearer nope")
    assert calls == [(TOKEN.encode(), TOKEN.encode()), (b"nope", TOKEN.encode())]


@pytest.mark.parametrize(
    ("method", "admin"),
    [
        (RELOAD, True),
        ("/rollouts.serving.v1.RolloutService/SetSplit", True),
        ("/rollouts.serving.v1.RolloutService/ListModels", True),
        (STATUS, False),
        (PREDICT, False),
        ("/tensorflow.serving.PredictionService/GetModelMetadata", False),
    ],
)
def test_admin_methods(method: str, admin: bool) -> None:
    assert is_admin_method(method) is admin


def test_token_file_is_stripped(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")
    assert read_token_file(str(path)) == TOKEN


@pytest.mark.parametrize("content", ["", "\n  \n", "two words", "caf\u00e9-token"])
def test_bad_token_files_are_refused_without_echoing_them(tmp_path: Path, content: str) -> None:
    path = tmp_path / "token"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TokenFileError) as caught:
        read_token_file(str(path))
    assert str(path) in str(caught.value)
    if content.strip():
        assert content.strip() not in str(caught.value)


def test_missing_token_file(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match="cannot read token file"):
        read_token_file(str(tmp_path / "absent"))


# ----- the gRPC interceptor -----


def test_open_methods_pass_through_without_a_token() -> None:
    handler, seen = intercept(AdminInterceptor(TOKEN), Details(PREDICT))
    assert handler is SENTINEL and seen == [Details(PREDICT)]
    handler, _ = intercept(AdminInterceptor(TOKEN), Details(STATUS))
    assert handler is SENTINEL


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer wrong"),), (("x-token", TOKEN),), (("authorization", TOKEN),)],
)
def test_admin_method_without_the_token_is_unauthenticated(
    metadata: tuple[tuple[str, str], ...],
) -> None:
    handler, seen = intercept(AdminInterceptor(TOKEN), Details(RELOAD, metadata))
    assert seen == []  # the real handler is never even looked up
    error = refusal(handler)
    assert error.code is grpc.StatusCode.UNAUTHENTICATED
    assert TOKEN not in error.details and "wrong" not in error.details


def test_admin_method_with_the_token_reaches_the_handler() -> None:
    details = Details(RELOAD, (("authorization", f"Bearer {TOKEN}"),))
    handler, seen = intercept(AdminInterceptor(TOKEN), details)
    assert handler is SENTINEL and seen == [details]


def test_without_a_configured_token_admin_methods_are_open() -> None:
    handler, _ = intercept(AdminInterceptor(""), Details(RELOAD))
    assert handler is SENTINEL


def test_main_port_of_a_split_server_refuses_admin_even_with_the_token() -> None:
    details = Details("/rollouts.serving.v1.RolloutService/SetSplit",
                      (("authorization", f"Bearer {TOKEN}"),))
    handler, seen = intercept(AdminInterceptor(TOKEN, serve_admin=False), details)
    assert seen == []
    error = refusal(handler)
    assert error.code is grpc.StatusCode.PERMISSION_DENIED
    assert "admin port" in error.details


# ----- REST guard -----


def guarded_client(token: str = TOKEN, **modes: bool) -> TestClient:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/v1/models", ok), Route("/v1/models/{m}", ok)])
    app.add_middleware(AdminRestGuard, token=token, **modes)
    return TestClient(app)


def test_rest_listing_needs_the_token() -> None:
    client = guarded_client()
    refused = client.get("/v1/models")
    assert refused.status_code == 401
    assert refused.json() == {"error": admin_auth.UNAUTHENTICATED_MESSAGE}
    assert refused.headers["www-authenticate"] == "Bearer"
    wrong = client.get("/v1/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = client.get("/v1/models", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200 and right.text == "ok"


def test_rest_model_status_stays_open() -> None:
    assert guarded_client().get("/v1/models/m").status_code == 200


def test_main_rest_port_of_a_split_server_refuses_the_listing() -> None:
    client = guarded_client(serve_admin=False)
    refused = client.get("/v1/models", headers={"Authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 403
    assert refused.json() == {"error": "GET /v1/models is served on the admin REST port only"}
    assert client.get("/v1/models/m").status_code == 200  # inference and status stay


def test_admin_rest_port_serves_only_the_admin_paths() -> None:
    client = guarded_client(admin_only=True)
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {TOKEN}"}).text == "ok"
    assert client.get("/v1/models").status_code == 401
    other = client.get("/v1/models/m")
    assert other.status_code == 404
    assert other.json() == {"error": "GET /v1/models/m is not served on the admin port"}
    assert guarded_client("", admin_only=True).get("/v1/models").text == "ok"  # no token set


# ----- flags -----


def test_security_flags_parse() -> None:
    flags = parse_flags([
        "--admin_token_file=/t", "--admin_port=9000", "--admin_bind_address=127.0.0.1",
        "--ssl_config_file=/s", "--model_root=/models", "--max_request_bytes=1024",
        "--max_tensor_elements=10", "--max_pending_requests=0", "--grpc_max_threads=2",
        "--rest_api_num_threads=3", "--admin_rest_port=9001",
    ])
    assert (flags.admin_port, flags.admin_rest_port, flags.max_request_bytes) == (9000, 9001, 1024)
    assert flags.max_pending_requests == 0
    assert (flags.grpc_max_threads, flags.rest_api_num_threads) == (2, 3)
    assert flags.model_root == "/models" and flags.ssl_config_file == "/s"


@pytest.mark.parametrize(
    "arg", ["--admin_port=70000", "--admin_rest_port=-1", "--grpc_max_threads=0",
            "--max_request_bytes=-1", "--max_tensor_elements=-5", "--rest_api_num_threads=0"],
)
def test_bad_security_flags(arg: str) -> None:
    with pytest.raises(FlagError):
        parse_flags([arg])


# ----- tensor element limit -----


def tensor(*dims: int) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=1)
    for size in dims:
        proto.tensor_shape.dim.add().size = size
    return proto


def test_shape_elements() -> None:
    assert limits.shape_elements([]) == 1
    assert limits.shape_elements([3, 4]) == 12
    assert limits.shape_elements([3, -1]) is None
    assert limits.shape_elements([1 << 40, 1 << 40]) == 1 << 80  # no overflow


def test_tensor_protos_over_the_limit_name_the_input() -> None:
    limits.check_tensor_protos({"x": tensor(2, 5)}, 10)
    with pytest.raises(ServingError) as caught:
        limits.check_tensor_protos({"x": tensor(2, 5), "y": tensor(1 << 30, 1 << 30)}, 10)
    assert caught.value.code is Code.INVALID_ARGUMENT
    assert "Input y has 1152921504606846976 elements" in caught.value.message
    limits.check_tensor_protos({"y": tensor(1 << 30)}, 0)  # 0: no limit


def test_arrays_over_the_limit() -> None:
    limits.check_arrays({"x": np.zeros((2, 2))}, 4)
    with pytest.raises(ServingError, match="Input x has 5 elements, more than the limit of 4"):
        limits.check_arrays({"x": np.zeros(5)}, 4)


def test_tensor_limit_interceptor_refuses_before_the_handler() -> None:
    from tensorflow_serving.apis import predict_pb2

    ran: list[str] = []

    def handle(request: Any, context: Any) -> str:
        ran.append("ran")
        return "ok"

    inner: grpc.RpcMethodHandler[Any, str] = grpc.unary_unary_rpc_method_handler(handle)

    def continuation(d: Any) -> Any:
        return inner

    interceptor = TensorLimitInterceptor(8)
    handler: Any = interceptor.intercept_service(continuation, Details(PREDICT))  # type: ignore[arg-type]
    small = predict_pb2.PredictRequest()
    small.inputs["x"].CopyFrom(tensor(2, 4))
    assert handler.unary_unary(small, FakeContext()) == "ok"
    big = predict_pb2.PredictRequest()
    big.inputs["x"].CopyFrom(tensor(3, 3))
    with pytest.raises(Aborted) as caught:
        handler.unary_unary(big, FakeContext())
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "Input x has 9 elements" in caught.value.details
    assert ran == ["ran"]
    other = interceptor.intercept_service(continuation, Details(STATUS))  # type: ignore[arg-type]
    assert other is inner


# ----- admission -----


def test_admission_gate_refuses_beyond_running_plus_pending() -> None:
    gate = limits.AdmissionGate(max_running=2, max_pending=1)
    for _ in range(3):
        gate.enter()
    with pytest.raises(limits.Overloaded) as caught:
        gate.enter()
    assert caught.value.code is Code.RESOURCE_EXHAUSTED
    gate.leave()
    gate.enter()  # room again once one left


def test_unbounded_gate_and_grpc_bound() -> None:
    gate = limits.AdmissionGate(max_running=1, max_pending=-1)
    for _ in range(100):
        gate.enter()
    assert limits.max_concurrent_rpcs(32, 128) == 160
    assert limits.max_concurrent_rpcs(1, 0) == 1
    assert limits.max_concurrent_rpcs(4, -1) is None


# ----- model root -----


def config_with(*paths: str) -> ModelServerConfig:
    config = ModelServerConfig()
    for i, path in enumerate(paths):
        config.model_config_list.config.add(name=f"m{i}", base_path=path,
                                            model_platform="tensorflow")
    return config


def test_base_paths_inside_the_root_pass(tmp_path: Path) -> None:
    root = tmp_path / "models"
    (root / "a").mkdir(parents=True)
    limits.check_model_root(config_with(str(root / "a"), str(root / "not-yet")), str(root))
    limits.check_model_root(config_with(str(root / "a" / ".." / "a")), str(root))


@pytest.mark.parametrize(
    "escape",
    [
        lambda root, outside: str(root / ".." / "outside"),
        lambda root, outside: str(root.parent / "models-sibling"),  # a shared prefix
        lambda root, outside: str(root / "link"),  # a symlink out of the root
        lambda root, outside: "gs://bucket/model",
    ],
)
def test_escapes_are_invalid_argument_naming_model_and_path(
    tmp_path: Path, escape: Callable[[Path, Path], str]
) -> None:
    root, outside = tmp_path / "models", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "link")
    path = escape(root, outside)
    with pytest.raises(ServingError) as caught:
        limits.check_model_root(config_with(str(root), path), str(root))
    assert caught.value.code is Code.INVALID_ARGUMENT
    assert caught.value.message.startswith(f"Model m1 base_path {path} resolves to ")
    assert f"outside --model_root {root}" in caught.value.message


def test_no_root_means_no_confinement() -> None:
    limits.check_model_root(config_with("/anywhere"), "")
