"""Soak: continuous REST and gRPC traffic with a version swap every few seconds.

Runs ROLLOUTS_SOAK_SECONDS (default 300, as issue 9 asks; the suite runs
under pytest-xdist so it overlaps the rest). Zero failed requests; the
server's RSS, thread count (from /proc/<pid>/status) and open file
descriptors (/proc/<pid>/fd) level off: the last third's maximum stays within
a small margin of the first third's; and
rollouts_loaded_versions never exceeds the two versions of a swap.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import text_format
from tensorflow_serving.apis import model_management_pb2, predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from tests.conftest import ServerProcess, serving
from tests.helpers import wait_for
from tests.traffic import Traffic

pytestmark = pytest.mark.integration

SOAK_S = float(os.environ.get("ROLLOUTS_SOAK_SECONDS", "300"))
SWAP_EVERY_S = 3.0
RSS_MARGIN = 1.15  # the last third's max RSS within 15% of the first third's
FD_MARGIN = 16  # a few client connections may come and go
THREAD_MARGIN = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, make_model: Any) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("soak")
    make_model(root / "hp2", 1)
    make_model(root / "hp2", 2, offset=3.0)
    (root / "models.conf").write_text(
        f'model_config_list {{ config {{ name: "hp2" base_path: "{root / "hp2"}" '
        'model_platform: "tensorflow" model_version_policy { specific { versions: 1 } } } }\n'
    )
    (root / "monitoring.conf").write_text(
        'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n'
    )
    with serving([f"--model_config_file={root / 'models.conf'}",
                  f"--monitoring_config_file={root / 'monitoring.conf'}"],
                 root / "server.log") as proc:
        yield proc


def swap_to(server: ServerProcess, version: int) -> None:
    config = model_server_config_pb2.ModelConfig(
        name="hp2", base_path=str(Path(server.log_path).parent / "hp2"), model_platform="tensorflow"
    )
    text_format.Merge(f"specific {{ versions: {version} }}", config.model_version_policy)
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.append(config)
    server.model_stub().HandleReloadConfigRequest(request, timeout=60)


def proc_status(pid: int) -> tuple[int, int, int]:
    """RSS (kB), threads and open file descriptors of process `pid`."""
    text = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    threads = int(re.search(r"Threads:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, threads, fds


def loaded_versions(server: ServerProcess) -> float:
    text = httpx.get(f"{server.rest_url}/monitoring/prometheus/metrics", timeout=5).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("rollouts_loaded_versions") and 'model="hp2"' in line]
    return max(values, default=0.0)


class GrpcTraffic:
    """One bounded thread of gRPC predicts; counts status codes."""

    def __init__(self, server: ServerProcess) -> None:
        self.codes: Counter[str] = Counter()
        self._stop = threading.Event()
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel())
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> GrpcTraffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        import tensorflow as tf

        request = predict_pb2.PredictRequest()
        request.model_spec.name = "hp2"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0, 2.0], tf.float32))
        end = time.monotonic() + SOAK_S + 60
        while not self._stop.is_set() and time.monotonic() < end:
            try:
                self._stub.Predict(request, timeout=10)
                self.codes["OK"] += 1
            except grpc.RpcError as exc:
                self.codes[exc.code().name] += 1


@pytest.mark.timeout(SOAK_S + 240)  # the soak itself plus setup and the final checks
def test_soak_swaps_under_traffic(server: ServerProcess) -> None:
    rest = Traffic([server.rest_url], max_seconds=SOAK_S + 60, max_requests=10**8).start()
    rpc = GrpcTraffic(server).start()
    samples: list[tuple[int, int, int]] = []
    loaded: list[float] = []
    version = 1
    try:
        assert wait_for(lambda: rest.statuses[200] > 0 and rpc.codes["OK"] > 0, 30, 0.1)
        end = time.monotonic() + SOAK_S
        next_swap = time.monotonic() + SWAP_EVERY_S
        while time.monotonic() < end:
            samples.append(proc_status(server.proc.pid))
            loaded.append(loaded_versions(server))
            if time.monotonic() >= next_swap:
                version = 3 - version
                swap_to(server, version)
                next_swap = time.monotonic() + SWAP_EVERY_S
            time.sleep(0.5)  # the sampling period, not a wait for a condition
    finally:
        rest.stop()
        rpc.stop()
    assert server.proc.poll() is None
    assert set(rest.statuses) == {200}, rest.statuses
    assert set(rpc.codes) == {"OK"}, rpc.codes
    assert 1 <= max(loaded) <= 2, loaded  # the metric is there, and bounded
    third = max(1, len(samples) // 3)
    first, last = samples[:third], samples[-third:]
    assert max(r for r, _, _ in last) <= max(r for r, _, _ in first) * RSS_MARGIN, samples
    assert max(t for _, t, _ in last) <= max(t for _, t, _ in first) + THREAD_MARGIN, samples
    # Every swap opens and closes model files; none may stay open.
    assert max(f for _, _, f in last) <= max(f for _, _, f in first) + FD_MARGIN, samples
