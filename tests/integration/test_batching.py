"""--enable_batching on the real server: merged calls, correct rows, a full queue.

One server for the module with three models: `fast` (half_plus_two), `slow`
(every model call sleeps 1 s) and `gap` (swapped resource-preserving while
requests wait on the event loop). One batch thread, batches of up to 4 rows padded
to the allowed sizes 2 or 4, at most 2 batches waiting per queue.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import get_model_status_pb2

from serving.generated import rollouts_serving_pb2 as rpb
from tests.conftest import ServerProcess, serving, wait_for
from tests.grpc_requests import grpc_predict
from tests.helpers import run_concurrently

pytestmark = pytest.mark.integration

METRICS = "/monitoring/prometheus/metrics"
TIMEOUT_S = 30.0
SLOW_S = 1.0
QUEUE_FULL = "The batch scheduling queue to which this task was submitted is full"
BATCHING = """\
max_batch_size { value: 4 }
batch_timeout_micros { value: 20000 }
max_enqueued_batches { value: 2 }
num_batch_threads { value: 1 }
allowed_batch_sizes: 2
allowed_batch_sizes: 4
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("batching")


@pytest.fixture(scope="module")
def server(root: Path, make_model: Any) -> Iterator[ServerProcess]:
    make_model(root / "fast", 1)
    make_model(root / "slow", 1, slow_seconds=SLOW_S)
    make_model(root / "gap", 1)
    config = root / "models.config"
    config.write_text("model_config_list { " + " ".join(
        f'config {{ name: "{name}" base_path: "{root / name}" model_platform: "tensorflow" }}'
        for name in ("fast", "slow", "gap")) + " }\n")
    (root / "monitoring.config").write_text(
        f'prometheus_config {{ enable: true path: "{METRICS}" }}\n')
    (root / "batching.config").write_text(BATCHING)
    with serving([f"--model_config_file={config}",
                  f"--monitoring_config_file={root / 'monitoring.config'}",
                  "--enable_batching",
                  f"--batching_parameters_file={root / 'batching.config'}"],
                 root / "server.log") as proc:
        yield proc


def rest_predict(http: httpx.Client, model: str, x: float) -> float:
    response = http.post(f"/v1/models/{model}:predict", json={"instances": [x]})
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code} {response.json()['error']}")
    return float(response.json()["predictions"][0])


def metric_samples(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(server.rest_url + METRICS, timeout=TIMEOUT_S).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_concurrent_grpc_and_rest_requests_are_merged_and_answered_row_by_row(
        server: ServerProcess) -> None:
    clients, per_client = 8, 5

    def client(c: int) -> list[tuple[float, float]]:
        answers = []
        with httpx.Client(base_url=server.rest_url, timeout=TIMEOUT_S) as http:
            for i in range(per_client):
                x = float(c * 100 + i)
                if (c + i) % 2:
                    y = grpc_predict(server, "fast", x)
                else:
                    y = rest_predict(http, "fast", x)
                answers.append((x, y))
        return answers

    results = run_concurrently([partial(client, c) for c in range(clients)])
    for answers, _ in results:
        assert not isinstance(answers, Exception), answers
        assert [y for _, y in answers] == [0.5 * x + 2 for x, _ in answers]

    samples = metric_samples(server)
    labels = (("model", "fast"), ("version", "1"))
    requests = samples[("rollouts_batch_requests_sum", labels)]
    calls = samples[("rollouts_batch_requests_count", labels)]
    assert requests == clients * per_client
    assert calls < requests  # some model calls carried several requests
    # Every model call ran 2 or 4 rows: single rows were padded up.
    tf = ":tensorflow:serving:batching_session:processed_batch_size_bucket"
    assert samples[(tf, (("le", "1"),))] == 0
    assert samples[(tf, (("le", "4"),))] == calls


def test_a_full_queue_answers_unavailable_and_503_without_waiting(
        server: ServerProcess) -> None:
    # One 1 s model call at a time; a queue holds at most 2 batches of 4, so
    # of 16 simultaneous requests at most 12 are accepted.
    with httpx.Client(base_url=server.rest_url, timeout=TIMEOUT_S) as http:
        calls: list[Callable[[], Any]] = [
            partial(grpc_predict, server, "slow", float(i)) if i % 2
            else partial(rest_predict, http, "slow", float(i))
            for i in range(16)
        ]
        results = run_concurrently(calls)
    served = [(i, r, t) for i, (r, t) in enumerate(results) if not isinstance(r, Exception)]
    refused = [(i, r, t) for i, (r, t) in enumerate(results) if isinstance(r, Exception)]
    assert len(refused) >= 4
    for i, y, _ in served:
        assert y == 0.5 * i + 2
    for _, exc, _ in refused:
        if isinstance(exc, grpc.RpcError):
            assert exc.code() == grpc.StatusCode.UNAVAILABLE
            assert QUEUE_FULL in (exc.details() or "")
        else:
            assert str(exc).startswith("503 " + QUEUE_FULL), exc
    # Refusals come back at once, before even the first model call finishes.
    assert max(t for _, _, t in refused) < min(t for _, _, t in served)


def gap_states(server: ServerProcess) -> dict[int, str]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "gap"
    response = server.model_stub().GetModelStatus(request, timeout=TIMEOUT_S)
    return {s.version: get_model_status_pb2.ModelVersionStatus.State.Name(s.state)
            for s in response.model_version_status}


def test_requests_in_a_resource_preserving_gap_wait_on_the_loop(
        server: ServerProcess, root: Path, make_model: Any) -> None:
    """Batched REST requests take their handle on the event loop; arriving
    while nothing of `gap` is AVAILABLE, they await the new version there, and
    the loop keeps answering other requests meanwhile."""
    server.rollout_stub().SetTransitionPolicy(
        rpb.SetTransitionPolicyRequest(model_name="gap", policy=rpb.RESOURCE_PRESERVING),
        timeout=TIMEOUT_S)
    assert grpc_predict(server, "gap", 1.0) == 2.5
    # v2 replays warmup records on a model whose every call sleeps 1 s: its
    # load (after v1's unload) takes 5 s, the gap the requests below fall into.
    make_model(root / "gap", 2, offset=3.0, slow_seconds=SLOW_S, warmup=True)
    assert wait_for(lambda: gap_states(server) == {2: "LOADING", 1: "END"}, TIMEOUT_S, 0.02), \
        gap_states(server)
    with httpx.Client(base_url=server.rest_url, timeout=TIMEOUT_S) as http:
        calls: list[Callable[[], Any]] = [
            partial(grpc_predict, server, "gap", float(i)) if i % 2
            else partial(rest_predict, http, "gap", float(i))
            for i in range(4)
        ]
        waiting = threading.Thread(target=lambda: outcomes.extend(run_concurrently(calls)))
        outcomes: list[tuple[Any, float]] = []
        waiting.start()
        # While they wait, the event loop answers another model: it is not blocked.
        assert rest_predict(http, "fast", 4.0) == 4.0
        during = gap_states(server)
        waiting.join(TIMEOUT_S * 2)
    assert not waiting.is_alive()
    assert during[2] == "LOADING", during  # (a 5 s window) the gap was still open
    assert [y for y, _ in outcomes] == [0.5 * i + 3 for i in range(4)]
