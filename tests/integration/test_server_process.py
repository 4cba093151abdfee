"""The server as a process: startup errors, config-file polling, SIGTERM drain."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, wait_for

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
