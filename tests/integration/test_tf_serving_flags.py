"""A TF Serving deployment's command line, unchanged, against the real server.

One server process started with a realistic tensorflow_model_server argv
(every kind of flag: gRPC channel arguments, health service, CORS,
tensor_content, session parallelism and config file, warmup, tags, hardware
flags for a GPU it does not have) must come up and serve; then each flag
that changes what a client sees is checked over real gRPC and HTTP, and the
health service's NOT_SERVING over a Watch stream opened before SIGTERM.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests.conftest import REPO, ServerProcess, wait_for
from tests.grpc_requests import WAIT_S, predict_request

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def deployment_argv(tmp: Path, base: Path) -> list[str]:
    """Flags as a TF Serving Kubernetes deployment passes them (plus what the
    test needs), in TF Serving's own spellings."""
    session = tmp / "session.pbtxt"
    session.write_text("intra_op_parallelism_threads: 2\ninter_op_parallelism_threads: 2\n"
                       "allow_soft_placement: true\n")
    monitoring = tmp / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true path: "/metrics" }\n')
    return [
        "--model_name=half", f"--model_base_path={base}",
        "--grpc_channel_arguments=grpc.max_connection_age_ms=60000,"
        "grpc.lb_policy_name=grpclb,grpc.so_reuseaddr=1",
        "--enable_grpc_healthcheck_service=true",
        "--rest_api_enable_cors_support=true",
        "--enable_serialization_as_tensor_content=true",
        "--rest_api_timeout_in_ms=20000",
        "--file_system_poll_wait_seconds=1",
        "--tensorflow_session_parallelism=0",
        f"--tensorflow_session_config_file={session}",
        "--saved_model_tags=serve",
        "--enable_model_warmup=true",
        "--num_request_iterations_for_warmup=2",
        "--enable_signature_method_name_check=false",
        "--flush_filesystem_caches=true",
        "--remove_unused_fields_from_bundle_metagraph=true",
        "--enable_profiler=true",
        "--per_process_gpu_memory_fraction=0.5",
        "--xla_cpu_compilation_enabled=false",
        "--skip_initialize_tpu=true",
        "--num_tflite_pools=2",
        "--num_tflite_interpreters_per_pool=1",
        "--max_num_load_retries=3",
        "--load_retry_interval_micros=1000000",
        "--num_load_threads=2",
        "--num_unload_threads=1",
        "--grpc_max_threads=16",
        "--rest_api_num_threads=8",
        f"--monitoring_config_file={monitoring}",
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, make_model: Any) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("deployment")
    make_model(tmp / "half", 1)
    proc = ServerProcess(deployment_argv(tmp, tmp / "half"), tmp / "server.log")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()
        print(proc.output()[-4000:])


def test_a_full_deployment_argv_comes_up_and_serves(server: ServerProcess) -> None:
    reply = httpx.post(f"{server.rest_url}/v1/models/half:predict",
                       json={"instances": [1.0, 4.0]}, timeout=WAIT_S)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"predictions": [2.5, 4.0]}
    # The GPU flag asked for something this build lacks: one line says so.
    assert "--per_process_gpu_memory_fraction=0.5: this build has no GPU; ignored" in (
        server.output())


def test_predict_outputs_come_as_tensor_content(server: ServerProcess) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel())
    response = stub.Predict(predict_request("half", 1.0, 2.0, 3.0), timeout=WAIT_S)
    y = response.outputs["y"]
    assert not y.float_val
    assert np.frombuffer(y.tensor_content, dtype="<f4").tolist() == [2.5, 3.0, 3.5]
    assert [d.size for d in y.tensor_shape.dim] == [3]


