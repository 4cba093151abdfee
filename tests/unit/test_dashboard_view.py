"""The dashboard's data and pages from status documents and journals (fixtures)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from controller.runtime.dashboard import auth, pages, view
from controller.runtime.dashboard.assets import UPLOT_JS_URL, static_file

T0 = 1_800_000_000.0


def window(requests: float, errors: float, p99_s: float | None) -> dict[str, Any]:
    return {"requests": requests, "errors": errors,
            "errorRate": errors / requests if requests else 0.0,
            "latencyP99Seconds": p99_s, "latencyBuckets": []}


def interval(at: float, outcome: str, weight_bp: int, canary: dict[str, Any],
             stable: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"at": at, "outcome": outcome, "weightBp": weight_bp,
            "summary": f"{outcome} at {weight_bp / 100:g}%", "canary": canary,
            "stable": stable, "reasons": [], **extra}


def target(reachable: bool, weight_bp: int | None, error: str = "") -> dict[str, Any]:
    return {"reachable": reachable, "error": error, "versions": {}, "labels": {},
            "splitWeightBp": weight_bp}


def status_doc() -> dict[str, Any]:
    rollout = {
        "model": "hp2", "version": 3, "phase": "analyse", "step": 1, "steps": 3,
        "stepText": "2/3", "weightBp": 2000, "canaryCommit": "c" * 40,
        "message": "analysing", "intervals": [
            interval(T0 + 30, "pass", 1000, window(100, 0, 0.004), window(900, 1, 0.003)),
        ],
    }
    return {
        "repo": "file:///r", "branch": "main", "commitSeen": "a" * 40,
        "commitApplied": "a" * 40, "inSync": True, "specErrors": [], "gitError": "",
        "lastReconcileAt": "", "reconcileErrors": [], "findings": [],
        "models": {
            "hp2": {"commitApplied": "a" * 40, "stable": 2, "canary": 3, "versions": [2, 3],
                    "labels": {"stable": 2, "canary": 3}, "splitWeightBp": 2000,
                    "targets": {"t1": target(True, 5000), "t2": target(True, 2000),
                                "t3": target(False, None, "connection refused")},
                    "rollout": rollout, "errors": []},
            "mlp": {"commitApplied": "a" * 40, "stable": 7, "canary": None, "versions": [7],
                    "labels": {"stable": 7}, "splitWeightBp": None,
                    "targets": {"t1": target(True, None)}, "rollout": None, "errors": []},
        },
    }


def history() -> view.RolloutHistory:
    return view.RolloutHistory(
        model="hp2", version=3, interval_s=10.0, steps_weight_bp=(1000, 2000, 5000),
        intervals=[
            interval(T0 + 20, "skipped", 1000, window(0, 0, None), window(0, 0, None)),
            interval(T0 + 10, "pass", 1000, window(100, 0, 0.004), window(900, 9, 0.003)),
            interval(T0 + 30, "fail", 2000,
                     window(200, 20, 0.250) | {"shadow": {"compared": 50, "differing": 10,
                                                          "differingRate": 0.2,
                                                          "meanAbsDiff": 0.1}},
                     window(800, 8, 0.003)),
        ],
        events=[
            {"kind": "started", "at": T0, "summary": "canary ready", "commit": "c" * 40},
            {"kind": "verdict", "at": T0 + 40, "outcome": "fail", "summary": "reverted",
             "commit": "d" * 40},
        ],
        thresholds=view.Thresholds(error_rate_max=0.01, latency_p99_max_s=0.1,
                                   differing_rate_max=0.05),
    )


def test_overview_shows_the_weight_targets_serve_not_the_spec() -> None:
    rows = {r["model"]: r for r in view.overview(status_doc())}
    # t1 still serves 50%, t2 20%: the lowest reachable weight is what all serve.
    assert rows["hp2"]["servedWeightPct"] == 20
    assert rows["hp2"]["health"] == {"up": 2, "total": 3, "down": ["t3"]}
    assert rows["hp2"]["phase"] == "analyse" and rows["hp2"]["step"] == "2/3"
    assert rows["hp2"]["lastVerdict"] == "pass at 10%"
    assert rows["mlp"]["phase"] == "stable" and rows["mlp"]["canary"] is None
    assert rows["mlp"]["servedWeightPct"] == 0


def test_series_are_in_time_order_with_gaps_for_unjudged_intervals() -> None:
    s = view.series(history())
    assert s["at"] == [T0 + 10, T0 + 20, T0 + 30]
    assert s["canaryErrorRate"] == [0.0, None, 0.1]
    assert s["stableErrorRate"] == [0.01, None, 0.01]
    assert s["canaryP99Ms"] == [4.0, None, 250.0]
    assert s["canaryRps"] == [10.0, 0.0, 20.0]
    assert s["weightPct"] == [10, 10, 20]
    assert s["differingRate"] == [None, None, 0.2]
    assert s["meanAbsDiff"] == [None, None, 0.1]


def test_rollout_view_carries_thresholds_timeline_commits_and_commands() -> None:
    data = view.rollout_view(status_doc(), "hp2", history(),
                             commit_url="https://git.example.com/o/r/commit/{sha}",
                             available_commands=("abort",))
    assert data is not None
    assert data["thresholds"] == {"errorRate": 0.01, "p99Ms": 100.0, "differingRate": 0.05,
                                  "meanAbsDiff": None}
    kinds = [item["kind"] for item in data["timeline"]]
    assert kinds == ["started", "interval", "interval", "interval", "verdict"]
    assert data["timeline"][-1]["commitUrl"] == "https://git.example.com/o/r/commit/" + "d" * 40
    assert [c["role"] for c in data["commits"]] == ["started", "fail"]
    assert data["commits"][0]["url"].endswith("c" * 40)
    commands = {c["action"]: c["command"] for c in data["commands"]}
    assert commands["abort"] == "rollouts abort hp2 --push"
    assert commands["promote"].startswith("set spec.stable: 3")
    assert "set spec.canary.retry: true" in commands["retry"]
    assert commands["pause"].startswith("set spec.canary.paused: true")
    with_pause = view.commands("hp2", {"version": 3}, ("pause",))
    assert {"action": "pause", "command": "rollouts pause hp2 --push"} in with_pause
    assert data["stepsWeightPct"] == [10, 20, 50]


def test_rollout_view_without_history_or_canary() -> None:
    assert view.rollout_view(status_doc(), "nope", None) is None
    data = view.rollout_view(status_doc(), "mlp", None)
    assert data is not None
    assert data["series"] is None and data["timeline"] == [] and data["commands"] == []


@pytest.mark.parametrize(("template", "sha", "expected"), [
    ("https://g/c/{sha}", "abc", "https://g/c/abc"),
    ("https://g/c/", "abc", ""),  # no placeholder: no link rather than a wrong one
    ("", "abc", ""),
    ("https://g/c/{sha}", "", ""),
])
def test_commit_link(template: str, sha: str, expected: str) -> None:
    assert view.commit_link(template, sha) == expected


def test_pages_escape_values_and_embed_their_data() -> None:
    doc = status_doc()
    doc["models"]["hp2"]["rollout"]["message"] = "<script>alert(1)</script>"
    data = view.rollout_view(doc, "hp2", history())
    assert data is not None
    html = pages.rollout_page(data)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    block = re.search(r'<script type="application/json" id="dashboard-data">(.*?)</script>',
                      html, re.S)
    assert block is not None
    assert json.loads(block.group(1))["message"] == "<script>alert(1)</script>"
    assert UPLOT_JS_URL in html
    for chart in ("errors", "latency", "traffic", "weight", "prediction"):
        assert f'id="chart-{chart}"' in html
    overview = pages.overview_page(view.overview(doc), doc)
    assert 'href="rollouts/hp2"' in overview and "2/3 up" in overview


def test_static_files_are_shipped_and_confined() -> None:
    found = static_file(UPLOT_JS_URL.rsplit("/", 1)[1])
    assert found is not None and found[0].startswith(b"/*! https://github.com/leeoniya/uPlot")
    assert static_file("LICENSE.uplot") is not None
    assert static_file("../auth.py") is None and static_file(".hidden") is None


def test_auth_bearer_cookie_and_loopback_rule() -> None:
    assert auth.allowed("", None, None)
    assert not auth.allowed("s3cret", None, None)
    assert auth.allowed("s3cret", "Bearer s3cret", None)
    assert not auth.allowed("s3cret", "Bearer wrong", None)
    cookie = f"{auth.COOKIE}={auth.session_value('s3cret')}"
    assert auth.allowed("s3cret", None, cookie)
    assert "s3cret" not in auth.session_value("s3cret")
    assert not auth.allowed("s3cret", None, f"{auth.COOKIE}=s3cret")
    assert not auth.allowed("s3cret", None, "garbage;;==")
    auth.check_listen("127.0.0.1:8686", "")
    auth.check_listen("[::1]:8686", "")
    auth.check_listen("localhost:8686", "")
    auth.check_listen("0.0.0.0:8686", "token")
    with pytest.raises(auth.DashboardConfigError,
                       match=r"--listen 0.0.0.0:8686 is not a loopback.*--dashboard-token-file"):
        auth.check_listen("0.0.0.0:8686", "")
    with pytest.raises(auth.DashboardConfigError):
        auth.check_listen("controller.example.com:8686", "")


def test_history_of_a_running_canary_carries_its_spec_limits() -> None:
    from controller.decide.analysis import Criteria
    from controller.decide.progress import CanaryPlan, Step
    from controller.runtime.rollout_status import RolloutStatus

    status = RolloutStatus("hp2", 3, "analyse", 0, 2, 0, "c" * 40,
                           intervals=[{"at": T0, "outcome": "pass"}],
                           events=[{"kind": "started", "at": T0 - 1, "step": 0, "outcome": ""}])
    plan = CanaryPlan("hp2", 3, (Step(0, 60.0), Step(2000, 60.0)), 30.0, 2)
    criteria = Criteria(min_requests=10, on_no_data="pause", failure_limit=2,
                        error_rate_max=0.01, prediction_max_differing_rate=0.05,
                        prediction_max_mean_abs=0.1)
    history = view.history_of(status, plan, criteria)
    assert history.steps_weight_bp == (0, 2000) and history.interval_s == 30.0
    assert history.thresholds == view.Thresholds(error_rate_max=0.01, differing_rate_max=0.05,
                                                 mean_abs_max=0.1)
    assert history.events[0]["commit"] == "c" * 40  # the start links its commit
