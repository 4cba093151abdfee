"""The server as a process: startup errors, config-file polling, SIGTERM drain."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests.conftest import REPO
from tests.grpc_requests import predict_request
from tests.helpers import free_port, wait_for

pytestmark = pytest.mark.integration

WAIT_S = 30.0


def config_text(*models: tuple[str, Path]) -> str:
    body = "".join(
        f'  config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" }}\n'
        for name, base in models
    )
    return f"model_config_list {{\n{body}}}\n"


def available(server: Any, name: str) -> bool:
    reply = httpx.get(f"{server.rest_url}/v1/models/{name}", timeout=5)
    return reply.status_code == 200 and any(
        v["state"] == "AVAILABLE" for v in reply.json()["model_version_status"]
    )


def test_malformed_config_exits_nonzero_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.config"
    path.write_text('model_config_list {\n  config {\n    name: "x"\n    nonsense: 1\n  }\n}\n')
    result = subprocess.run(
        [sys.executable, "-m", "serving", f"--model_config_file={path}", "--port=0"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert f"{path}:4:" in result.stderr
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in result.stderr


def test_config_file_polling_picks_up_a_change(
    tmp_path: Path, make_model: Any, start_server: Any
) -> None:
    make_model(tmp_path / "a", 1)
    make_model(tmp_path / "b", 1)
    path = tmp_path / "models.config"
    path.write_text(config_text(("a", tmp_path / "a")))
    server = start_server(
        "--model_config_file", str(path),  # the `--flag value` form
        "--model_config_file_poll_wait_seconds=0.2",
        "--file_system_poll_wait_seconds=0.2",
    )
    assert "Running gRPC ModelServer at 127.0.0.1:" in server.output()
    assert "Exporting HTTP/REST API at:127.0.0.1:" in server.output()
    path.write_text("model_config_list { config { name: ")  # bad edit: old config stays
    assert wait_for(lambda: "Error parsing text-format" in server.output(), WAIT_S)
    assert available(server, "a")
    path.write_text(config_text(("a", tmp_path / "a"), ("b", tmp_path / "b")))
    assert wait_for(lambda: available(server, "b"), WAIT_S), server.output()


def test_poll_zero_ignores_changes_and_sigterm_drains(
    tmp_path: Path, make_model: Any, start_server: Any
) -> None:
    make_model(tmp_path / "a", 1)
    make_model(tmp_path / "b", 1)
    path = tmp_path / "models.config"
    path.write_text(config_text(("a", tmp_path / "a")))
    server = start_server(f"--model_config_file={path}", "--file_system_poll_wait_seconds=0.2")
    path.write_text(config_text(("a", tmp_path / "a"), ("b", tmp_path / "b")))
    # Bounded observation window: several file-system poll periods.
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert httpx.get(f"{server.rest_url}/v1/models/b", timeout=5).status_code == 404
        time.sleep(0.1)
    assert available(server, "a")

    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=20) == 0, server.output()
    assert time.monotonic() - started < 10
    assert "Server stopped" in server.output()


def test_startup_failure_exits_nonzero(tmp_path: Path, make_model: Any, start_server: Any):
    make_model(tmp_path / "broken", 3, fail_above=0.5, warmup=True)
    server = start_server(
        "--model_name=broken", f"--model_base_path={tmp_path / 'broken'}",
        "--max_num_load_retries=0", "--file_system_poll_wait_seconds=0.2", wait=False,
    )
    assert server.proc.wait(timeout=60) != 0
    assert "Failed to start server. Error:" in server.output()
    assert "name: broken version: 3" in server.output()


def test_listeners_open_only_once_startup_models_are_available(
    tmp_path: Path, make_model: Any, start_server: Any
) -> None:
    # Warmup (five calls of 0.5 s) keeps the startup model LOADING for a while.
    make_model(tmp_path / "m", 1, slow_seconds=0.5, warmup=True)
    socket_path = tmp_path / "grpc.sock"
    server = start_server("--model_name=m", f"--model_base_path={tmp_path / 'm'}",
                          f"--grpc_socket_path={socket_path}", wait=False)
    refused = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server.proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", server.rest_port), timeout=1):
                break
        except OSError:
            refused += 1
            time.sleep(0.05)  # the probe period, not a wait for a condition
    assert server.proc.poll() is None, server.output()
    assert refused > 0  # the port was seen closed while the model loaded...
    assert available(server, "m")  # ...and the first connection finds it AVAILABLE
    # The same gRPC services answer on --grpc_socket_path.
    with grpc.insecure_channel(f"unix:{socket_path}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        reply = stub.Predict(predict_request("m", 2.0), timeout=WAIT_S)
    assert list(reply.outputs["y"].float_val) == [3.0]


def test_admin_rest_port_takes_the_listing_off_the_main_port(
    tmp_path: Path, make_model: Any, start_server: Any
) -> None:
    make_model(tmp_path / "m", 1)
    token_file = tmp_path / "token"
    token_file.write_text("adm1n-t0ken\n")
    admin_rest = free_port()
    server = start_server("--model_name=m", f"--model_base_path={tmp_path / 'm'}",
                          f"--admin_token_file={token_file}", f"--admin_rest_port={admin_rest}")
    assert f"Exporting admin HTTP/REST API at:127.0.0.1:{admin_rest}" in server.output()
    refused = httpx.get(f"{server.rest_url}/v1/models", timeout=WAIT_S)
    assert refused.status_code == 403, refused.text
    predict = httpx.post(f"{server.rest_url}/v1/models/m:predict", json={"instances": [2.0]},
                         timeout=WAIT_S)
    assert predict.json() == {"predictions": [3.0]}  # inference stays on the main port
    admin = f"http://127.0.0.1:{admin_rest}"
    assert httpx.get(f"{admin}/v1/models", timeout=WAIT_S).status_code == 401
    listing = httpx.get(f"{admin}/v1/models", timeout=WAIT_S,
                        headers={"Authorization": "Bearer adm1n-t0ken"})
    assert [m["name"] for m in listing.json()["models"]] == ["m"]
    assert httpx.post(f"{admin}/v1/models/m:predict", json={"instances": [2.0]},
                      timeout=WAIT_S).status_code == 404


# Long enough that the REST and gRPC calls overlap even on a loaded machine.
SLOW_S = 5.0


def _until_admitted(call: Callable[[], Any], refused: Callable[[Any], bool]) -> Any:
    """Repeat `call` while the server refuses it for overload (a probe may hold the
    one slot for a moment), for at most WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            result = call()
        except grpc.RpcError as err:
            if not refused(err) or time.monotonic() > deadline:
                raise
            continue
        if not refused(result) or time.monotonic() > deadline:
            return result


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_shutdown_lets_in_flight_requests_finish(
    sig: signal.Signals, tmp_path: Path, make_model: Any, start_server: Any
) -> None:
    make_model(tmp_path / "slow", 1, slow_seconds=SLOW_S)
    make_model(tmp_path / "fast", 1)
    path = tmp_path / "models.config"
    path.write_text(config_text(("slow", tmp_path / "slow"), ("fast", tmp_path / "fast")))
    # One worker and no queue on each transport: while a slow request runs, any
    # other is refused at once, which is how the test knows it is in flight.
    server = start_server(f"--model_config_file={path}", "--grpc_max_threads=1",
                          "--rest_api_num_threads=1", "--max_pending_requests=0")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel())
    rest = f"{server.rest_url}/v1/models/%s:predict"
    results: dict[str, Any] = {}

    def slow_rest() -> None:
        results["rest"] = _until_admitted(
            lambda: httpx.post(rest % "slow", json={"instances": [1.0]}, timeout=WAIT_S),
            lambda reply: isinstance(reply, httpx.Response) and reply.status_code == 429)

    def slow_grpc() -> None:
        results["grpc"] = _until_admitted(
            lambda: stub.Predict(predict_request("slow", 1.0), timeout=WAIT_S),
            lambda err: isinstance(err, grpc.RpcError)
            and err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED)

    def both_busy() -> bool:
        busy_rest = httpx.post(rest % "fast", json={"instances": [1.0]},
                               timeout=WAIT_S).status_code == 429
        try:
            stub.Predict(predict_request("fast", 1.0), timeout=WAIT_S)
            return False
        except grpc.RpcError as err:
            return busy_rest and err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    threads = [threading.Thread(target=f) for f in (slow_rest, slow_grpc)]
    for thread in threads:
        thread.start()
    try:
        assert wait_for(both_busy, WAIT_S, 0.05), results
        server.proc.send_signal(sig)
    finally:
        for thread in threads:
            thread.join(timeout=2 * WAIT_S)
    assert results["rest"].status_code == 200 and results["rest"].json() == {"predictions": [2.5]}
    assert list(results["grpc"].outputs["y"].float_val) == [2.5]
    assert server.proc.wait(timeout=WAIT_S) == 0, server.output()
    assert "Server stopped" in server.output()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_startup_models_load_stops_at_once_saying_so(
    tmp_path: Path, start_server: Any, sig: signal.Signals
) -> None:
    empty = tmp_path / "m"  # no version yet: start-up would wait --reload_config_timeout
    empty.mkdir()
    server = start_server("--model_name=m", f"--model_base_path={empty}",
                          "--file_system_poll_wait_seconds=0.2", wait=False)
    assert wait_for(lambda: "Loading the start-up models: 1" in server.output(), 120, 0.1), (
        server.output())
    server.proc.send_signal(sig)
    assert server.proc.wait(timeout=60) == 128 + sig
    output = server.output()
    assert f"Start-up stopped by {sig.name}: interrupted while waiting for 1 model(s) to " \
        "become available: m" in output
    assert "Timed out" not in output and "Traceback" not in output