def test_health_check_says_serving(server: ServerProcess) -> None:
    stub = health_pb2_grpc.HealthStub(server.channel())
    for service in ("", "tensorflow.serving.PredictionService", "ModelService"):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=WAIT_S)
        assert reply.status == SERVING
    with pytest.raises(grpc.RpcError) as info:
        stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=WAIT_S)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_cors_preflight_and_headers(server: ServerProcess) -> None:
    preflight = httpx.options(
        f"{server.rest_url}/v1/models/half:predict", timeout=WAIT_S,
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200
    assert preflight.content == b""
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert preflight.headers["access-control-allow-methods"] == "POST, GET"
    assert preflight.headers["access-control-allow-headers"] == "Content-Type"
    no_origin = httpx.options(f"{server.rest_url}/v1/models/half:predict", timeout=WAIT_S)
    assert no_origin.status_code == 400
    assert "Origin header is missing" in no_origin.json()["error"]
    for reply in (
        httpx.get(f"{server.rest_url}/v1/models/half", timeout=WAIT_S),
        httpx.post(f"{server.rest_url}/v1/models/half:predict", json={"instances": [1.0]},
                   timeout=WAIT_S),
        httpx.get(f"{server.rest_url}/v1/models/nope", timeout=WAIT_S),  # errors too
    ):
        assert reply.headers["access-control-allow-origin"] == "*", reply.url
    # Outside /v1/ (the Prometheus endpoint) nothing is added, as in TF Serving.
    metrics = httpx.get(f"{server.rest_url}/metrics", timeout=WAIT_S)
    assert metrics.status_code == 200
    assert "access-control-allow-origin" not in metrics.headers


def test_without_cors_flag_preflight_is_answered_but_no_headers(
    tmp_path: Path, make_model: Any, start_server: Any
) -> None:
    make_model(tmp_path / "m", 1)
    plain = start_server("--model_name=m", f"--model_base_path={tmp_path / 'm'}")
    preflight = httpx.options(f"{plain.rest_url}/v1/models/m:predict", timeout=WAIT_S,
                              headers={"Origin": "http://localhost:3000"})
    assert preflight.status_code == 200
    assert "access-control-allow-origin" not in preflight.headers
    reply = httpx.get(f"{plain.rest_url}/v1/models/m", timeout=WAIT_S)
    assert "access-control-allow-origin" not in reply.headers
    # No --enable_grpc_healthcheck_service: no health service either.
    with pytest.raises(grpc.RpcError) as info:
        health_pb2_grpc.HealthStub(plain.channel()).Check(
            health_pb2.HealthCheckRequest(), timeout=WAIT_S)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_health_goes_not_serving_while_draining(
    tmp_path: Path, make_model: Any, start_server: Any
) -> None:
    make_model(tmp_path / "m", 1)
    server = start_server("--model_name=m", f"--model_base_path={tmp_path / 'm'}",
                          "--enable_grpc_healthcheck_service")
    channel = grpc.insecure_channel(server.address)
    stream = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=""), timeout=60)
    seen: list[int] = []
    done = threading.Event()

    def read() -> None:
        try:
            for reply in stream:
                seen.append(reply.status)
        except grpc.RpcError:
            pass
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert wait_for(lambda: seen == [SERVING], WAIT_S)
    server.proc.send_signal(signal.SIGTERM)
    assert wait_for(done.is_set, WAIT_S), seen
    assert seen == [SERVING, NOT_SERVING]
    # The open Watch ended with the drain instead of holding it up.
    assert server.proc.wait(timeout=WAIT_S) == 0
    channel.close()


def test_bad_channel_argument_is_refused_naming_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "serving", "--model_base_path=/x",
         "--grpc_channel_arguments=grpc.max_connection_age_ms"],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--grpc_channel_arguments: 'grpc.max_connection_age_ms' is not key=value" in (
        done.stderr)


def test_alts_off_google_cloud_fails_in_one_line(tmp_path: Path, make_model: Any) -> None:
    make_model(tmp_path / "m", 1)
    done = subprocess.run(
        [sys.executable, "-m", "serving", "--model_name=m",
         f"--model_base_path={tmp_path / 'm'}", "--port=0", "--bind_address=127.0.0.1",
         "--use_alts_credentials=true"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "grpc creates ALTS credentials only on Google Cloud" in done.stderr


PLATFORM_ADAPTER = "[type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig]"
WARMED = "Number of warmup records read: 4"


def platform_file(tmp: Path, legacy: str) -> str:
    path = tmp / "platform.pbtxt"
    path.write_text(f'platform_configs {{ key: "tensorflow" value {{ source_adapter_config {{\n'
                    f"  {PLATFORM_ADAPTER} {{ legacy_config {{\n{legacy}\n}} }} }} }} }}\n")
    return f"--platform_config_file={path}"


@pytest.mark.parametrize(
    ("case", "warmed"),
    [
        ("default", True),
        ("--enable_model_warmup=false", False),
        ("platform: warmup and batching", True),
        ("platform: empty legacy_config", False),  # proto3 false: no warmup, as in TF Serving
    ],
)
def test_warmup_flags_and_platform_config(
    case: str, warmed: bool, tmp_path: Path, make_model: Any, start_server: Any
) -> None:
    make_model(tmp_path / "m", 1, warmup=True)
    flags = ["--model_name=m", f"--model_base_path={tmp_path / 'm'}"]
    if case.startswith("--"):
        flags.append(case)
    elif case == "platform: warmup and batching":
        flags.append(platform_file(tmp_path, (
            "session_config { intra_op_parallelism_threads: 1 }\n"
            "batching_parameters { max_batch_size { value: 4 } }\n"
            "enable_model_warmup: true\n"
            "model_warmup_options { num_request_iterations { value: 2 } }")))
    elif case == "platform: empty legacy_config":
        flags.append(platform_file(tmp_path, ""))
    server = start_server(*flags)
    reply = httpx.post(f"{server.rest_url}/v1/models/m:predict", json={"instances": [2.0]},
                       timeout=WAIT_S)
    assert reply.json() == {"predictions": [3.0]}
    assert (WARMED in server.output()) is warmed, server.output()[-3000:]


def test_a_bad_platform_config_stops_start_up_naming_the_file(tmp_path: Path) -> None:
    flag = platform_file(tmp_path, "prefer_tflite_model: true\nnum_tflite_interpreters: 2")
    done = subprocess.run([sys.executable, "-m", "serving", "--model_base_path=/x", flag],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert f"{tmp_path / 'platform.pbtxt'}:" in done.stderr
    assert "num_tflite_interpreters" in done.stderr
