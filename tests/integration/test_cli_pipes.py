"""`rollouts render --format json` and `rollouts status --json` into a reader that goes
away (`| head`): no BrokenPipe traceback, the SIGPIPE exit status (141)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def run_into_closed_pipe(argv: list[str]) -> tuple[int, str]:
    """Run `rollouts ARGV` with its stdout a pipe whose reader has already gone."""
    proc = subprocess.Popen([sys.executable, "-m", "controller", *argv], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `head` exiting before the first write
    err = proc.stderr.read().decode()
    return proc.wait(timeout=120), err


@pytest.fixture
def status_server() -> Iterator[str]:
    """A real HTTP server answering /status with a large controller status document."""
    document = {"repo": "/srv/r.git", "branch": "main", "inSync": True,
                "models": {f"m{i}": {"stable": 1, "targets": {}} for i in range(3000)}}
    body = json.dumps(document).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_render_json_into_a_closed_pipe(tmp_path: Path) -> None:
    code, err = run_into_closed_pipe(["render", str(REPO / "rollouts"), "--model-root",
                                      "/models", "--format", "json"])
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert code == 141


def test_status_json_into_a_closed_pipe(status_server: str) -> None:
    code, err = run_into_closed_pipe(["status", "--controller", status_server, "--json"])
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert code == 141
