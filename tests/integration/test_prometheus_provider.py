"""PrometheusProvider against a real Prometheus scraping a local metrics server.

The Prometheus binary comes from Debian's `prometheus` package
(`DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus`); we run it
ourselves on 127.0.0.1 with a temporary config and storage. The tests that need
it skip when /usr/bin/prometheus is absent; the error-path tests run anyway.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from controller.adapters.metrics import METRICS_PATH, PrometheusProvider
from controller.decide.analysis import bucket_quantile
from tests.helpers import free_port, wait_for

pytestmark = pytest.mark.integration

PROMETHEUS = Path("/usr/bin/prometheus")
# CI installs Debian's prometheus and sets ROLLOUTS_REQUIRE_PROMETHEUS so this
# test can never silently skip there.
REQUIRED = os.environ.get("ROLLOUTS_REQUIRE_PROMETHEUS") == "1"
needs_prometheus = pytest.mark.skipif(
    not PROMETHEUS.exists() and not REQUIRED,
    reason="/usr/bin/prometheus absent: apt-get install -y prometheus (Debian package)")


class MetricsServer:
    """rollouts_* series in a private registry, served on 127.0.0.1 like a serving target."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("rollouts_requests", "Requests served.",
                                ["model", "version", "label", "status"], registry=self.registry)
        self.latency = Histogram("rollouts_request_latency_seconds", "Latency.",
                                 ["model", "version", "label"], registry=self.registry,
                                 buckets=(0.01, 0.1, 0.5, 1.0, math.inf))
        registry = self.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                data = generate_latest(registry)
                self.send_response(200 if self.path == METRICS_PATH else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def serve(self, version: str, label: str, status: str, seconds: float, n: int) -> None:
        for _ in range(n):
            self.requests.labels("m", version, label, status).inc()
            self.latency.labels("m", version, label).observe(seconds)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": promql} | ({"time": f"{at:.3f}"} if at is not None else {})
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            result: list[dict[str, Any]] = json.load(response)["data"]["result"]
            return result

    def scalar(self, promql: str, at: float | None = None) -> float | None:
        result = self.query(promql, at)
        return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def target() -> Iterator[MetricsServer]:
    server = MetricsServer()
    # Create every series at zero before the first scrape: increase() only sees
    # growth between samples, so a series must exist before traffic arrives.
    for version, label, status in [("2", "canary", "OK"), ("2", "canary", "INTERNAL"),
                                   ("1", "stable", "OK")]:
        server.requests.labels("m", version, label, status)
        server.latency.labels("m", version, label)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def prometheus(target: MetricsServer, tmp_path_factory: pytest.TempPathFactory,
               ) -> Iterator[Prometheus]:
    if not PROMETHEUS.exists() and not REQUIRED:
        pytest.skip("/usr/bin/prometheus absent: apt-get install -y prometheus (Debian package)")
    workdir = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: serving\n"
        f"    metrics_path: {METRICS_PATH}\n"
        f"    static_configs: [{{targets: ['{target.address}']}}]\n")
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"})
    server = Prometheus(f"http://127.0.0.1:{port}", process)

    def scraped_twice() -> bool:
        assert process.poll() is None, (workdir / "prometheus.log").read_text()[-2000:]
        try:
            count = server.scalar('count_over_time(up{job="serving"}[1m])')
            return count is not None and count >= 2 and server.scalar('up{job="serving"}') == 1
        except OSError:
            return False  # not listening yet

    try:
        assert wait_for(scraped_twice, 30, 0.1), "Prometheus did not scrape the target twice"
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


