"""Benchmark plumbing beyond `common`: models, servers, peers and request bodies.

Owns what the serving benchmarks share: SavedModels made with TensorFlow in a
temp dir (half_plus_two from tests.models; an MLP of any width, which doubles
as the "large model" when it is wide), the real server process on loopback
ports, KServe's ModelServer peer from its own venv, the request bodies each
protocol sends, RSS sampling from /proc, and bounded polling. Pure helpers
(bodies, /proc parsing, ratios) are tested without servers; bounded waits
and free ports are tests/helpers.py's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers import free_port, wait_for

REPO = Path(__file__).resolve().parent.parent
PEER_SCRIPT = REPO.parent / "shared" / "peers" / "kserve_model_server.py"
# Ours, run in KServe's venv: the shared peer plus KServe's V2 gRPC ModelInfer.
GRPC_PEER_SCRIPT = REPO / "benchmarks" / "peers" / "kserve_grpc_peer.py"
KSERVE_INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"
KSERVE_VENV = Path(os.environ.get("KSERVE_VENV", "/work/kserve-venv"))
# Enough for a load generator process to import grpc and connect.
LOADGEN_STARTUP_S = 3.0
PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
KSERVE_HOWTO = (
    "python3 -m venv /work/kserve-venv && /work/kserve-venv/bin/pip install kserve tensorflow-cpu"
    " (or set KSERVE_VENV)"
)


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is zero."""
    if a is None or b is None or b == 0:
        return None
    return a / b


# ------------------------------------------------------------------ models


def make_half_plus_two(base: Path, version: int = 1) -> Path:
    from tests.models import make_half_plus_two as make

    return make(base, version)


def make_mlp(base: Path, version: int = 1, inputs: int = 784, hidden: int = 256,
             outputs: int = 10, seed: int = 1) -> Path:
    """A dense ReLU MLP SavedModel (`x` [None, inputs] float -> `y` [None, outputs])."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    class Mlp(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            rng = tf.random.Generator.from_seed(seed)
            self.w1 = tf.Variable(rng.normal([inputs, hidden], stddev=0.05), name="w1")
            self.b1 = tf.Variable(tf.zeros([hidden]), name="b1")
            self.w2 = tf.Variable(rng.normal([hidden, outputs], stddev=0.05), name="w2")
            self.b2 = tf.Variable(tf.zeros([outputs]), name="b2")

        @tf.function(input_signature=[tf.TensorSpec([None, inputs], tf.float32, name="x")])
        def predict(self, x: Any) -> dict[str, Any]:
            h = tf.nn.relu(tf.matmul(x, self.w1) + self.b1)
            return {"y": tf.matmul(h, self.w2) + self.b2}

    module = Mlp()
    export_dir = Path(base) / str(version)
    tf.saved_model.save(module, str(export_dir),
                        signatures={"serving_default": module.predict.get_concrete_function()})
    return export_dir


def hidden_for_megabytes(megabytes: float, inputs: int = 784, outputs: int = 10) -> int:
    """The MLP width whose float32 weights take about `megabytes` MB."""
    return max(1, int(megabytes * 1e6 / 4 / (inputs + outputs + 1)))


def dir_megabytes(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6


# --------------------------------------------------------- request bodies


def instances(features: int) -> list[Any]:
    """One instance: a scalar for half_plus_two (features == 0), else a vector."""
    if features == 0:
        return [1.0]
    return [[round((i % 17) / 17.0, 4) for i in range(features)]]


def rest_body(features: int) -> bytes:
    return json.dumps({"instances": instances(features)}).encode()


def grpc_predict_body(model: str, features: int) -> bytes:
    """A serialized tensorflow.serving.PredictRequest for input `x`, built as
    TF Serving's own clients build it (tf.make_tensor_proto: tensor_content)."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    array = np.asarray(instances(features), dtype=np.float32)
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(array))
    return request.SerializeToString()


def kserve_infer_body(model: str, features: int) -> bytes:
    """A serialized KServe V2 ModelInferRequest for one instance, built in
    KServe's venv (its protos are not the project's dependency)."""
    python = kserve_python()
    if python is None:
        raise RuntimeError(f"KServe venv missing; create it with: {KSERVE_HOWTO}")
    out = subprocess.run([str(python), str(GRPC_PEER_SCRIPT), "request", model, str(features)],
                         check=True, capture_output=True, text=True, timeout=120)
    return bytes.fromhex(out.stdout.strip())


# --------------------------------------------------------------- processes


def server_env() -> dict[str, str]:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


@contextmanager
def serving_process(flags: Sequence[str], log_path: Path) -> Iterator[Any]:
    """The real `python -m serving` on free loopback ports; stopped on exit."""
    from tests.conftest import ServerProcess

    server = ServerProcess(list(flags), log_path)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def kserve_python() -> Path | None:
    python = KSERVE_VENV / "bin" / "python"
    return python if python.exists() and PEER_SCRIPT.exists() else None


@dataclass(frozen=True)
class Peer:
    url: str
    grpc_address: str
    pid: int


