"""Opportunistic batching on the real server (on by default): merged calls whose
answers are the unbatched ones, the plan logged at load, a failing request
that fails alone, and the flag turned off.

Models (tests/models.py), each call slowed by 50 ms so that concurrent
callers arrive while a call runs: `rowwise` (each output row depends on its
whole input row and nothing else; compared bit for bit with unbatched calls
made in this process with TensorFlow) and `mlp` (matrix products, whose
float32 rows may differ in the last bits with the batch size: compared
within MATMUL_EPSILONS float32 epsilons of the row's largest value).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.conftest import ServerProcess, StartServer, serving
from tests.helpers import run_concurrently, wait_for
from tests.models import MLP_IN, ROW_WIDTH, make_mlp, make_rowwise

pytestmark = pytest.mark.integration

METRICS = "/monitoring/prometheus/metrics"
TIMEOUT_S = 30.0
SLOW_S = 0.05
MATMUL_EPSILONS = 8  # measured: at most 3.1 (docs/batching.md)
EPS = float(np.finfo(np.float32).eps)
CALLERS = 8
SIZES = (1, 3, 2, 5, 1, 4, 2, 1)  # rows per caller: ragged


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("opportunistic")
    make_rowwise(base / "rowwise", 1, slow_seconds=SLOW_S)
    make_mlp(base / "mlp", 1, slow_seconds=SLOW_S)
    (base / "models.config").write_text("model_config_list { " + " ".join(
        f'config {{ name: "{name}" base_path: "{base / name}" model_platform: "tensorflow" }}'
        for name in ("rowwise", "mlp")) + " }\n")
    (base / "monitoring.config").write_text(
        f'prometheus_config {{ enable: true path: "{METRICS}" }}\n')
    return base


def flags(root: Path) -> list[str]:
    return [f"--model_config_file={root / 'models.config'}",
            f"--monitoring_config_file={root / 'monitoring.config'}"]


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[ServerProcess]:
    with serving(flags(root), root / "server.log") as proc:  # default flags: batching on
        yield proc


@pytest.fixture(scope="module")
def reference(root: Path) -> Callable[[str, np.ndarray], dict[str, np.ndarray]]:
    import tensorflow as tf

    fns = {m: tf.saved_model.load(str(root / m / "1")).signatures["serving_default"]
           for m in ("rowwise", "mlp")}

    def call(model: str, x: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in fns[model](x=tf.constant(x)).items()}

    return call


def samples(server: ServerProcess, name: str, model: str) -> list[Any]:
    text = httpx.get(server.rest_url + METRICS, timeout=TIMEOUT_S).text
    return [s for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name and s.labels.get("model") == model]


def metric(server: ServerProcess, name: str, model: str) -> float:
    return sum(float(s.value) for s in samples(server, name, model))


def merged_calls(server: ServerProcess, model: str) -> float:
    """Model calls that carried more than one request."""
    alone = sum(float(s.value) for s in samples(server, "rollouts_batch_requests_bucket", model)
                if float(s.labels["le"]) == 1.0)
    return metric(server, "rollouts_batch_requests_count", model) - alone


def rest_predict(http: httpx.Client, model: str, x: np.ndarray,
                 signature: str = "") -> dict[str, np.ndarray]:
    body: dict[str, Any] = {"instances": x.tolist()}
    if signature:
        body["signature_name"] = signature
    response = http.post(f"/v1/models/{model}:predict", json=body)
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code} {response.json()['error']}")
    rows = response.json()["predictions"]
    if isinstance(rows[0], dict):
        return {k: np.array([r[k] for r in rows]) for k in rows[0]}
    return {"logits": np.array(rows)}


def grpc_predict(server: ServerProcess, model: str, x: np.ndarray) -> dict[str, np.ndarray]:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel())
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=x.ravel().tolist())
    for size in x.shape:
        proto.tensor_shape.dim.add().size = size
    request.inputs["x"].CopyFrom(proto)
    response = stub.Predict(request, timeout=TIMEOUT_S)
    out = {}
    for key, tensor in response.outputs.items():
        shape = [d.size for d in tensor.tensor_shape.dim]
        values = tensor.float_val if tensor.dtype == types_pb2.DT_FLOAT else tensor.int64_val
        out[key] = np.array(values).reshape(shape)
    return out


def in_parallel(calls: list[Callable[[], Any]]) -> list[Any]:
    """Each call on its own thread, started together; results (or exceptions) in order."""
    return [result for result, _ in run_concurrently(calls, TIMEOUT_S)]


def inputs(seed: int, rows: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, width)).astype(np.float32)


def assert_rowwise_exact(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert got["y"].astype(np.float32).tobytes() == want["y"].tobytes()
    assert got["top"].astype(np.int64).tolist() == want["top"].tolist()


def assert_matmul_close(got: np.ndarray, want: np.ndarray) -> None:
    got = got.astype(np.float32)
    for g, w in zip(got, want, strict=True):
        scale = float(np.abs(w).max())
        assert float(np.abs(g - w).max()) <= MATMUL_EPSILONS * EPS * scale, (g, w)


def rounds_until_merged(server: ServerProcess, model: str,
                        one_round: Callable[[int], None]) -> None:
    """Rounds of concurrent callers, each round's answers checked by `one_round`,
    until some model call carried several requests (a bounded wait)."""
    seed = [0]

    def round_merged() -> bool:
        seed[0] += 1
        one_round(seed[0])
        return merged_calls(server, model) > 0

    assert wait_for(round_merged, TIMEOUT_S, 0.0), "no model call ever carried two requests"


def test_each_versions_batch_plan_is_decided_at_load_and_logged(
        server: ServerProcess, root: Path) -> None:
    log = server.output()
    assert (f"Opportunistic batching of {root / 'rowwise' / '1'}: batched: serving_default;"
            " not batched: fixed (input 'x' has a fixed leading dimension of 2)") in log
    assert f"Opportunistic batching of {root / 'mlp' / '1'}: batched: serving_default" in log


def test_concurrent_ragged_requests_are_merged_and_answered_as_if_unbatched(
        server: ServerProcess,
        reference: Callable[[str, np.ndarray], dict[str, np.ndarray]]) -> None:
    def one_round(seed: int) -> None:
        xs = [inputs(seed * 100 + i, n, ROW_WIDTH) for i, n in enumerate(SIZES)]
        with httpx.Client(base_url=server.rest_url, timeout=TIMEOUT_S) as http:
            calls: list[Callable[[], Any]] = [
                partial(grpc_predict, server, "rowwise", x) if i % 3 == 2
                else partial(rest_predict, http, "rowwise", x)
                for i, x in enumerate(xs)]
            answers = in_parallel(calls)
        for answer, x in zip(answers, xs, strict=True):
            assert not isinstance(answer, Exception), answer
            assert_rowwise_exact(answer, reference("rowwise", x))

    rounds_until_merged(server, "rowwise", one_round)


def test_matmul_rows_batched_agree_with_unbatched_within_the_documented_tolerance(
        server: ServerProcess,
        reference: Callable[[str, np.ndarray], dict[str, np.ndarray]]) -> None:
    def one_round(seed: int) -> None:
        xs = [inputs(seed * 100 + i, n, MLP_IN) for i, n in enumerate(SIZES)]
        with httpx.Client(base_url=server.rest_url, timeout=TIMEOUT_S) as http:
            answers = in_parallel([partial(rest_predict, http, "mlp", x) for x in xs])
        for answer, x in zip(answers, xs, strict=True):
            assert not isinstance(answer, Exception), answer
            assert_matmul_close(answer["logits"], reference("mlp", x)["logits"])

    rounds_until_merged(server, "mlp", one_round)


def test_a_request_that_fails_the_model_fails_alone(
        server: ServerProcess,
        reference: Callable[[str, np.ndarray], dict[str, np.ndarray]]) -> None:
    bad = inputs(1, 2, ROW_WIDTH)
    bad[1, 1] = np.nan
    goods = [inputs(10 + i, n, ROW_WIDTH) for i, n in enumerate(SIZES[:5])]
    calls: list[Callable[[], Any]] = [partial(grpc_predict, server, "rowwise", x)
                                      for x in [*goods[:2], bad, *goods[2:]]]
    answers = in_parallel(calls)
    failure = answers.pop(2)
    assert isinstance(failure, grpc.RpcError)
    assert failure.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "x has NaN or Inf values" in (failure.details() or "")
    for answer, x in zip(answers, goods, strict=True):
        assert not isinstance(answer, Exception), answer
        assert_rowwise_exact(answer, reference("rowwise", x))


def test_a_signature_with_a_fixed_leading_dim_is_served_unbatched(
        server: ServerProcess,
        reference: Callable[[str, np.ndarray], dict[str, np.ndarray]]) -> None:
    xs = [inputs(i, 2, ROW_WIDTH) for i in range(4)]
    with httpx.Client(base_url=server.rest_url, timeout=TIMEOUT_S) as http:
        answers = in_parallel([partial(rest_predict, http, "rowwise", x, "fixed")
                               for x in xs])
    for answer, x in zip(answers, xs, strict=True):
        assert not isinstance(answer, Exception), answer
        assert_rowwise_exact(answer, reference("rowwise", x))


def test_with_the_flag_off_nothing_is_planned_or_merged(
        root: Path, start_server: StartServer,
        reference: Callable[[str, np.ndarray], dict[str, np.ndarray]]) -> None:
    server = start_server(*flags(root), "--opportunistic_batching=false")
    xs = [inputs(i, n, ROW_WIDTH) for i, n in enumerate(SIZES)]
    with httpx.Client(base_url=server.rest_url, timeout=TIMEOUT_S) as http:
        answers = in_parallel([partial(rest_predict, http, "rowwise", x) for x in xs])
    for answer, x in zip(answers, xs, strict=True):
        assert not isinstance(answer, Exception), answer
        assert_rowwise_exact(answer, reference("rowwise", x))
    assert "Opportunistic batching of" not in server.output()
    assert metric(server, "rollouts_batch_requests_count", "rowwise") == 0
