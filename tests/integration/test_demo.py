"""`rollouts demo --fast --no-live` end to end, and its cleanup on Ctrl-C.

The demo runs as a real subprocess (its own server, controller, traffic and
git) with TMPDIR pointed at the test's directory, so its workspace lands where
the test can read the history it wrote and check that nothing is left behind.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli.validate import validate
from controller.demo.view import DemoState, merge_intervals, plain_lines
from controller.demo.workspace import FAST, NORMAL, Timings, spec_text
from tests.conftest import REPO
from tests.gitops import git
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

MODEL = "half_plus_two"
SPEC = "rollouts/half-plus-two.yaml"
DEMO_TIMEOUT_S = 240


def demo_command(*flags: str) -> list[str]:
    return [sys.executable, "-m", "controller", "demo", "--fast", "--no-live", *flags]


def demo_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, TMPDIR=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="2")


def workspaces(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("rollouts-demo-*"))


def refuses(url_or_address: str) -> bool:
    """True when nothing listens at host:port any more."""
    host, port = re.sub(r"^https?://", "", url_or_address).split("/")[0].rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, int(port))) != 0


def subjects(remote: Path) -> list[str]:
    return git(remote, "log", "--format=%s", "main").splitlines()


def sha_of(remote: Path, subject: str) -> str:
    for line in git(remote, "log", "--format=%H %s", "main").splitlines():
        sha, _, text = line.partition(" ")
        if text == subject:
            return sha
    raise AssertionError(f"no commit {subject!r} on main: {subjects(remote)}")


def test_fast_demo_writes_the_whole_lifecycle_to_git(tmp_path: Path) -> None:
    result = subprocess.run(
        demo_command("--keep"), cwd=REPO, env=demo_env(tmp_path), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    [workspace] = workspaces(tmp_path)
    remote = workspace / "remote.git"

    # The story, newest first: the person's rollback, the auto-reverts of v4
    # (in the dark) and v3, the promotion of v2, each after the commit it answers.
    assert subjects(remote) == [
        f'Revert "rollouts: promote {MODEL} to 2"',
        f"rollouts: revert {MODEL} canary 4",
        f"{MODEL}: dark launch v4",
        f"rollouts: revert {MODEL} canary 3",
        f"{MODEL}: canary v3",
        f"rollouts: promote {MODEL} to 2",
        f"{MODEL}: canary v2",
        f"{MODEL}: serve v1",
    ]
    canary_v2 = sha_of(remote, f"{MODEL}: canary v2")
    canary_v3 = sha_of(remote, f"{MODEL}: canary v3")
    promotion = sha_of(remote, f"rollouts: promote {MODEL} to 2")
    revert = sha_of(remote, f"rollouts: revert {MODEL} canary 3")
    dark_launch = sha_of(remote, f"{MODEL}: dark launch v4")
    dark_revert = sha_of(remote, f"rollouts: revert {MODEL} canary 4")
    person_revert = sha_of(remote, f'Revert "rollouts: promote {MODEL} to 2"')

    promotion_message = git(remote, "log", "-1", "--format=%B", promotion)
    assert "Rollouts-Verdict: pass" in promotion_message
    assert "Rollouts-Promoted-Version: 2" in promotion_message
    assert f"Rollouts-Canary-Commit: {canary_v2}" in promotion_message
    assert git(remote, "log", "-1", "--format=%an", promotion) == "rollouts-controller"

    revert_message = git(remote, "log", "-1", "--format=%B", revert)
    assert "Rollouts-Verdict: fail" in revert_message
    assert "Rollouts-Reverted-Version: 3" in revert_message
    assert "Rollouts-Intervals: 0 passed, 2 failed" in revert_message
    assert f"This reverts commit {canary_v3}." in revert_message
    assert "error rate" in revert_message  # the reason, with its numbers

    # v4 (fast, OK, wrong) was judged on its answers in its weight-0 step and
    # reverted there: every interval at 0 %, no user request answered by it.
    dark_message = git(remote, "log", "-1", "--format=%B", dark_revert)
    assert "Rollouts-Verdict: fail" in dark_message
    assert "Rollouts-Reverted-Version: 4" in dark_message
    assert f"This reverts commit {dark_launch}." in dark_message
    assert "differing rate 100.00% > maxDifferingRate 1.00%" in dark_message, dark_message
    failed_at = re.findall(r"^- fail at (\S+): canary (\d+) req", dark_message, flags=re.M)
    assert failed_at and all(at == "0%" and req == "0" for at, req in failed_at), dark_message
    notes_v4 = git(remote, "notes", "--ref=rollouts", "show", dark_launch)
    assert "analysis starts at 0%" in notes_v4 and "verdict: Analysis failed" in notes_v4
    assert re.search(r"interval: fail at 0%: canary 0 req .*100\.00% differ", notes_v4), notes_v4
    assert "interval: pass" not in notes_v4 and "v4 step:" not in notes_v4
    assert "dark launch v4: 0 user requests answered by v4" in output
    served = re.search(r"traffic: .*; served (.*)", output)
    assert served and "v4" not in served.group(1), output
    # The view prints the prediction diff next to error rate and p99: v4 all
    # off by 0.2, v2 (a retrain) inside the tolerance.
    assert re.search(r"interval v4 0%: fail .* err p99 \S+ diff 100\.0% of \d+ "
                     r"mean\|diff\| 0\.2000 \|", output), output
    assert re.search(r"interval v2 \d+%: pass .* diff 0\.0% of \d+ mean\|diff\| 0\.0005 \|",
                     output), output

    person_message = git(remote, "log", "-1", "--format=%B", person_revert)
    assert f"This reverts commit {promotion}." in person_message
    assert git(remote, "log", "-1", "--format=%an", person_revert) == "Pat Person"

    # The journal rides on the canary commits as notes.
    notes_v2 = git(remote, "notes", "--ref=rollouts", "show", canary_v2)
    assert "v2 started" in notes_v2 and "interval: pass" in notes_v2
    assert "verdict: Analysis passed" in notes_v2
    notes_v3 = git(remote, "notes", "--ref=rollouts", "show", canary_v3)
    assert "interval: fail" in notes_v3 and "verdict: Analysis failed" in notes_v3

    # main ends as before the promotion: v1 stable, v2's canary block back but
    # held (the controller recognised the revert of its own promotion).
    final = git(remote, "show", f"main:{SPEC}")
    assert final == git(remote, "show", f"{canary_v2}:{SPEC}")
    assert "stable: 1" in final and "\n  canary:" in final

    # The printed summary and notes log; --keep names the workspace.
    assert "$ git log --notes=rollouts" in output and "Notes (rollouts):" in output
    assert f"Workspace kept at {workspace}" in output
    # Every process the demo started is gone once it exits.
    rest_urls = re.findall(r"curl (http://127\.0\.0\.1:\d+)/v1/models/", output)
    status_urls = re.findall(r"--controller (http://127\.0\.0\.1:\d+)", output)
    assert rest_urls and status_urls, output
    assert all(refuses(url) for url in rest_urls + status_urls)


def test_demo_without_keep_exits_0_and_leaves_nothing_behind(tmp_path: Path) -> None:
    result = subprocess.run(
        demo_command(), cwd=REPO, env=demo_env(tmp_path), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "$ git log --notes=rollouts" in output and "Notes (rollouts):" in output
    assert workspaces(tmp_path) == [], output
    assert processes_using(tmp_path) == []  # the model server it started is gone too


def processes_using(path: Path) -> list[str]:
    """Command lines of live processes that mention `path`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process ended while we looked
        if str(path) in text:
            found.append(text)
    return found