@contextmanager
def kserve_peer(model: str, saved_model: Path, log_path: Path,
                timeout: float = 120.0) -> Iterator[Peer]:
    """KServe's ModelServer serving `saved_model`: its REST base URL, its V2
    gRPC address and its pid."""
    python = kserve_python()
    if python is None:
        raise RuntimeError(f"KServe venv missing; create it with: {KSERVE_HOWTO}")
    http_port, grpc_port = free_port(), free_port()
    log = open(log_path, "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [str(python), str(GRPC_PEER_SCRIPT), "serve", model, str(saved_model), str(http_port),
         str(grpc_port)],
        stdout=log, stderr=subprocess.STDOUT, env=server_env(), start_new_session=True,
    )
    url = f"http://127.0.0.1:{http_port}"
    try:
        if not wait_for(lambda: proc.poll() is not None or _http_ok(f"{url}/v1/models/{model}"),
                          timeout, 0.25) or proc.poll() is not None:
            raise RuntimeError(f"KServe peer did not start: {log_path.read_text()[-2000:]}")
        yield Peer(url, f"127.0.0.1:{grpc_port}", proc.pid)
    finally:
        stop_process_group(proc, grace=20)
        log.close()


@dataclass(frozen=True)
class Floor:
    rest_url: str
    grpc_address: str
    rest_pid: int
    grpc_pid: int


@contextmanager
def floor_servers(log_dir: Path, timeout: float = 60.0) -> Iterator[Floor]:
    """benchmarks.floors' do-nothing REST and gRPC servers, each its own process."""
    rest_port, grpc_port = free_port(), free_port()
    procs = []
    try:
        for kind, port in (("rest", rest_port), ("grpc", grpc_port)):
            log = open(log_dir / f"floor-{kind}.log", "wb")  # noqa: SIM115 (kept by the child)
            procs.append(subprocess.Popen(
                [python_executable(), "-m", "benchmarks.floors", kind, str(port)],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=server_env(),
                start_new_session=True))
            log.close()
        url = f"http://127.0.0.1:{rest_port}"
        if not wait_for(lambda: _http_ok(f"{url}/") and _port_open(grpc_port), timeout, 0.1):
            raise RuntimeError(f"floor servers did not start (logs in {log_dir})")
        yield Floor(url, f"127.0.0.1:{grpc_port}", procs[0].pid, procs[1].pid)
    finally:
        for proc in procs:
            stop_process_group(proc, grace=10)


def stop_process_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM a child started with start_new_session, SIGKILL after `grace` s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# -------------------------------------------------------------------- RSS


def parse_status_kb(status_text: str, key: str) -> int:
    """A `key:  N kB` field of /proc/<pid>/status, in kB (0 when absent)."""
    for line in status_text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def rss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return parse_status_kb(text, "VmRSS") / 1024.0


class RssSampler:
    """Samples a process's RSS every `interval` s on a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.01, max_seconds: float = 600.0) -> None:
        self.pid = pid
        self.interval = interval
        self.max_seconds = max_seconds
        self.peak_mb = 0.0
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set() and time.monotonic() - start < self.max_seconds:
            value = rss_mb(self.pid)
            self.peak_mb = max(self.peak_mb, value)
            self.samples.append((time.monotonic() - start, value))
            self._stop.wait(self.interval)


def python_executable() -> str:
    return sys.executable


# ------------------------------------------------------ the control plane


def model_config(name: str, base: Path, versions: Sequence[int] = ()) -> Any:
    """A ModelConfig for `base`; `versions` pins a specific version policy."""
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelConfig(name=name, base_path=str(base),
                                                 model_platform="tensorflow")
    if versions:
        config.model_version_policy.specific.versions.extend(versions)
    return config


def config_text(configs: Sequence[Any]) -> str:
    """A --model_config_file body holding `configs`."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    whole = model_server_config_pb2.ModelServerConfig()
    whole.model_config_list.config.extend(configs)
    return text_format.MessageToString(whole)


def reload(server: Any, configs: Sequence[Any], timeout: float = 120.0) -> None:
    """HandleReloadConfigRequest with `configs`; raises on an error status."""
    from tensorflow_serving.apis import model_management_pb2

    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.extend(configs)
    response = server.model_stub().HandleReloadConfigRequest(request, timeout=timeout)
    if response.status.error_code != 0:
        raise RuntimeError(f"reload failed: {response.status.error_message}")


def version_states(server: Any, name: str) -> dict[int, str]:
    """{version: state name} from GetModelStatus ({} when the model is unknown)."""
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    try:
        response = server.model_stub().GetModelStatus(request, timeout=5)
    except grpc.RpcError:
        return {}
    names = get_model_status_pb2.ModelVersionStatus.State
    return {s.version: names.Name(s.state) for s in response.model_version_status}


def only_available(states: dict[int, str], version: int) -> bool:
    """True when `version` is AVAILABLE and no other version is (swap finished)."""
    available = {v for v, s in states.items() if s == "AVAILABLE"}
    return available == {version}


MONITORING_CONFIG = 'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n'


def load_attempts(metrics_text: str) -> dict[str, float]:
    """Successful SavedModel loads per model_path from Prometheus text."""
    counts: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if not line.startswith(":tensorflow:cc:saved_model:load_attempt_count{"):
            continue
        labels, _, value = line.rpartition(" ")
        if 'status="success"' not in labels:
            continue
        path = labels.split('model_path="', 1)[1].split('"', 1)[0]
        counts[path] = counts.get(path, 0.0) + float(value)
    return counts


def parse_cpu_seconds(stat_text: str, ticks_per_second: int) -> float:
    """utime + stime of /proc/<pid>/stat (all threads), in seconds."""
    # The command name may hold spaces and parentheses: fields start after the last ")".
    fields = stat_text.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_second


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far (0.0 once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    return parse_cpu_seconds(text, os.sysconf("SC_CLK_TCK"))
