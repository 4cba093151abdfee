"""The controller's own metrics: per-target pass results (a table) and the exposition,
read back with prometheus-client's real text parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from controller.decide.fleet import ObservedTarget
from controller.decide.plan import ClearSplit, Plan
from controller.runtime.reconcile import ReconcileResult
from controller.runtime.telemetry import CanaryView, ControllerMetrics, StateView, target_results


def result(
    observed: dict[str, bool], applied: list[str], remaining: list[str], errors: list[str]
) -> ReconcileResult:
    plan = Plan(tuple(ClearSplit(t, "m") for t in remaining), (), ())
    return ReconcileResult(
        not remaining, plan,
        tuple(ObservedTarget(name, up) for name, up in observed.items()),
        tuple(ClearSplit(t, "m") for t in applied), tuple(errors),
    )


def test_each_target_gets_how_the_pass_ended_for_it() -> None:
    outcome = result(
        {"a": True, "b": True, "c": False, "d": True, "e": True},
        applied=["b", "d"], remaining=["e"], errors=["d: ClearSplit m failed: UNAVAILABLE"],
    )
    assert target_results(outcome) == {
        "a": "in_sync", "b": "changed", "c": "unreachable", "d": "failed", "e": "pending",
    }


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_exposition_parses_and_reads_state_at_scrape_time() -> None:
    view = StateView()
    metrics = ControllerMetrics(lambda: view)
    metrics.reconciled(result({"a": True}, [], [], []), 0.2)
    metrics.git_seen(committed_at=100.0, now=103.5)
    metrics.git_seen(committed_at=200.0, now=199.0)  # clock skew: lag 0, never negative
    view = StateView({"m": "abc123"}, {"m": CanaryView("analyse", 2500)},
                     {"promote": 1}, {"fail": 2})
    got = samples(metrics.render())
    prefix = "rollouts_controller_"
    assert got[(f"{prefix}reconcile_results_total", (("result", "in_sync"), ("target", "a")))] == 1
    assert got[(f"{prefix}reconcile_duration_seconds_count", ())] == 1
    assert got[(f"{prefix}git_fetch_lag_seconds_count", ())] == 2
    assert got[(f"{prefix}git_fetch_lag_seconds_sum", ())] == 3.5
    assert got[(f"{prefix}applied_commit_info", (("commit", "abc123"), ("model", "m")))] == 1
    assert got[(f"{prefix}canary_phase", (("model", "m"), ("phase", "analyse")))] == 1
    assert got[(f"{prefix}canary_weight_ratio", (("model", "m"),))] == 0.25
    assert got[(f"{prefix}verdicts_total", (("kind", "promote"),))] == 1
    assert got[(f"{prefix}verdicts_total", (("kind", "fail"),))] == 0
    assert got[(f"{prefix}write_back_failures_total", (("kind", "fail"),))] == 2
    # A registry of its own: nothing from prometheus-client's global registry.
    assert not any(name.startswith(("python_", "process_")) for name, _ in got)
