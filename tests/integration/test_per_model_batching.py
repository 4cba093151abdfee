"""--enable_per_model_batching_parameters on the real server, as TF Serving does it.

Two models under one server: `tuned`, whose version directory holds a
`batching_params.pbtxt` (batches of at most 4 rows, padded to 4), and `plain`,
whose directory has none. The server-wide parameters say batches of at most 16,
padded to 16, so what a request shows from outside tells which applied: a
5-row request is refused by `tuned`'s limit, a lone row runs padded to 4, and
`plain` is not batched at all (TF Serving does not fall back on the server's
parameters for it). A model added by a config reload whose file does not
parse fails to load, its status naming the file and line, while the others
keep serving. The server is started both ways TF Serving turns this on: the
flag, and the platform config's enable_per_model_batching_params.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import text_format
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import get_model_status_pb2, model_management_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc as psg

from tests.conftest import ServerProcess, serving, wait_for
from tests.grpc_requests import grpc_predict, predict_request

pytestmark = pytest.mark.integration

METRICS = "/monitoring/prometheus/metrics"
TIMEOUT_S = 30.0
END = 50  # ModelVersionStatus.State
SERVER_WIDE = """\
max_batch_size { value: 16 }
allowed_batch_sizes: 16
num_batch_threads { value: 1 }
"""
TUNED = """\
# this model's own batching
max_batch_size { value: 4 }
allowed_batch_sizes: 4
"""
BROKEN = """\
max_batch_size { value: 4 }
max_batch_sise { value: 4 }
"""
ADAPTER = "[type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig]"


def platform_config(batching: str) -> str:
    return (f'platform_configs {{ key: "tensorflow" value {{ source_adapter_config {{ {ADAPTER}'
            f" {{ legacy_config {{ batching_parameters {{ {batching} }}"
            " enable_per_model_batching_params: true } } } } }\n")


def config_text(root: Path, names: tuple[str, ...]) -> str:
    return "model_config_list { " + " ".join(
        f'config {{ name: "{name}" base_path: "{root / name}" model_platform: "tensorflow" }}'
        for name in names) + " }\n"


@pytest.fixture(scope="module", params=["flag", "platform_config"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           make_model: Any) -> Iterator[tuple[ServerProcess, Path]]:
    root = tmp_path_factory.mktemp(f"per-model-{request.param}")
    (make_model(root / "tuned", 1) / "batching_params.pbtxt").write_text(TUNED)
    make_model(root / "plain", 1)
    (make_model(root / "broken", 1) / "batching_params.pbtxt").write_text(BROKEN)
    (root / "models.config").write_text(config_text(root, ("tuned", "plain")))
    (root / "monitoring.config").write_text(
        f'prometheus_config {{ enable: true path: "{METRICS}" }}\n')
    if request.param == "flag":
        (root / "batching.config").write_text(SERVER_WIDE)
        batching = ["--enable_batching", f"--batching_parameters_file={root / 'batching.config'}",
                    "--enable_per_model_batching_parameters"]
    else:
        (root / "platform.config").write_text(platform_config(SERVER_WIDE.replace("\n", " ")))
        batching = [f"--platform_config_file={root / 'platform.config'}"]
    with serving([f"--model_config_file={root / 'models.config'}",
                  f"--monitoring_config_file={root / 'monitoring.config'}",
                  # A version that fails to load ends at once, not after a minute of retries.
                  "--max_num_load_retries=0", *batching],
                 root / "server.log") as proc:
        yield proc, root


def metric_samples(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(server.rest_url + METRICS, timeout=TIMEOUT_S).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def predict_rows(server: ServerProcess, model: str, rows: int) -> list[float]:
    stub = psg.PredictionServiceStub(server.channel())
    reply = stub.Predict(predict_request(model, *map(float, range(rows))), timeout=TIMEOUT_S)
    return list(reply.outputs["y"].float_val)


def test_a_version_with_its_own_file_batches_with_it(
        server: tuple[ServerProcess, Path]) -> None:
    proc, _ = server
    with pytest.raises(grpc.RpcError) as info:
        predict_rows(proc, "tuned", 5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Task size 5 is larger than maximum input batch size 4" in (info.value.details() or "")
    reply = httpx.post(f"{proc.rest_url}/v1/models/tuned:predict", json={"instances": [5.0]},
                       timeout=TIMEOUT_S)
    assert reply.json() == {"predictions": [4.5]}
    assert grpc_predict(proc, "tuned", 2.0) == 3.0
    samples = metric_samples(proc)
    runs = samples[("rollouts_batch_requests_count", (("model", "tuned"), ("version", "1")))]
    assert runs >= 2
    # Every run of `tuned` was one row padded to 4, none to the server-wide 16.
    padding = ":tensorflow:serving:batching_session:padding_size"
    assert samples[(padding + "_sum", (("execution_batch_size", "4"),))] == 3 * runs
    assert not any(name.startswith(padding) and ("execution_batch_size", "16") in labels
                   for name, labels in samples)


def test_a_version_without_a_file_is_not_batched(server: tuple[ServerProcess, Path]) -> None:
    proc, _ = server
    assert predict_rows(proc, "plain", 20) == [0.5 * x + 2 for x in range(20)]
    reply = httpx.post(f"{proc.rest_url}/v1/models/plain:predict", json={"instances": [6.0]},
                       timeout=TIMEOUT_S)
    assert reply.json() == {"predictions": [5.0]}
    samples = metric_samples(proc)
    assert not any(name.startswith("rollouts_batch_requests") and ("model", "plain") in labels
                   for name, labels in samples)


def test_a_bad_file_fails_that_version_naming_the_file_and_the_rest_keep_serving(
        server: tuple[ServerProcess, Path]) -> None:
    proc, root = server
    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(config_text(root, ("tuned", "plain", "broken")), request.config)
    try:
        proc.model_stub().HandleReloadConfigRequest(request, timeout=TIMEOUT_S)
    except grpc.RpcError:
        pass  # the failed load may fail the reload; the version's status is what counts

    def status() -> tuple[int, str]:
        ask = get_model_status_pb2.GetModelStatusRequest()
        ask.model_spec.name = "broken"
        try:
            reply = proc.model_stub().GetModelStatus(ask, timeout=TIMEOUT_S)
        except grpc.RpcError:
            return (0, "")
        versions = {s.version: s for s in reply.model_version_status}
        return (versions[1].state, versions[1].status.error_message) if 1 in versions else (0, "")

    assert wait_for(lambda: status()[0] == END, TIMEOUT_S), status()
    message = status()[1]
    assert message.startswith(f"{root / 'broken' / '1' / 'batching_params.pbtxt'}:2:"), message
    assert "max_batch_sise" in message
    assert grpc_predict(proc, "tuned", 4.0) == 4.0
    assert grpc_predict(proc, "plain", 4.0) == 4.0
