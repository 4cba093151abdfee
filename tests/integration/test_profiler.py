"""--enable_profiler: a TensorFlow profiler trace collected through the main gRPC port.

The real client, `tf.profiler.experimental.client.trace`, against the real
server process while it answers Predicts: the XSpace lands in the logdir
where TensorBoard's profile tab reads it. Also the service's own refusals
(a second concurrent trace, a missing repository root), with a fake tracer.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import grpc
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving.grpc import profiler_service
from tests.grpc_requests import predict_request

pytestmark = pytest.mark.integration

TIMEOUT_S = 30.0


def test_trace_against_the_grpc_port_writes_a_trace(start_server: Any, make_model: Any,
                                                    tmp_path: Path) -> None:
    from tensorflow.python.profiler import profiler_client

    make_model(tmp_path / "hp", 1)
    server = start_server(f"--model_base_path={tmp_path / 'hp'}", "--model_name=hp")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel())
    stop = threading.Event()

    def traffic() -> None:
        for _ in range(10_000):
            if stop.is_set():
                return
            stub.Predict(predict_request("hp", 2.0), timeout=TIMEOUT_S)

    worker = threading.Thread(target=traffic)
    worker.start()
    logdir = tmp_path / "logs"
    try:
        profiler_client.trace(f"grpc://{server.address}", str(logdir), 1000, "", 3)
    finally:
        stop.set()
        worker.join(TIMEOUT_S)
    traces = list((logdir / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1, sorted(logdir.rglob("*"))
    assert traces[0].stat().st_size > 0
    assert traces[0].name == f"{server.address.replace(':', '_')}.xplane.pb"


class _BlockingTracer(profiler_service.Tracer):
    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def trace(self, duration_s: float, workdir: str) -> str | None:
        self.entered.set()
        self.release.wait(TIMEOUT_S)
        return None


def _profile_request(root: str, duration_ms: int = 100) -> bytes:
    return profiler_service.ProfileRequest(
        duration_ms=duration_ms, repository_root=root, session_id="s",
        host_name="h:1").SerializeToString()


def test_one_trace_at_a_time_and_requests_are_checked(tmp_path: Path) -> None:
    from concurrent import futures

    tracer = _BlockingTracer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers([profiler_service.ProfilerService(tracer)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    profile: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        profiler_service.PROFILE)
    try:
        first = profile.future(_profile_request(str(tmp_path)), timeout=TIMEOUT_S)
        assert tracer.entered.wait(TIMEOUT_S)
        with pytest.raises(grpc.RpcError) as busy:
            profile(_profile_request(str(tmp_path)), timeout=TIMEOUT_S)
        assert busy.value.code() is grpc.StatusCode.UNAVAILABLE
        tracer.release.set()
        # The fake collected nothing: the response says empty_trace.
        assert first.result(TIMEOUT_S) == profiler_service.EMPTY_TRACE
        for bad in (_profile_request(""), _profile_request(str(tmp_path), duration_ms=0)):
            with pytest.raises(grpc.RpcError) as err:
                profile(bad, timeout=TIMEOUT_S)
            assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as err:
            monitor: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                profiler_service.MONITOR)
            monitor(b"", timeout=TIMEOUT_S)
        assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED
    finally:
        channel.close()
        server.stop(grace=0)


def test_trace_path_is_where_tensorboard_reads_it() -> None:
    assert profiler_service.trace_path("/l/plugins/profile", "2026_12_02", "127.0.0.1:8500") \
        == "/l/plugins/profile/2026_12_02/127.0.0.1_8500.xplane.pb"
    assert profiler_service.trace_path("/r", "s", "") == "/r/s/localhost.xplane.pb"


def test_enable_profiler_false_leaves_the_service_out(start_server: Any, make_model: Any,
                                                      tmp_path: Path) -> None:
    make_model(tmp_path / "hp", 1)
    server = start_server(f"--model_base_path={tmp_path / 'hp'}", "--model_name=hp",
                          "--enable_profiler=false")
    profile: grpc.UnaryUnaryMultiCallable[bytes, bytes] = server.channel().unary_unary(
        profiler_service.PROFILE)
    with pytest.raises(grpc.RpcError) as err:
        profile(_profile_request(str(tmp_path / "logs")), timeout=TIMEOUT_S)
    assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert not (tmp_path / "logs").exists()
