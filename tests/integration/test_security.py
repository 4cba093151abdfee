"""Security guarantees against the real server process and the real client stubs.

Two servers for the whole module: `tls` (server-auth TLS, admin token,
--model_root, tight limits, one gRPC and one REST worker) and `mtls` (mutual
TLS, admin token, a separate admin port, an empty config the controller fills).
Certificates are a throwaway CA, server and client made with openssl.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import text_format
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config.model_server_config_pb2 import ModelServerConfig

from controller.adapters.channel import client_channel
from controller.adapters.targets import TargetError
from controller.decide.fleet import TargetAddress
from controller.decide.plan import ReloadConfig
from controller.runtime.runner import Controller, ControllerSettings, target_client
from serving.generated import rollouts_serving_pb2 as ext
from serving.generated import rollouts_serving_pb2_grpc as ext_grpc
from tests.conftest import REPO, ServerProcess
from tests.gitops import Person, spec
from tests.grpc_requests import floats, predict_request
from tests.helpers import free_port, wait_for

pytestmark = pytest.mark.integration

TOKEN = "adm1n-Tok3n-for-tests"
GIT_SECRET = "gitpass-Secret-42"
MAX_ELEMENTS = 16
MAX_BYTES = 64 * 1024
# A refusal for overload must come well before a slow call could end: that is what
# "at once" means here, whatever the machine's speed (at load 15 a refusal took 1.9 s).
SLOW_S = 8.0
FAST_S = SLOW_S / 2
READY_S = 600.0
# One worker per protocol plus one waiting: a third call at once is overload. (Not 0:
# grpc frees a slot just after the client sees the reply, so back-to-back calls
# would race a limit of exactly one.)
PENDING = 1
Code = grpc.StatusCode


# ----- certificates -----


def _openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _leaf(cwd: Path, name: str, usage: str, sans: str) -> None:
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(cwd, "req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={name}")
    (cwd / f"{name}.ext").write_text(f"extendedKeyUsage={usage}\n" + (
        f"subjectAltName={sans}\n" if sans else ""))
    _openssl(cwd, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
             "-extfile", f"{name}.ext")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    cwd = tmp_path_factory.mktemp("pki")
    _openssl(cwd, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=rollouts-test-ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _leaf(cwd, "server", "serverAuth", "IP:127.0.0.1,DNS:localhost")
    _leaf(cwd, "client", "clientAuth", "")
    files = {name: (cwd / name).read_bytes() for name in
             ("ca.pem", "server.key", "server.pem", "client.key", "client.pem")}
    files["dir"] = str(cwd).encode()
    return files


# ----- servers -----


def config_text(*models: tuple[str, Path]) -> str:
    body = "".join(
        f'  config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" }}\n'
        for name, base in models
    )
    return f"model_config_list {{\n{body}}}\n"


def ssl_config(pki: dict[str, bytes], directory: Path, client_verify: bool) -> Path:
    # The server's PEMs inline, as TF Serving's docs show; the CA by file path (ours).
    ca = directory / "ca.pem"
    ca.write_bytes(pki["ca.pem"])

    def inline(pem: bytes) -> str:
        return '"' + pem.decode().replace("\n", "\\n") + '"'

    path = directory / f"ssl-{client_verify}.cfg"
    path.write_text(f"server_key: {inline(pki['server.key'])}\n"
                    f"server_cert: {inline(pki['server.pem'])}\n"
                    f'custom_ca: "ca.pem"\nclient_verify: {str(client_verify).lower()}\n')
    return path


def answers(make_channel: Callable[[], grpc.Channel]) -> bool:
    channel = make_channel()
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "__probe__"
    try:
        model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=1)
    except grpc.RpcError as exc:
        return exc.code() != Code.UNAVAILABLE
    finally:
        channel.close()
    return True


def start(args: list[str], log: Path, make_channel: Callable[[str], grpc.Channel]
          ) -> ServerProcess:
    server = ServerProcess(args, log)
    ok = wait_for(lambda: server.proc.poll() is not None
                  or answers(lambda: make_channel(server.address)), READY_S, 0.2)
    if not ok or server.proc.poll() is not None:
        server.stop()
        raise AssertionError(f"server not ready:\n{server.output()}")
    return server


class Tls:
    """The server-auth TLS server and clients for it."""

    def __init__(self, server: ServerProcess, ca: bytes, root: Path, outside: Path) -> None:
        self.server, self.ca, self.root, self.outside = server, ca, root, outside

    def channel(self, token: str = "") -> grpc.Channel:
        return client_channel(self.server.address, root_ca=self.ca, token=token)

    def models(self, token: str = "") -> Any:
        return model_service_pb2_grpc.ModelServiceStub(self.channel(token))

    def ext(self, token: str = "") -> Any:
        return ext_grpc.RolloutServiceStub(self.channel(token))

    def predict(self) -> Any:
        return prediction_service_pb2_grpc.PredictionServiceStub(self.channel())

    def config(self) -> ModelServerConfig:
        """The applied config, read through the extension service with the token."""
        reply = self.ext(TOKEN).GetConfig(ext.GetConfigRequest(), timeout=10)
        return text_format.Parse(reply.model_server_config, ModelServerConfig())


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory, make_model: Any,
        pki: dict[str, bytes]) -> Iterator[Tls]:
    tmp = tmp_path_factory.mktemp("tls")
    root, outside = tmp / "models", tmp / "outside"
    make_model(root / "hp2", 1)
    make_model(root / "slow", 1, slow_seconds=SLOW_S)
    make_model(outside, 1)
    os.symlink(outside, root / "escape")  # a link inside the root pointing out of it
    config = tmp / "models.config"
    config.write_text(config_text(("hp2", root / "hp2"), ("slow", root / "slow")))
    (tmp / "token").write_text(TOKEN + "\n")
    args = [
        f"--model_config_file={config}", f"--ssl_config_file={ssl_config(pki, tmp, False)}",
        f"--admin_token_file={tmp / 'token'}", f"--model_root={root}",
        f"--max_tensor_elements={MAX_ELEMENTS}", f"--max_request_bytes={MAX_BYTES}",
        "--grpc_max_threads=1", "--rest_api_num_threads=1", f"--max_pending_requests={PENDING}",
        "--file_system_poll_wait_seconds=0.5", "--reload_config_timeout_seconds=20",
    ]
    server = start(args, tmp / "server.log",
                   lambda address: client_channel(address, root_ca=pki["ca.pem"]))
    yield Tls(server, pki["ca.pem"], root, outside)
    server.stop()


def reload_request(config: ModelServerConfig) -> model_management_pb2.ReloadConfigRequest:
    request = model_management_pb2.ReloadConfigRequest()
    request.config.CopyFrom(config)
    return request


def rpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


# ----- admin token (server-auth TLS) -----


def test_inference_and_status_stay_open_over_tls(tls: Tls) -> None:
    reply = tls.predict().Predict(predict_request("hp2", 2.0), timeout=10)
    assert list(reply.outputs["y"].float_val) == [3.0]
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "hp2"
    assert tls.models().GetModelStatus(status, timeout=10).model_version_status[0].state == 30
    rest = httpx.post(f"{tls.server.rest_url}/v1/models/hp2:predict",
                      json={"instances": [2.0]}, timeout=10)
    assert rest.status_code == 200 and rest.json() == {"predictions": [3.0]}


def test_plaintext_client_cannot_talk_to_a_tls_server(tls: Tls) -> None:
    channel = grpc.insecure_channel(tls.server.address)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    error = rpc_error(lambda: stub.Predict(predict_request("hp2", 2.0), timeout=5))
    channel.close()
    assert error.code() == Code.UNAVAILABLE


@pytest.mark.parametrize("token", ["", "wrong-token"])
def test_reload_without_the_token_is_refused_and_nothing_applied(tls: Tls, token: str) -> None:
    before = tls.config()
    changed = ModelServerConfig()
    changed.CopyFrom(before)
    del changed.model_config_list.config[1:]  # would unload "slow"
    error = rpc_error(lambda: tls.models(token).HandleReloadConfigRequest(
        reload_request(changed), timeout=10))
    assert error.code() == Code.UNAUTHENTICATED
    assert error.details() == "Missing or invalid admin bearer token"
    assert tls.config() == before


def test_reload_with_the_token_is_applied(tls: Tls) -> None:
    config = tls.config()
    config.model_config_list.config[0].version_labels["stable"] = 1
    reply = tls.models(TOKEN).HandleReloadConfigRequest(reload_request(config), timeout=30)
    assert reply.status.error_code == 0
    assert dict(tls.config().model_config_list.config[0].version_labels) == {"stable": 1}


def test_extension_calls_need_the_token(tls: Tls) -> None:
    for call in (
        lambda stub: stub.ListModels(ext.ListModelsRequest(), timeout=10),
        lambda stub: stub.GetConfig(ext.GetConfigRequest(), timeout=10),
        lambda stub: stub.SetSplit(ext.SetSplitRequest(split=ext.Split(model_name="hp2")),
                                   timeout=10),
        lambda stub: stub.ClearSplit(ext.ClearSplitRequest(model_name="hp2"), timeout=10),
    ):
        assert rpc_error(lambda c=call: c(tls.ext())).code() == Code.UNAUTHENTICATED  # type: ignore[misc]
        assert rpc_error(lambda c=call: c(tls.ext("nope"))).code() == Code.UNAUTHENTICATED  # type: ignore[misc]
    names = [m.name for m in tls.ext(TOKEN).ListModels(ext.ListModelsRequest(), timeout=10).models]
    assert names == ["hp2", "slow"]
    tls.ext(TOKEN).ClearSplit(ext.ClearSplitRequest(model_name="hp2"), timeout=10)


def test_rest_listing_needs_the_token(tls: Tls) -> None:
    url = f"{tls.server.rest_url}/v1/models"
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=10).status_code == 401
    reply = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert reply.status_code == 200 and len(reply.json()["models"]) == 2
    assert httpx.get(f"{url}/hp2", timeout=10).status_code == 200  # status stays open


# ----- model root -----


@pytest.mark.parametrize("via", ["dotdot", "symlink"])
def test_base_path_escaping_model_root_is_invalid_argument(tls: Tls, via: str) -> None:
    before = tls.config()
    escape = str(tls.root / ".." / "outside") if via == "dotdot" else str(tls.root / "escape")
    config = ModelServerConfig()
    config.CopyFrom(before)
    config.model_config_list.config.add(name="evil", base_path=escape,
                                        model_platform="tensorflow")
    error = rpc_error(lambda: tls.models(TOKEN).HandleReloadConfigRequest(
        reload_request(config), timeout=30))
    assert error.code() == Code.INVALID_ARGUMENT
    assert error.details() == (f"Model evil base_path {escape} resolves to "
                               f"{os.path.realpath(tls.outside)}, outside --model_root {tls.root}")
    assert tls.config() == before


# ----- limits -----


def test_too_many_tensor_elements_is_invalid_argument_naming_the_input(tls: Tls) -> None:
    # A tiny proto declaring a huge shape is refused from the shape alone.
    huge = predict_request("hp2", tensor=floats(1.0, dims=(1 << 20, 1 << 20)))
    error = rpc_error(lambda: tls.predict().Predict(huge, timeout=10))
    assert error.code() == Code.INVALID_ARGUMENT
    assert error.details() == (f"Input x has {1 << 40} elements, more than the limit of "
                               f"{MAX_ELEMENTS} (--max_tensor_elements)")
    reply = httpx.post(f"{tls.server.rest_url}/v1/models/hp2:predict",
                       json={"instances": [1.0] * (MAX_ELEMENTS + 1)}, timeout=10)
    assert reply.status_code == 400
    assert "Input x has 17 elements, more than the limit of 16" in reply.json()["error"]


def test_request_bodies_over_the_limit_are_refused(tls: Tls) -> None:
    big = predict_request("hp2", tensor=floats(*([1.0] * (MAX_BYTES // 4 + 10))))
    error = rpc_error(lambda: tls.predict().Predict(big, timeout=10))
    assert error.code() == Code.RESOURCE_EXHAUSTED
    reply = httpx.post(f"{tls.server.rest_url}/v1/models/hp2:predict",
                       content=b"[" + b"1," * MAX_BYTES + b"1]", timeout=10,
                       headers={"content-type": "application/json"})
    assert reply.status_code == 413


def refused_quickly(call: Callable[[], bool]) -> Callable[[], bool]:
    """A predicate: one call was refused for overload, and fast."""
    def check() -> bool:
        began = time.monotonic()
        refused = call()
        assert time.monotonic() - began < FAST_S or not refused
        return refused
    return check


def saturate(call: Callable[[], Any], stop: threading.Event) -> list[threading.Thread]:
    """Enough threads repeating a slow call to hold every worker and queue slot
    until `stop` (a refused call is simply repeated; each call ends in seconds)."""
    def loop() -> None:
        deadline = time.monotonic() + 20 * SLOW_S
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                call()
            except (grpc.RpcError, httpx.HTTPError):
                stop.wait(0.01)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(1 + PENDING)]
    for thread in threads:
        thread.start()
    return threads


def release(threads: list[threading.Thread], stop: threading.Event) -> None:
    stop.set()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive()


def test_grpc_overload_is_resource_exhausted_at_once(tls: Tls) -> None:
    stub = tls.predict()
    stub.Predict(predict_request("slow", 1.0), timeout=120)  # warm, as in the REST test
    stop = threading.Event()
    slow = saturate(lambda: stub.Predict(predict_request("slow", 1.0), timeout=120), stop)

    def overloaded() -> bool:
        # A call that finds the one queue slot free waits behind a slow call; on a
        # loaded machine that can take several SLOW_S, so its deadline is generous.
        try:
            stub.Predict(predict_request("hp2", 1.0), timeout=120)
        except grpc.RpcError as exc:
            assert exc.code() == Code.RESOURCE_EXHAUSTED, exc
            return True
        return False

    try:
        assert wait_for(refused_quickly(overloaded), 10 * SLOW_S, 0.05)
    finally:
        release(slow, stop)
    # The queue drains: calls are served again.
    assert wait_for(lambda: not overloaded(), 5)


def test_rest_overload_is_429_at_once(tls: Tls) -> None:
    url = tls.server.rest_url
    slow_call = httpx.post(f"{url}/v1/models/slow:predict", json={"instances": [1.0]}, timeout=120)
    assert slow_call.status_code == 200  # warm: a first call may take longer than SLOW_S
    stop = threading.Event()
    slow = saturate(lambda: httpx.post(f"{url}/v1/models/slow:predict",
                                       json={"instances": [1.0]}, timeout=120), stop)

    def overloaded() -> bool:
        reply = httpx.post(f"{url}/v1/models/hp2:predict", json={"instances": [1.0]}, timeout=120)
        assert reply.status_code in (200, 429), reply.text
        return reply.status_code == 429

    try:
        assert wait_for(refused_quickly(overloaded), 10 * SLOW_S, 0.05)
    finally:
        release(slow, stop)
    assert httpx.post(f"{url}/v1/models/hp2:predict", json={"instances": [1.0]},
                      timeout=10).status_code == 200


def test_the_token_never_appears_in_the_server_log(tls: Tls) -> None:
    # Every test above sent the token or a wrong one; none of it may be logged.
    rpc_error(lambda: tls.models("leaky-wrong-token").HandleReloadConfigRequest(
        reload_request(tls.config()), timeout=10))
    output = tls.server.output()
    assert "Running gRPC ModelServer" in output
    assert TOKEN not in output and "leaky-wrong-token" not in output


# ----- mutual TLS, separate admin port, the controller -----


class Mtls:
    def __init__(self, server: ServerProcess, admin: str, pki: dict[str, bytes],
                 root: Path, tmp: Path) -> None:
        self.server, self.admin, self.pki, self.root, self.tmp = server, admin, pki, root, tmp

    def channel(self, address: str, token: str = "", cert: bool = True) -> grpc.Channel:
        return client_channel(address, token=token, root_ca=self.pki["ca.pem"],
                              client_cert=self.pki["client.pem"] if cert else b"",
                              client_key=self.pki["client.key"] if cert else b"")


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory, make_model: Any,
         pki: dict[str, bytes]) -> Iterator[Mtls]:
    tmp = tmp_path_factory.mktemp("mtls")
    root = tmp / "models"
    make_model(root / "hp2", 1)
    config = tmp / "empty.config"
    config.write_text("model_config_list {}\n")
    (tmp / "token").write_text(TOKEN)
    admin_port = free_port()
    args = [
        f"--model_config_file={config}", f"--ssl_config_file={ssl_config(pki, tmp, True)}",
        f"--admin_token_file={tmp / 'token'}", f"--admin_port={admin_port}",
        "--admin_bind_address=127.0.0.1", f"--model_root={root}",
        "--file_system_poll_wait_seconds=0.2",
    ]

    def with_cert(address: str) -> grpc.Channel:
        return client_channel(address, root_ca=pki["ca.pem"], client_cert=pki["client.pem"],
                              client_key=pki["client.key"])

    server = start(args, tmp / "server.log", with_cert)
    yield Mtls(server, f"127.0.0.1:{admin_port}", pki, root, tmp)
    server.stop()


def test_mtls_refuses_a_client_without_a_certificate(mtls: Mtls) -> None:
    stub = model_service_pb2_grpc.ModelServiceStub(mtls.channel(mtls.server.address, cert=False))
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "hp2"
    assert rpc_error(lambda: stub.GetModelStatus(request, timeout=5)).code() == Code.UNAVAILABLE
    with_cert = model_service_pb2_grpc.ModelServiceStub(mtls.channel(mtls.server.address))
    assert rpc_error(lambda: with_cert.GetModelStatus(request, timeout=5)).code() == Code.NOT_FOUND


def test_admin_port_serves_admin_and_main_port_refuses_it(mtls: Mtls) -> None:
    empty = reload_request(ModelServerConfig())
    main = model_service_pb2_grpc.ModelServiceStub(mtls.channel(mtls.server.address, TOKEN))
    error = rpc_error(lambda: main.HandleReloadConfigRequest(empty, timeout=10))
    assert error.code() == Code.PERMISSION_DENIED
    assert "admin port only" in (error.details() or "")
    main_ext = ext_grpc.RolloutServiceStub(mtls.channel(mtls.server.address, TOKEN))
    error = rpc_error(lambda: main_ext.ListModels(ext.ListModelsRequest(), timeout=10))
    assert error.code() == Code.PERMISSION_DENIED
    no_token = model_service_pb2_grpc.ModelServiceStub(mtls.channel(mtls.admin))
    error = rpc_error(lambda: no_token.HandleReloadConfigRequest(empty, timeout=10))
    assert error.code() == Code.UNAUTHENTICATED
    admin = model_service_pb2_grpc.ModelServiceStub(mtls.channel(mtls.admin, TOKEN))
    assert admin.HandleReloadConfigRequest(empty, timeout=10).status.error_code == 0
    # Inference is not served on the admin port at all.
    predict = prediction_service_pb2_grpc.PredictionServiceStub(mtls.channel(mtls.admin))
    error = rpc_error(lambda: predict.Predict(predict_request("hp2", 1.0), timeout=10))
    assert error.code() == Code.UNIMPLEMENTED


def controller_settings(mtls: Mtls, person: Person, tmp: Path, token: str
                        ) -> ControllerSettings:
    return ControllerSettings(
        repo=person.url, model_root=str(mtls.root), state_dir=tmp / "state",
        targets=[TargetAddress("secure", mtls.admin)], reconcile_deadline_s=30,
        target_token=token, target_root_ca=mtls.pki["ca.pem"],
        target_client_cert=mtls.pki["client.pem"], target_client_key=mtls.pki["client.key"],
    )


def test_controller_reconciles_a_token_and_mtls_target(
    mtls: Mtls, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    person = Person(tmp_path)
    person.write("rollouts/hp2.yaml", spec("hp2", stable=1), "hp2 v1")
    caplog.set_level(logging.DEBUG)
    wrong = Controller(controller_settings(mtls, person, tmp_path / "wrong", "wrong-Token-x"))
    try:
        assert not wrong.run_once()
        status = wrong.status()
    finally:
        wrong.stop()
    client = target_client(TargetAddress("secure", mtls.admin),
                           controller_settings(mtls, person, tmp_path, "wrong-Token-x"))
    try:
        seen = client.observe({})
        with pytest.raises(TargetError, match="UNAUTHENTICATED") as refused:
            client.apply(ReloadConfig("secure", (), ("test",)))
    finally:
        client.close()
    assert not seen.reachable and "UNAUTHENTICATED" in seen.error
    controller = Controller(controller_settings(mtls, person, tmp_path / "right", TOKEN))
    try:
        assert controller.run_once()
    finally:
        controller.stop()
    stub = model_service_pb2_grpc.ModelServiceStub(mtls.channel(mtls.server.address))
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "hp2"
    request.model_spec.version_label = "stable"
    assert stub.GetModelStatus(request, timeout=10).model_version_status[0].version == 1
    logged = caplog.text + str(status) + seen.error + str(refused.value)
    assert TOKEN not in logged and "wrong-Token-x" not in logged


def test_controller_cli_never_prints_secrets(mtls: Mtls, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    # Port 9 on loopback: connection refused, so git fails fast through its error path.
    repo = f"https://rollouts-bot:{GIT_SECRET}@127.0.0.1:9/specs.git"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", GIT_TERMINAL_PROMPT="0")
    result = subprocess.run(
        [sys.executable, "-m", "controller", "run", "--once", "-v", f"--repo={repo}",
         f"--model-root={mtls.root}", f"--target=secure={mtls.admin}",
         f"--target-token-file={token_file}", f"--target-ca-file={mtls.tmp / 'ca.pem'}",
         f"--state-dir={tmp_path / 'state'}", "--listen=off"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "127.0.0.1:9" in output  # the error was reported...
    assert GIT_SECRET not in output and TOKEN not in output  # ...without its secrets