def test_ctrl_c_stops_everything_and_removes_the_workspace(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        demo_command(), cwd=REPO, env=demo_env(tmp_path), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    grpc_address: list[str] = []

    def server_running() -> bool:
        for log in tmp_path.glob("rollouts-demo-*/logs/server.log"):
            found = re.search(r"Running gRPC ModelServer at (\S+:\d+)", log.read_text("utf-8",
                                                                                    "replace"))
            if found:
                grpc_address.append(found.group(1))
                return True
        return False

    try:
        assert wait_for(server_running, 120, 0.2), "the demo's server never started"
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    text = output.decode("utf-8", "replace")
    assert proc.returncode == 130, text
    assert "interrupted; cleaning up" in text
    assert workspaces(tmp_path) == []
    assert refuses(grpc_address[-1])


@pytest.mark.parametrize("timings", [FAST, NORMAL], ids=["fast", "normal"])
def test_every_spec_the_demo_pushes_is_valid(tmp_path: Path, timings: Timings) -> None:
    for stable, canary, dark in ((1, None, False), (1, 2, False), (2, 3, False), (2, 4, True)):
        path = tmp_path / f"{stable}-{canary}" / "half-plus-two.yaml"
        path.parent.mkdir()
        path.write_text(spec_text(MODEL, stable, canary, timings, dark_launch=dark))
        report = validate([path])
        assert report.problems == [] and len(report.documents) == 1, report.problems
    # Every hold can hold at least one analysis interval; the dark launch's
    # weight-0 step holds the intervals that fail a wrong version, and more.
    assert all(hold >= timings.interval_s for hold in timings.holds_s)
    assert timings.dark_hold_s >= 2 * timings.failure_limit * timings.interval_s
    dark_spec = spec_text(MODEL, 2, 4, timings, dark_launch=True)
    assert "steps: [{weight: 0, " in dark_spec and "shadow: {sample: " in dark_spec


def test_intervals_accumulate_across_status_documents_without_repeats() -> None:
    def status(version: int, *ats: float) -> dict[str, object]:
        intervals = [
            {"at": at, "outcome": "fail" if version == 3 else "pass", "weightBp": 2000,
             "reasons": ["error rate 30.00% > max 2.00%"],
             "canary": {"requests": 40.0, "errorRate": 0.3, "latencyP99Seconds": 0.25},
             "stable": {"requests": 90.0, "errorRate": 0.0, "latencyP99Seconds": None}}
            for at in ats
        ]
        return {"models": {MODEL: {"rollout": {"version": version, "intervals": intervals}}}}

    rows = merge_intervals([], status(2, 1.0, 2.0), MODEL)
    rows = merge_intervals(rows, status(2, 2.0, 3.0), MODEL)  # 2.0 seen already
    rows = merge_intervals(rows, {"models": {MODEL: {"rollout": None}}}, MODEL)
    rows = merge_intervals(rows, status(3, 4.0), MODEL)
    assert [(r.version, r.at) for r in rows] == [(2, 1.0), (2, 2.0), (2, 3.0), (3, 4.0)]
    assert rows[-1].canary.p99_ms == pytest.approx(250.0) and rows[-1].stable.p99_ms is None
    assert rows[-1].weight_pct == 20.0

    before = DemoState(MODEL, [("stage", "running")], intervals=rows[:3])
    after = DemoState(MODEL, [("stage", "done")], intervals=rows,
                      git_log=[("abc1234", "rollouts-controller", "rollouts: revert")])
    lines = plain_lines(before, after)
    assert len(lines) == 3, lines
    assert "done    stage" in lines[0]
    assert "v3 20%: fail" in lines[1] and "error rate 30.00% > max 2.00%" in lines[1]
    assert lines[2].endswith("git      abc1234 rollouts-controller: rollouts: revert")
