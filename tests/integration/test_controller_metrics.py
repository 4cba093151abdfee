"""The controller's own metrics on `GET /metrics`: a real `rollouts run` process on
loopback, a real server, real git; every scrape is read with prometheus-client's parser."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, free_port, wait_for
from tests.gitops import Person, spec

pytestmark = pytest.mark.integration

P = "rollouts_controller_"


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
            text = reply.read().decode()
    except OSError:
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(url: str, name: str, **labels: str) -> float | None:
    return scrape(url).get((name, tuple(sorted(labels.items()))))


def test_metrics_follow_sync_canary_and_verdict(
    tmp_path: Path, start_server: Any, make_model: Any
) -> None:
    root = tmp_path / "models"
    make_model(root / "hp2", 1)
    make_model(root / "hp2", 2)
    (tmp_path / "empty.conf").write_text("model_config_list {}\n")
    server = start_server(f"--model_config_file={tmp_path / 'empty.conf'}")
    person = Person(tmp_path)
    first = person.write("rollouts/hp2.yaml", spec(stable=1), "hp2 at v1")
    listen = f"127.0.0.1:{free_port()}"
    url = f"http://{listen}/metrics"
    log = open(tmp_path / "controller.log", "wb")  # noqa: SIM115 (closed below)
    controller = subprocess.Popen(
        [sys.executable, "-m", "controller", "run", "--repo", person.url,
         "--model-root", str(root), "--state-dir", str(tmp_path / "state"),
         "--target", f"s0={server.address}", "--listen", listen,
         "--poll-interval", "0.5s", "--reconcile-interval", "0.5s"],
        cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), stdout=log, stderr=log,
    )
    try:
        assert wait_for(lambda: value(url, f"{P}applied_commit_info",
                                      model="hp2", commit=first) == 1, 60, 0.3), (
            (tmp_path / "controller.log").read_text())
        # The pass that pushed the config "changed" s0; the drift checks after it find
        # it in sync.
        assert wait_for(lambda: (value(url, f"{P}reconcile_results_total", result="in_sync",
                                       target="s0") or 0) >= 1, 30, 0.3)
        got = scrape(url)
        assert got[(f"{P}reconcile_results_total", (("result", "changed"), ("target", "s0")))] >= 1
        assert got[(f"{P}reconcile_duration_seconds_count", ())] >= 1
        assert got[(f"{P}target_call_duration_seconds_count",
                    (("call", "observe"), ("target", "s0")))] >= 1
        assert got[(f"{P}git_fetch_lag_seconds_count", ())] >= 1
        assert got[(f"{P}verdicts_total", (("kind", "fail"),))] == 0
        assert got[(f"{P}write_back_failures_total", (("kind", "promote"),))] == 0

        # A canary at 50%: its phase and weight per model.
        person.write("rollouts/hp2.yaml", spec(stable=1, canary=2), "canary hp2 v2")
        assert wait_for(lambda: value(url, f"{P}canary_weight_ratio", model="hp2") == 0.5,
                        60, 0.3), scrape(url)
        phases = [labels for (name, labels), v in scrape(url).items()
                  if name == f"{P}canary_phase" and v == 1]
        assert len(phases) == 1 and ("model", "hp2") in phases[0], phases

        # A person ends the canary: no canary series for the model any more.
        person.write("rollouts/hp2.yaml", spec(stable=1), "hp2: no canary")
        assert wait_for(lambda: not any(name in (f"{P}canary_weight_ratio", f"{P}canary_phase")
                                        for name, _ in scrape(url)), 30, 0.3), scrape(url)

        # A canary that never becomes ready fails at its deadline: one fail verdict.
        person.write(
            "rollouts/hp2.yaml",
            spec(stable=1, canary=7, canary_block="    split: {hashKey: x-user-id}\n"
                 "    steps: [{weight: 50, hold: 1h}]\n    progressDeadline: 2s\n"),
            "canary hp2 v7 (no such version)",
        )
        assert wait_for(lambda: value(url, f"{P}verdicts_total", kind="fail") == 1, 90, 0.3), (
            (tmp_path / "controller.log").read_text()[-3000:])
        assert person.remote_log()[0].startswith("rollouts: revert hp2 canary 7")
    finally:
        controller.terminate()
        controller.wait(timeout=30)
        log.close()
