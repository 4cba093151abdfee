"""The demo's live screen: per interval the weight, requests, error rate and p99
for canary and stable, the canary's prediction diff (differing rate, mean abs
diff) from shadow scoring, the verdicts, traffic per version and the git log."""

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
    interval_text,
    merge_intervals,
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
            IntervalRow(2, 10.0, 50, Side(64, 0.0, 4.5, 31, 0.0, 0.0005), Side(57, 0.0, 4.3),
                        "pass"),
            IntervalRow(3, 20.0, 20, Side(12, 0.25, 485.0), Side(49, 0.0, 4.4), "fail",
                        ("error rate 25.00% > max 2.00%",)),
            IntervalRow(4, 30.0, 0, Side(0, 0.0, None, 55, 1.0, 0.2), Side(120, 0.0, 9.5),
                        "fail", ("55 compared, differing rate 100.00% > maxDifferingRate 1.00%",)),
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
    rows = [line for line in text.splitlines() if line.lstrip("│ ").startswith("v")]
    pass_row = next(line for line in rows if "v2 " in line)
    fail_row = next(line for line in rows if "v3 " in line)
    dark_row = next(line for line in rows if "v4 " in line)
    for cell in ("50%", "64", "0.0%", "4.5ms", "0.0005", "57", "4.3ms"):
        assert cell in pass_row, (cell, pass_row)
    for cell in ("20%", "12", "25.0%", "485ms", "49", "error rate 25.00% > max 2.00%"):
        assert cell in fail_row, (cell, fail_row)
    # The prediction diff sits next to the canary's error rate and p99.
    assert "differ" in text and "mean|diff|" in text
    cells = [c.strip() for c in dark_row.split("│") if c.strip()]
    assert cells[:7] == ["v4", "0%", "0", "0.0%", "-", "100.0%", "0.2000"], cells
    assert [c.strip() for c in fail_row.split("│") if c.strip()][5:7] == ["-", "-"]
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


def test_intervals_read_the_canarys_shadow_numbers_and_lines_show_them() -> None:
    shadow = {"runs": 55.0, "errors": 0.0, "compared": 55.0, "differing": 55.0,
              "differingRate": 1.0, "meanAbsDiff": 0.2000000390139493, "dropped": 0.0}
    status = {"models": {"half_plus_two": {"rollout": {"version": 4, "intervals": [
        {"at": 5.0, "outcome": "fail", "weightBp": 0,
         "reasons": ["55 compared, differing rate 100.00% > maxDifferingRate 1.00%"],
         "canary": {"requests": 0.0, "errorRate": 0.0, "latencyP99Seconds": None,
                    "shadow": shadow},
         "stable": {"requests": 124.0, "errorRate": 0.0, "latencyP99Seconds": 0.0243}},
        {"at": 6.0, "outcome": "pass", "weightBp": 1000,
         "canary": {"requests": 40.0, "errorRate": 0.0, "latencyP99Seconds": 0.01},
         "stable": {"requests": 90.0, "errorRate": 0.0, "latencyP99Seconds": 0.01}},
    ]}}}}
    dark, plain = merge_intervals([], status, "half_plus_two")
    assert dark.canary == Side(0.0, 0.0, None, 55.0, 1.0, 0.2000000390139493)
    assert dark.stable.compared == 0 and dark.stable.differing_rate is None
    assert interval_text(dark) == (
        "v4 0%: fail         canary 0 req 0.0% err p99 - diff 100.0% of 55 mean|diff| 0.2000 "
        "| stable 124 req 0.0% err p99 24ms — 55 compared, differing rate 100.00% > "
        "maxDifferingRate 1.00%")
    # Without shadow scoring the line is as before: no diff numbers.
    assert interval_text(plain) == ("v4 10%: pass         canary 40 req 0.0% err p99 10ms | "
                                    "stable 90 req 0.0% err p99 10ms")
