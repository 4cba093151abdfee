"""The demo's live screen: per interval the weight, requests, error rate and p99
for canary and stable, the verdicts, traffic per version and the git log."""

from __future__ import annotations

import io

from rich.console import Console

from controller.demo.traffic import TrafficSnapshot, VersionStats
from controller.demo.view import (
    DONE,
    RUNNING,
    DemoState,
    IntervalRow,
    LiveView,
    Side,
    plain_lines,
    render,
)


def state() -> DemoState:
    return DemoState(
        model="half_plus_two",
        stages=[("push canary v2", DONE), ("push canary v3 (faulty)", RUNNING)],
        elapsed_s=42.0, stable=2, canary=3, served_stable=2, served_canary=3,
        weight_pct=20, phase="analyse",
        intervals=[
            IntervalRow(2, 10.0, 50, Side(64, 0.0, 4.5), Side(57, 0.0, 4.3), "pass"),
            IntervalRow(3, 20.0, 20, Side(12, 0.25, 485.0), Side(49, 0.0, 4.4), "fail",
                        ("error rate 25.00% > max 2.00%",)),
        ],
        traffic=TrafficSnapshot(sent=1310, ok=1303, errors=7, unreachable=0, statuses={200: 1303},
                                versions={"2": VersionStats(693, 40.0, 4.4),
                                          "3": VersionStats(26, 8.0, 490.0)},
                                labels={"stable": 2, "canary": 3}),
        git_log=[("0d586c6", "rollouts-controller", "rollouts: revert half_plus_two canary 3"),
                 ("1400e2f", "Pat Person", "half_plus_two: canary v3")],
    )


def screen(width: int = 140) -> str:
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(render(state()))
    return console.export_text()


def test_the_screen_shows_versions_weights_intervals_traffic_and_git() -> None:
    text = screen()
    assert "model half_plus_two · 42s" in text
    assert "git: stable 2 canary 3 at 20% (analyse)" in text
    assert "server: stable 2 canary 3" in text
    rows = [line for line in text.splitlines() if "v2 " in line or "v3 " in line]
    pass_row = next(line for line in rows if "pass" in line)
    fail_row = next(line for line in rows if "fail" in line)
    for cell in ("50%", "64", "0.0%", "4.5ms", "57", "4.3ms"):
        assert cell in pass_row, (cell, pass_row)
    for cell in ("20%", "12", "25.0%", "485ms", "49", "error rate 25.00% > max 2.00%"):
        assert cell in fail_row, (cell, fail_row)
    assert "1310 sent, 1303 ok, 7 errors" in text
    assert "0d586c6" in text and "rollouts: revert half_plus_two canary 3" in text


def test_live_view_draws_the_screen_on_a_console() -> None:
    out = io.StringIO()
    view = LiveView(Console(file=out, width=140, color_system=None, force_terminal=True))
    view.start()
    view.update(state())
    view.stop()
    assert "rollouts: revert half_plus_two canary 3" in out.getvalue()


def test_plain_lines_report_only_what_changed() -> None:
    before = state()
    after = state()
    after.elapsed_s = 43.0
    after.stages = [("push canary v2", DONE), ("push canary v3 (faulty)", DONE)]
    after.git_log = [("4af23e5", "Pat Person", "Revert promotion"), *before.git_log]
    lines = plain_lines(before, after)
    assert lines == ["[ 43.0s] done    push canary v3 (faulty)",
                     "[ 43.0s] git      4af23e5 Pat Person: Revert promotion"]
