"""ScrapeProvider against real HTTP servers on 127.0.0.1 serving changing text."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from controller.adapters.metrics import METRICS_PATH, ScrapeProvider, metrics_url


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that timed out and hung up is part of the test, not an error


class Target:
    """A fake serving target: its metrics text, status and delay can change mid-test."""

    def __init__(self) -> None:
        self.body = ""
        self.status = 200
        self.release = threading.Event()
        self.release.set()
        self.hits = 0
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                target.hits += 1
                target.release.wait(timeout=5)  # bounded: a "hung" target
                if self.path != METRICS_PATH:
                    self.send_error(404)
                    return
                data = target.body.encode()
                self.send_response(target.status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return metrics_url(f"{host!s}:{port}")

    def set(self, canary_ok: int, canary_err: int, stable_ok: int) -> None:
        c, s = 'model="m",version="2"', 'model="m",version="1"'
        self.body = (
            "# TYPE rollouts_requests_total counter\n"
            f'rollouts_requests_total{{{c},label="canary",status="OK"}} {canary_ok}\n'
            f'rollouts_requests_total{{{c},label="canary",status="UNAVAILABLE"}} {canary_err}\n'
            f'rollouts_requests_total{{{s},label="stable",status="OK"}} {stable_ok}\n'
            "# TYPE rollouts_request_latency_seconds histogram\n"
            f'rollouts_request_latency_seconds_bucket{{{c},le="0.1"}} {canary_ok}\n'
            f'rollouts_request_latency_seconds_bucket{{{c},le="+Inf"}} {canary_ok + canary_err}\n'
        )

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def targets() -> Iterator[list[Target]]:
    started = [Target(), Target()]
    yield started
    for target in started:
        target.stop()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return metrics_url(f"127.0.0.1:{port}")  # nothing listens there any more


def test_windows_are_deltas_summed_over_targets(targets: list[Target]) -> None:
    a, b = targets
    a.set(100, 0, 1000)
    b.set(50, 5, 500)
    provider = ScrapeProvider([a.url, b.url], timeout=30.0)  # failure-only
    provider.mark(10.0)
    a.set(180, 20, 1900)
    b.set(70, 5, 600)
    reading = provider.read("m", [2, 1], start=10.0, end=40.0)
    assert reading.problems == ()
    canary, stable = reading.window(2), reading.window(1)
    assert canary is not None and stable is not None
    assert (canary.requests, canary.errors) == (80 + 20 + 20, 20)
    assert (stable.requests, stable.errors) == (900 + 100, 0)
    assert canary.latency_buckets[0] == (0.1, 80 + 20)
    # The next interval starts where this one ended: no extra baseline needed.
    a.set(190, 20, 1900)
    nxt = provider.read("m", [2, 1], start=40.0, end=70.0)
    assert nxt.window(2) is not None and nxt.window(2).requests == 10  # type: ignore[union-attr]
    assert nxt.window(1) is not None and nxt.window(1).requests == 0  # type: ignore[union-attr]


def test_without_a_baseline_there_is_no_window(targets: list[Target]) -> None:
    targets[0].set(1, 0, 1)
    provider = ScrapeProvider([targets[0].url])
    reading = provider.read("m", [2], start=10.0, end=40.0)
    assert reading.window(2) is None
    assert "no metrics snapshot" in reading.problems[0]
    # That read left a snapshot at 40.0, the baseline of the next interval.
    assert provider.read("m", [2], start=40.0, end=70.0).window(2) is not None


def test_models_read_at_the_same_tick_share_one_scrape(targets: list[Target]) -> None:
    target = targets[0]
    target.set(1, 0, 1)
    provider = ScrapeProvider([target.url])
    provider.mark(0.0)
    provider.read("m", [2], start=0.0, end=30.0)
    provider.read("other", [5], start=0.0, end=30.0)
    assert target.hits == 2


def test_unknown_version_reads_zero_when_every_target_answered(targets: list[Target]) -> None:
    targets[0].set(1, 0, 1)
    provider = ScrapeProvider([targets[0].url])
    provider.mark(0.0)
    window = provider.read("m", [9], start=0.0, end=1.0).window(9)
    assert window is not None and window.requests == 0


@pytest.mark.parametrize("failure", ["http-500", "refused", "timeout", "garbage"])
def test_a_failed_target_gives_no_window_never_a_failure(
    targets: list[Target], failure: str
) -> None:
    good, bad = targets
    good.set(100, 0, 100)
    bad.set(100, 0, 100)
    urls = [good.url, closed_port_url() if failure == "refused" else bad.url]
    provider = ScrapeProvider(urls, timeout=0.3)
    provider.mark(0.0)
    good.set(200, 90, 200)  # a terrible canary on the good target...
    if failure == "http-500":
        bad.status = 500
    elif failure == "timeout":
        bad.release.clear()
    elif failure == "garbage":
        bad.body = 'rollouts_requests_total{model="m" oops\n'
    reading = provider.read("m", [2, 1], start=0.0, end=30.0)
    # ...is not judged on half the fleet: the interval has no data at all.
    assert reading.windows == {}
    assert len(reading.problems) == 1 and reading.problems[0].startswith(urls[1])
    bad.release.set()


def test_a_restarted_target_is_flagged(targets: list[Target]) -> None:
    target = targets[0]
    target.set(1000, 10, 1000)
    provider = ScrapeProvider([target.url])
    provider.mark(0.0)
    target.set(40, 2, 60)
    reading = provider.read("m", [2, 1], start=0.0, end=30.0)
    assert reading.counter_reset
    assert reading.window(2) is not None and reading.window(2).requests == 42  # type: ignore[union-attr]
    assert any("counter reset" in p for p in reading.problems)


def test_history_is_bounded(targets: list[Target]) -> None:
    targets[0].set(1, 0, 1)
    provider = ScrapeProvider([targets[0].url], history=3)
    for t in range(6):
        provider.mark(float(t))
    assert provider.read("m", [2], start=1.0, end=6.0).window(2) is None  # 1.0 was dropped
    assert provider.read("m", [2], start=4.0, end=6.0).window(2) is not None
