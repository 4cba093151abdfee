"""The Prometheus endpoint of the real server after known traffic.

TF Serving's series keep their exact names and labels; the rollouts_* series
carry model, version, label and status exactly as the controller's analysis
reads them (and the controller's own parser reads this endpoint's text).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.adapters import promtext
from tests.conftest import ServerProcess, serving
from tests.grpc_requests import grpc_predict

pytestmark = pytest.mark.integration

PATH = "/monitoring/prometheus/metrics"
TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, make_model: Any) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("metrics")
    make_model(root / "hp", 1)
    make_model(root / "hp", 2, offset=3.0)
    config = root / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "hp" base_path: "{root / "hp"}" '
        'model_platform: "tensorflow" model_version_policy { all {} } '
        'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } '
        "} }\n")
    monitoring = root / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true path: "{PATH}" }}\n')
    with serving([f"--model_config_file={config}",
                  f"--monitoring_config_file={monitoring}"], root / "server.log") as server:
        yield {"root": root, "server": server}


def send_traffic(server: ServerProcess) -> None:
    for _ in range(3):
        grpc_predict(server, "hp", 2.0)  # default: the stable label, version 1
    with pytest.raises(grpc.RpcError):
        grpc_predict(server, "nope", 2.0)  # NOT_FOUND before any version
    with httpx.Client(base_url=server.rest_url, timeout=TIMEOUT_S) as http:
        for _ in range(2):
            assert http.post("/v1/models/hp/labels/canary:predict",
                             json={"instances": [2.0]}).status_code == 200
        assert http.post("/v1/models/hp/versions/2:predict",
                         json={"instances": [2.0]}).status_code == 200
        assert http.post("/v1/models/hp/labels/canary:predict",
                         json={"instances": ["a"]}).status_code == 400
        assert http.post("/v1/models/hp/versions/1:regress",
                         json={"signature_name": "regress_x_to_y",
                               "examples": [{"x": 1.0}]}).status_code == 200


def samples(text: str, prefix: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = text[text.index(f"# HELP {prefix}"):]
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def test_metrics_after_traffic(env: dict[str, Any]) -> None:
    server: ServerProcess = env["server"]
    root: Path = env["root"]
    send_traffic(server)
    reply = httpx.get(server.rest_url + PATH, timeout=TIMEOUT_S)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.text
    lines = text.splitlines()

    # TF Serving's names, labels and TYPE lines.
    assert "# TYPE :tensorflow:serving:request_count counter" in lines
    assert ':tensorflow:serving:request_count{model_name="hp",status="OK"} 7' in lines
    assert (':tensorflow:serving:request_count{model_name="hp",status="INVALID_ARGUMENT"} 1'
            in lines)
    assert ':tensorflow:serving:request_count{model_name="nope",status="NOT_FOUND"} 1' in lines
    assert "# TYPE :tensorflow:serving:request_latency histogram" in lines
    assert (':tensorflow:serving:request_latency_count'
            '{model_name="hp",API="Predict",entrypoint="GRPC"} 3') in lines
    assert (':tensorflow:serving:request_latency_count'
            '{model_name="hp",API="Predict",entrypoint="REST"} 3') in lines
    assert (':tensorflow:serving:request_latency_count'
            '{model_name="hp",API="Regress",entrypoint="REST"} 1') in lines
    for version in (1, 2):
        path = root / "hp" / str(version)
        assert (f':tensorflow:cc:saved_model:load_attempt_count{{model_path="{path}",'
                f'status="success"}} 1') in lines
        assert any(line.startswith(f':tensorflow:cc:saved_model:load_latency'
                                   f'{{model_path="{path}"}} ') for line in lines)

    ours = samples(text, "rollouts_")
    requests = {k: v for k, v in ours.items() if k[0] == "rollouts_requests_total"}
    assert {tuple(name for name, _ in labels) for _, labels in requests} == {
        ("label", "model", "status", "version")}

    def count(version: str, label: str, status: str, model: str = "hp") -> float:
        key = (("label", label), ("model", model), ("status", status), ("version", version))
        return requests.get(("rollouts_requests_total", key), 0.0)

    assert count("1", "stable", "OK") == 3
    assert count("2", "canary", "OK") == 2
    assert count("2", "", "OK") == 1  # an explicit version carries no label
    assert count("1", "", "OK") == 1
    assert count("2", "canary", "INVALID_ARGUMENT") == 1
    assert count("", "", "NOT_FOUND", model="nope") == 1

    latency = {k: v for k, v in ours.items()
               if k[0].startswith("rollouts_request_latency_seconds")}
    assert {tuple(n for n, _ in labels) for name, labels in latency
            if name.endswith("_bucket")} == {("label", "le", "model", "version")}
    stable = (("label", "stable"), ("model", "hp"), ("version", "1"))
    assert latency[("rollouts_request_latency_seconds_count", stable)] == 3
    assert latency[("rollouts_request_latency_seconds_bucket",
                    (("label", "stable"), ("le", "+Inf"), ("model", "hp"), ("version", "1")))] == 3
    assert ours[("rollouts_loaded_versions", (("model", "hp"),))] == 2

    # What the controller's analysis reads from this endpoint.
    scrape = promtext.parse(text)
    totals = scrape.totals()
    assert (totals[("hp", 1)].requests, totals[("hp", 1)].errors) == (4, 0)
    assert (totals[("hp", 2)].requests, totals[("hp", 2)].errors) == (4, 1)
    assert totals[("hp", 2)].latency_buckets[-1] == (float("inf"), 4)
    assert scrape.loaded_versions == {"hp": 2}
