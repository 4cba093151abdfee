"""deploy/grafana/rollouts-dashboard.json: every query runs on a real Prometheus and finds
the series it charts.

The series come from our own producers (the server's `serving.metrics.Metrics` and
the controller's `ControllerMetrics`), growing between scrapes, served on loopback and
scraped by Debian's prometheus every second. A query that names a series or label
the code does not emit returns nothing, and fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from controller.runtime.telemetry import CanaryView, ControllerMetrics, StateView
from serving.core.status import Code
from serving.metrics import Metrics
from tests.conftest import REPO
from tests.helpers import free_port, wait_for

pytestmark = pytest.mark.integration

DASHBOARD = REPO / "deploy" / "grafana" / "rollouts-dashboard.json"
PROMETHEUS = Path("/usr/bin/prometheus")
REQUIRED = os.environ.get("ROLLOUTS_REQUIRE_PROMETHEUS") == "1"
# Grafana's variables, as a dashboard user would have them set.
VARIABLES = {"$model": "hp2", "$__rate_interval": "10s", "$__range": "5m"}


def queries() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    found = [(panel["title"], target["expr"]) for panel in doc["panels"]
             for target in panel.get("targets", [])]
    assert len(found) >= 15
    return found


class Exporter:
    """Both producers on one loopback endpoint; every scrape records more traffic."""

    def __init__(self) -> None:
        self.scrapes = 0
        self.serving = Metrics()
        self.controller = ControllerMetrics(lambda: StateView(
            model_commits={"hp2": "a" * 40},
            canaries={"hp2": CanaryView("analyse", 2000)},
            verdicts={"promote": self.scrapes, "fail": 1},
            write_failures={"promote": 1},
        ))
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                body = exporter.scrape(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def scrape(self, path: str) -> bytes:
        if path == "/controller":
            self.controller.pass_duration.observe(0.02 * (1 + self.scrapes % 3))
            self.controller.results.labels("s0", "in_sync").inc()
            self.controller.git_seen(time.time() - 1.5, time.time())
            return self.controller.render()
        self.scrapes += 1
        for _ in range(5):
            self.serving.observe("hp2", 1, "stable", "Predict", "rest", Code.OK, 0.004)
            self.serving.observe("hp2", 2, "canary", "Predict", "rest", Code.OK, 0.006)
        self.serving.observe("hp2", 2, "canary", "Predict", "rest", Code.INTERNAL, 0.2)
        self.serving.observe_shadow("hp2", 2, 1, "same", 0.01, 4)
        self.serving.observe_shadow("hp2", 2, 1, "differs", 0.8, 4)
        self.serving.set_loaded_versions("hp2", 2)
        return self.serving.render()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[str]:
    if not PROMETHEUS.exists() and not REQUIRED:
        pytest.skip("/usr/bin/prometheus absent: apt-get install -y prometheus (Debian package)")
    exporter = Exporter()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - {{job_name: serving, metrics_path: /metrics,"
        f" static_configs: [{{targets: ['{exporter.address}']}}]}}\n"
        f"  - {{job_name: controller, metrics_path: /controller,"
        f" static_configs: [{{targets: ['{exporter.address}']}}]}}\n")
    port = free_port()
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={config}",
             f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        exporter.stop()


def run(url: str, path: str, **params: str) -> dict[str, Any]:
    query = urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(f"{url}{path}?{query}", timeout=10) as response:
            result: dict[str, Any] = json.load(response)
            return result
    except OSError as err:
        return {"status": "unreachable", "error": str(err)}


def substitute(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, expr
    return expr


def test_every_dashboard_query_finds_its_series(prometheus: str) -> None:
    failures: dict[str, Any] = {}

    def all_answer() -> bool:
        failures.clear()
        for title, expr in queries():
            answer = run(prometheus, "/api/v1/query", query=substitute(expr))
            if answer.get("status") != "success" or not answer["data"]["result"]:
                failures[f"{title}: {expr}"] = answer
        return not failures

    # Rates need a few scrapes of growing counters; a broken query never answers.
    assert wait_for(all_answer, 90, 0.5), json.dumps(failures, indent=1)[:4000]
    # The model variable's query (label_values) lists the model.
    doc = json.loads(DASHBOARD.read_text())
    variable = next(v for v in doc["templating"]["list"] if v["name"] == "model")
    assert variable["query"]["query"] == "label_values(rollouts_requests_total, model)"
    values = run(prometheus, "/api/v1/label/model/values",
                 **{"match[]": "rollouts_requests_total"})
    assert values["data"] == ["hp2"]
    # The error-rate panel counts server-side failures only (1 of 6 canary requests),
    # and a label with no errors at all is a 0 line, not a missing one.
    expr = next(e for t, e in queries() if t == "Server-side error rate by label")
    rates = {r["metric"]["label"]: float(r["value"][1])
             for r in run(prometheus, "/api/v1/query", query=substitute(expr))["data"]["result"]}
    assert rates["stable"] == 0.0
    assert abs(rates["canary"] - 1 / 6) < 0.02, rates