@needs_prometheus
def test_windows_match_the_known_increments(target: MetricsServer,
                                            prometheus: Prometheus) -> None:
    provider = PrometheusProvider(prometheus.url)
    # A zero sample inside the window: a fresh scrape within the last 2s.
    assert wait_for(
        lambda: (prometheus.scalar('count_over_time(up{job="serving"}[2s])') or 0) >= 1, 10, 0.1
    ), "no recent scrape"
    start = time.time() - 2.0
    target.serve("2", "canary", "OK", 0.05, 99)
    target.serve("2", "canary", "INTERNAL", 0.3, 11)
    target.serve("1", "stable", "OK", 0.005, 200)
    assert wait_for(
        lambda: prometheus.scalar('sum(rollouts_requests_total{version="2"})') == 110, 15, 0.1
    ), "Prometheus did not scrape the increments"
    end = time.time()

    reading = provider.read("m", [2, 1], start, end)
    assert reading.problems == ()
    canary, stable = reading.window(2), reading.window(1)
    assert canary is not None and stable is not None
    # increase() extrapolates toward the window's end by at most ~1 scrape interval.
    assert 110 <= canary.requests <= 110 * 1.6
    assert 200 <= stable.requests <= 200 * 1.6
    # Every series of a target shares scrape times, so ratios come out exact.
    assert canary.error_rate == pytest.approx(11 / 110)
    # Counted per code, for errorRate.codes and the per-code counts in verdicts.
    assert [code for code, _ in canary.errors_by_code] == ["INTERNAL"]
    assert canary.counted_rate(frozenset({"INTERNAL"})) == pytest.approx(11 / 110)
    assert canary.counted_rate(frozenset({"UNAVAILABLE"})) == 0.0
    assert stable.errors == 0
    assert canary.p99() == pytest.approx(0.1 + 0.4 * (0.99 * 110 - 99) / 11)
    assert stable.p99() == pytest.approx(0.01 * 0.99)
    # Our p99 agrees with Prometheus' own histogram_quantile over the same buckets.
    seconds = max(1, math.ceil(end - start))
    theirs = prometheus.scalar(
        "histogram_quantile(0.99, sum by (le) (increase("
        f'rollouts_request_latency_seconds_bucket{{model="m",version="2"}}[{seconds}s])))', end)
    assert theirs is not None and bucket_quantile(0.99, canary.latency_buckets) \
        == pytest.approx(theirs)


@needs_prometheus
def test_unknown_model_or_version_is_no_data(prometheus: Prometheus) -> None:
    provider = PrometheusProvider(prometheus.url)
    now = time.time()
    reading = provider.read("nope", [1], now - 10, now)
    assert reading.windows == {}
    assert reading.problems == ("Prometheus has no requests series for nope v1",)
    partial = provider.read("m", [1, 9], now - 10, now)
    assert partial.window(1) is not None and partial.window(9) is None


def test_unreachable_prometheus_is_no_data_not_a_failure() -> None:
    provider = PrometheusProvider(f"http://127.0.0.1:{free_port()}", timeout=1.0)
    reading = provider.read("m", [2, 1], 0.0, 30.0)
    assert reading.windows == {}
    assert reading.problems[0].startswith("Prometheus query failed")


@pytest.mark.parametrize("body", [
    b"not json",
    b'{"status": "error", "errorType": "bad_data", "error": "parse error"}',
    b'{"status": "success", "data": {"resultType": "matrix", "result": []}}',
    b"[]",
])
def test_bad_answers_are_no_data(body: bytes) -> None:
    provider = PrometheusProvider("http://127.0.0.1:9", fetch=lambda url, timeout: body)
    reading = provider.read("m", [2], 0.0, 30.0)
    assert reading.windows == {} and len(reading.problems) == 1


def test_queries_select_by_version_and_escape_the_model() -> None:
    seen: list[str] = []

    def fetch(url: str, timeout: float) -> bytes:
        seen.append(urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["query"][0])
        return b'{"status": "success", "data": {"resultType": "vector", "result": []}}'

    PrometheusProvider("http://prom", fetch=fetch).read('a"b', [2, 10], 100.0, 129.2)
    assert seen[0] == ('sum by (version) (increase(rollouts_requests_total'
                       '{model="a\\"b",version=~"2|10"}[30s]))')
    assert 'status!="OK"' in seen[1] and seen[1].startswith("sum by (version, status) (")
    assert seen[2].startswith("sum by (version, le) (increase("
                              "rollouts_request_latency_seconds_bucket{")
