"""Bad input never crashes the real server and never gets a 500 / server-fault code.

Hand-picked cases and a small hypothesis run, over REST (JSON bodies and raw
bytes) and gRPC (TensorProtos), against `hp` (0.5x+2: a DT_FLOAT input `x`,
and DT_STRING tf.Example inputs on classify_x_to_y / regress_x_to_y). After
each batch the server still answers a good request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.conftest import ServerProcess, serving

pytestmark = pytest.mark.integration

TIMEOUT_S = 60.0
# Codes that mean the server, not the request, is at fault.
# What bad input may get: the caller's fault, never the server's (UNKNOWN,
# INTERNAL, UNAVAILABLE, DATA_LOSS), always with a message saying what is wrong.
CLIENT_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
                 grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNIMPLEMENTED}
HYPOTHESIS = settings(max_examples=50, deadline=None, derandomize=True,
                      suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, make_model: Any) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("bad-input")
    make_model(root / "hp", 1)
    with serving(["--model_name=hp", f"--model_base_path={root / 'hp'}"],
                 root / "server.log") as proc:
        yield proc


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.rest_url, timeout=TIMEOUT_S) as client:
        yield client


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Any:
    return prediction_service_pb2_grpc.PredictionServiceStub(server.channel())


def assert_healthy(server: ServerProcess, http: httpx.Client) -> None:
    assert server.proc.poll() is None, server.output()[-3000:]
    reply = http.post("/v1/models/hp:predict", json={"instances": [2.0]})
    assert (reply.status_code, reply.text) == (200, '{"predictions": [3.0]}')


def post(http: httpx.Client, body: bytes, verb: str = "predict") -> httpx.Response:
    reply = http.post(f"/v1/models/hp:{verb}", content=body,
                      headers={"content-type": "application/json"})
    assert reply.status_code < 500, (body[:200], reply.status_code, reply.text)
    assert reply.status_code != 200 or "error" not in reply.json()
    if reply.status_code >= 400:
        assert list(reply.json()) == ["error"], reply.text
        assert isinstance(reply.json()["error"], str) and reply.json()["error"].strip()
    return reply


REST_CASES: list[tuple[str, bytes]] = [
    ("predict", b'{"instances": ["a", "b"]}'),
    ("predict", b'{"instances": [true]}'),
    ("predict", b'{"instances": [null]}'),
    ("predict", b'{"instances": [{"x": "s"}]}'),
    ("predict", b'{"instances": [{"y": 1.0}]}'),
    ("predict", b'{"instances": [[1.0, 2.0], [3.0]]}'),  # ragged
    ("predict", b'{"instances": [1.0, [2.0]]}'),
    ("predict", b'{"inputs": {"x": [[1.0], [2.0, 3.0]]}}'),
    ("predict", b'{"inputs": {"z": 1.0}}'),
    ("predict", b'{"instances": []}'),
    ("predict", b'{"instances": 3}'),
    ("predict", b'{"instances": [2.0], "signature_name": 7}'),
    ("predict", b'{"instances": [{"b64": "AAAA"}]}'),  # b64 for a float input
    ("predict", b'{"signature_name": "classify_x_to_y", "instances": [{"b64": "!!!"}]}'),
    ("predict", b'{"signature_name": "classify_x_to_y", "instances": [{"b64": "QQ="}]}'),
    ("predict", b'{"signature_name": "classify_x_to_y", "instances": [{"b64": 5}]}'),
    ("predict", b'{"signature_name": "classify_x_to_y", "instances": [{"b64": "AAAA"}]}'),
    ("predict", b'{"signature_name": "classify_x_to_y", "instances": ["not an example"]}'),
    ("predict", b'{"instances": [2.0]'),  # invalid JSON
    ("predict", b"[1, 2]"),
    ("predict", b""),
    ("predict", b"\xff\xfe\x00garbage"),
    ("predict", b'{"instances": ["\xff"]}'),
    ("classify", b'{"signature_name": "classify_x_to_y", "examples": [{"x": "a"}]}'),
    ("classify", b'{"signature_name": "classify_x_to_y", "examples": [{"x": [1.0, 2.0]}]}'),
    ("classify", b'{"signature_name": "classify_x_to_y", "examples": [{"y": 1.0}]}'),
    ("classify", b'{"signature_name": "classify_x_to_y", "examples": [3]}'),
    ("classify", b'{"signature_name": "classify_x_to_y", "examples": [{"x": {"b64": "!"}}]}'),
    ("regress", b'{"signature_name": "regress_x_to_y", "examples": [], "context": 1}'),
    ("regress", b'{"signature_name": "regress_x_to_y", "examples": [{"x": null}]}'),
    ("regress", b'{"signature_name": "serving_default", "examples": [{"x": 1.0}]}'),
]


def test_hand_picked_rest_bodies(server: ServerProcess, http: httpx.Client) -> None:
    for verb, body in REST_CASES:
        assert post(http, body, verb).status_code == 400, (verb, body)
    # Out-of-range and non-standard numbers: any answer but a server fault.
    for body in (b'{"instances": [1e400]}', b'{"instances": [NaN]}',
                 b'{"instances": [-Infinity]}'):
        post(http, body)
    # Like TF Serving, the signature's shape is not enforced on the request:
    # an elementwise model answers any rank.
    reply = post(http, b'{"instances": [[[2.0]]]}')
    assert (reply.status_code, reply.json()) == (200, {"predictions": [[[3.0]]]})
    assert_healthy(server, http)


def test_huge_bodies(server: ServerProcess, http: httpx.Client) -> None:
    # Over the body limit: refused before parsing.
    huge = b'{"instances": [' + b"1.0," * (17 << 20) + b"1.0]}"
    assert post(http, huge).status_code == 413
    # Large but allowed: answered in full.
    n = 100_000
    reply = post(http, json.dumps({"instances": [2.0] * n}).encode())
    assert reply.status_code == 200
    assert reply.json()["predictions"] == [3.0] * n
    assert_healthy(server, http)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=12,
)
B64 = st.fixed_dictionaries({"b64": st.text(max_size=12) | st.integers()})


@HYPOTHESIS
@given(verb=st.sampled_from(["predict", "classify", "regress"]),
       key=st.sampled_from(["instances", "inputs", "examples"]),
       value=JSON | st.lists(B64, max_size=3),
       signature=st.sampled_from([None, "serving_default", "classify_x_to_y", "regress_x_to_y"]))
def test_generated_rest_bodies(http: httpx.Client, verb: str, key: str, value: Any,
                               signature: str | None) -> None:
    doc: dict[str, Any] = {key: value}
    if signature is not None:
        doc["signature_name"] = signature
    post(http, json.dumps(doc).encode(), verb)


@HYPOTHESIS
@given(body=st.binary(max_size=64))
def test_generated_raw_bytes(http: httpx.Client, body: bytes) -> None:
    post(http, body)


# ----------------------------------------------------------------- gRPC


def tensor(dtype: int, dims: list[int], **values: Any) -> tensor_pb2.TensorProto:
    return tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]),
        **values)


def grpc_predict(stub: Any, proto: tensor_pb2.TensorProto, alias: str = "x",
                 signature: str = "") -> grpc.StatusCode:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp"
    request.model_spec.signature_name = signature
    request.inputs[alias].CopyFrom(proto)
    try:
        stub.Predict(request, timeout=TIMEOUT_S)
    except grpc.RpcError as exc:
        assert exc.code() in CLIENT_ERRORS, (proto, exc.code(), exc.details())
        assert (exc.details() or "").strip(), (proto, exc.code())
        return exc.code()
    return grpc.StatusCode.OK


BAD = grpc.StatusCode.INVALID_ARGUMENT
OK = grpc.StatusCode.OK
# (tensor, signature, what TF Serving answers). Odd but valid for TensorFlow: fewer
# values than the shape (the last one repeats), and shapes the graph broadcasts.
GRPC_CASES: list[tuple[tensor_pb2.TensorProto, str, grpc.StatusCode]] = [
    (tensor(types_pb2.DT_STRING, [1], string_val=[b"a"]), "", BAD),
    (tensor(types_pb2.DT_INT32, [1], int_val=[1]), "", BAD),  # x is DT_FLOAT
    (tensor(types_pb2.DT_FLOAT, [5], float_val=[1.0, 2.0]), "", OK),
    (tensor(types_pb2.DT_FLOAT, [2], tensor_content=b"\x00" * 7), "", BAD),
    (tensor(types_pb2.DT_FLOAT, [-3], float_val=[1.0]), "", BAD),
    (tensor(types_pb2.DT_FLOAT, [1 << 40]), "", BAD),
    (tensor(types_pb2.DT_FLOAT, [1 << 20, 1 << 20], float_val=[1.0]), "", BAD),
    (tensor(types_pb2.DT_INVALID, [1]), "", BAD),
    (tensor(999, [1]), "", BAD),
    (tensor(types_pb2.DT_FLOAT, [1, 1], float_val=[1.0]), "", OK),
    (tensor(types_pb2.DT_FLOAT, [], float_val=[1.0]), "", OK),
    (tensor(types_pb2.DT_STRING, [1], string_val=[b"not an example"]), "classify_x_to_y", BAD),
    (tensor(types_pb2.DT_FLOAT, [1], float_val=[1.0]), "classify_x_to_y", BAD),
]


def test_hand_picked_tensor_protos(server: ServerProcess, http: httpx.Client,
                                   stub: Any) -> None:
    for proto, signature, expected in GRPC_CASES:
        alias = "inputs" if signature else "x"
        assert grpc_predict(stub, proto, alias, signature) == expected, proto
    assert_healthy(server, http)


DTYPES = [types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_INT32, types_pb2.DT_INT64,
          types_pb2.DT_STRING, types_pb2.DT_BOOL, types_pb2.DT_HALF, types_pb2.DT_UINT8,
          types_pb2.DT_COMPLEX64, types_pb2.DT_INVALID, 77]


@st.composite
def tensor_protos(draw: st.DrawFn) -> tensor_pb2.TensorProto:
    values: dict[str, Any] = draw(st.sampled_from([
        {}, {"float_val": draw(st.lists(st.floats(width=32), max_size=5))},
        {"int_val": draw(st.lists(st.integers(-2**31, 2**31 - 1), max_size=5))},
        {"string_val": draw(st.lists(st.binary(max_size=8), max_size=5))},
        {"tensor_content": draw(st.binary(max_size=24))},
        {"half_val": draw(st.lists(st.integers(0, 2**31 - 1), max_size=5))},
    ]))
    dims = draw(st.lists(st.integers(-2, 6), max_size=3))
    return tensor(draw(st.sampled_from(DTYPES)), dims, **values)


@HYPOTHESIS
@given(proto=tensor_protos(), alias=st.sampled_from(["x", "inputs"]),
       signature=st.sampled_from(["", "classify_x_to_y"]))
def test_generated_tensor_protos(stub: Any, proto: tensor_pb2.TensorProto, alias: str,
                                 signature: str) -> None:
    grpc_predict(stub, proto, alias, signature)


def test_still_healthy_after_everything(server: ServerProcess, http: httpx.Client) -> None:
    assert_healthy(server, http)
    assert "Traceback" not in server.output()
