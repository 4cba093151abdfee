"""Tables for canary progression: steps, holds, intervals, failures, restarts."""

from __future__ import annotations

import pytest

from controller.decide.progress import CanaryPlan, Event, Step, decide, fold

PLAN = CanaryPlan(
    model="m",
    version=2,
    steps=(Step(1000, 60.0), Step(5000, 60.0)),
    interval_s=30.0,
    failure_limit=2,
)


def ev(kind: str, at: float, step: int = 0, outcome: str = "", version: int = 2) -> Event:
    return Event(kind, at, "m", version, step, outcome)  # type: ignore[arg-type]


def test_waits_for_ready_canary_before_judging() -> None:
    d = decide(PLAN, [], ready=False, now=0)
    assert d.kind == "wait_ready" and d.weight_bp == 1000
    assert decide(PLAN, [], ready=True, now=0).kind == "start"


def test_first_interval_is_due_after_interval() -> None:
    events = [ev("started", 100)]
    assert decide(PLAN, events, ready=True, now=110).kind == "wait"
    d = decide(PLAN, events, ready=True, now=130)
    assert d.kind == "analyse" and d.window == (100, 130) and d.weight_bp == 1000


def test_hold_passed_with_passing_interval_advances() -> None:
    events = [
        ev("started", 0),
        ev("interval", 30, outcome="pass"),
        ev("interval", 60, outcome="pass"),
    ]
    d = decide(PLAN, events, ready=True, now=60)
    assert d.kind == "advance" and d.step == 1 and d.weight_bp == 5000


def test_hold_not_passed_keeps_step() -> None:
    events = [ev("started", 0), ev("interval", 30, outcome="pass")]
    d = decide(PLAN, events, ready=True, now=45)
    assert d.kind == "wait" and d.due_at == 60


def test_no_advance_after_failed_latest_interval() -> None:
    events = [
        ev("started", 0),
        ev("interval", 30, outcome="pass"),
        ev("interval", 60, outcome="fail"),
    ]
    d = decide(PLAN, events, ready=True, now=61)
    assert d.kind == "wait"
    assert decide(PLAN, events, ready=True, now=90).kind == "analyse"


def test_failure_limit_consecutive_fails() -> None:
    events = [
        ev("started", 0),
        ev("interval", 30, outcome="fail"),
        ev("interval", 60, outcome="fail"),
    ]
    d = decide(PLAN, events, ready=True, now=61)
    assert d.kind == "fail" and d.weight_bp == 0


def test_interleaved_failures_do_not_fail() -> None:
    events = [
        ev("started", 0),
        ev("interval", 30, outcome="fail"),
        ev("interval", 60, outcome="pass"),
        ev("interval", 90, outcome="fail"),
    ]
    assert fold(PLAN, events).consecutive_failures == 1
    assert decide(PLAN, events, ready=True, now=91).kind != "fail"


@pytest.mark.parametrize(
    ("on_no_data", "expected"),
    [("pause", "wait"), ("fail", "fail"), ("pass", "advance")],
)
def test_inconclusive_per_on_no_data(on_no_data: str, expected: str) -> None:
    plan = CanaryPlan("m", 2, PLAN.steps, 30.0, 2, on_no_data)  # type: ignore[arg-type]
    events = [
        ev("started", 0),
        ev("interval", 30, outcome="inconclusive"),
        ev("interval", 60, outcome="inconclusive"),
    ]
    assert decide(plan, events, ready=True, now=61).kind == expected


def test_pause_counts_neither_way() -> None:
    events = [
        ev("started", 0),
        ev("interval", 30, outcome="fail"),
        ev("interval", 60, outcome="inconclusive"),
        ev("interval", 90, outcome="fail"),
    ]
    # pause: the inconclusive interval neither resets nor adds to the failures
    assert fold(PLAN, events).consecutive_failures == 2


def test_last_step_promotes_or_reports_ready() -> None:
    events = [
        ev("started", 0),
        ev("interval", 30, outcome="pass"),
        ev("interval", 60, outcome="pass"),
        ev("step", 60, step=1),
        ev("interval", 90, outcome="pass"),
        ev("interval", 120, outcome="pass"),
    ]
    assert decide(PLAN, events, ready=True, now=120).kind == "promote"
    manual = CanaryPlan("m", 2, PLAN.steps, 30.0, 2, promotion="manual")
    assert decide(manual, events, ready=True, now=120).kind == "ready_to_promote"


def test_passes_from_previous_step_do_not_advance_next_step() -> None:
    events = [ev("started", 0), ev("interval", 30, outcome="pass"), ev("step", 60, step=1)]
    d = decide(PLAN, events, ready=True, now=125)
    assert d.kind == "analyse" and d.weight_bp == 5000


def test_recorded_verdict_is_carried_out_after_restart() -> None:
    events = [ev("started", 0), ev("verdict", 61, outcome="fail")]
    assert decide(PLAN, events, ready=True, now=1000).kind == "fail"
    events = [ev("started", 0), ev("verdict", 61, outcome="promote")]
    assert decide(PLAN, events, ready=False, now=1000).kind == "promote"


def test_events_of_other_versions_are_ignored() -> None:
    events = [ev("started", 0, version=3), ev("interval", 30, outcome="fail", version=3)]
    assert decide(PLAN, events, ready=False, now=100).kind == "wait_ready"


def test_restart_in_every_phase_resumes_from_journal() -> None:
    journal = [
        ev("started", 0),
        ev("interval", 30, outcome="pass"),
        ev("interval", 60, outcome="pass"),
        ev("step", 60, step=1),
        ev("interval", 90, outcome="fail"),
        ev("interval", 120, outcome="fail"),
    ]
    # (journal prefix a restarted controller reads back, now) -> exact decision
    table = [
        (0, 0, "start", None),
        (1, 30, "analyse", (0, 30)),
        (2, 60, "advance", None),
        (3, 60, "advance", None),
        (4, 90, "analyse", (60, 90)),
        (5, 120, "analyse", (90, 120)),
        (6, 121, "fail", None),
    ]
    for cut, now, kind, window in table:
        got = decide(PLAN, journal[:cut], ready=True, now=now)
        assert (got.kind, got.window) == (kind, window), (cut, got)


def test_event_json_round_trip_and_garbage() -> None:
    e = Event("interval", 12.5, "m", 2, 1, "pass", {"canary": {"requests": 10}})
    assert Event.from_json(e.to_json()) == e
    assert Event.from_json("not json") is None
    assert Event.from_json('{"kind": "interval"}') is None


def test_skipped_intervals_count_for_nothing_but_move_the_clock() -> None:
    events = [
        ev("started", 0),
        ev("interval", 30, outcome="fail"),
        ev("interval", 60, outcome="skipped"),
        ev("interval", 90, outcome="skipped"),
    ]
    state = fold(PLAN, events)
    assert state.consecutive_failures == 1 and state.last_interval_at == 90
    assert decide(PLAN, events, ready=True, now=100).kind == "wait"
    events.append(ev("interval", 120, outcome="fail"))
    assert decide(PLAN, events, ready=True, now=121).kind == "fail"


def test_canary_that_failed_to_load_fails_before_or_after_start() -> None:
    d = decide(PLAN, [], ready=False, now=0, load_error="t1: no SavedModel")
    assert d.kind == "fail" and d.weight_bp == 0 and "failed to load: t1: no SavedModel" in d.reason
    started = [ev("started", 0), ev("interval", 30, outcome="pass")]
    d = decide(PLAN, started, ready=False, now=40, load_error="t1: bad")
    assert d.kind == "fail" and d.step == 0


def test_recorded_verdict_wins_over_a_load_error() -> None:
    events = [ev("started", 0), ev("verdict", 61, outcome="promote")]
    d = decide(PLAN, events, ready=False, now=100, load_error="t1: bad")
    assert d.kind == "promote" and d.reason == "recorded"


def test_no_advance_on_passes_from_before_a_gap() -> None:
    events = [ev("started", 0), ev("interval", 30, outcome="pass"),
              ev("interval", 60, outcome="skipped")]
    state = fold(PLAN, events)
    assert state.passes_in_step == 1 and state.consecutive_failures == 0
    assert decide(PLAN, events, ready=True, now=70).kind == "wait"  # hold over, but a gap
    assert decide(PLAN, events, ready=True, now=90).kind == "analyse"
    events.append(ev("interval", 90, outcome="pass"))
    assert decide(PLAN, events, ready=True, now=91).kind == "advance"


def test_a_failed_interval_starts_the_hold_again() -> None:
    # The rule: a step advances when its hold has passed with no failed
    # interval. A failure at 30 (below failureLimit 2) moves the hold's start there.
    events = [ev("started", 0), ev("interval", 30, outcome="fail"),
              ev("interval", 60, outcome="pass")]
    assert fold(PLAN, events).hold_started_at == 30
    waiting = decide(PLAN, events, ready=True, now=61)
    assert waiting.kind == "wait" and waiting.due_at == 90
    events.append(ev("interval", 90, outcome="pass"))
    assert decide(PLAN, events, ready=True, now=91).kind == "advance"


def test_a_gap_extends_the_hold_by_the_time_it_covers() -> None:
    # Step 0 holds 60 s; 60 s of it went unmeasured (two skipped intervals),
    # so the hold ends at 120, not 60, however many passes came before.
    events = [ev("started", 0), ev("interval", 30, outcome="pass"),
              ev("interval", 60, outcome="skipped"), ev("interval", 90, outcome="skipped"),
              ev("interval", 100, outcome="pass")]
    assert fold(PLAN, events).skipped_s == 60
    waiting = decide(PLAN, events, ready=True, now=101)
    assert waiting.kind == "wait" and waiting.due_at == 120
    events.append(ev("interval", 130, outcome="pass"))
    assert decide(PLAN, events, ready=True, now=131).kind == "advance"
    # A new step starts with no gap of its own.
    events.append(ev("step", 131, step=1))
    assert fold(PLAN, events).skipped_s == 0


def test_canary_never_ready_fails_at_the_progress_deadline() -> None:
    plan = CanaryPlan("m", 2, PLAN.steps, 30.0, 2, progress_deadline_s=600.0)
    events = [ev("proposed", 100)]
    waiting = decide(plan, events, ready=False, now=699)
    assert waiting.kind == "wait_ready" and waiting.due_at == 700
    failed = decide(plan, events, ready=False, now=700)
    assert failed.kind == "fail" and "progressDeadline 600s" in failed.reason
    assert decide(plan, events, ready=True, now=650).kind == "start"
    # once started, the deadline no longer applies
    started = [*events, ev("started", 650)]
    assert decide(plan, started, ready=True, now=5000).kind != "fail"


# --- canary.paused ------------------------------------------------------------------

PAUSED = CanaryPlan(model="m", version=2, steps=PLAN.steps, interval_s=30.0, failure_limit=2,
                    paused=True)


def test_pausing_is_journaled_first_then_holds_while_judging() -> None:
    running = [ev("started", 0), ev("interval", 30, outcome="pass")]
    assert decide(PAUSED, running, ready=True, now=40).kind == "pause"
    paused = [*running, ev("paused", 40)]
    # Intervals are still judged as they come due...
    d = decide(PAUSED, paused, ready=True, now=60)
    assert d.kind == "analyse" and d.window == (30, 60)
    # ...but a hold that is over advances nothing, and the wait says why.
    done = [*paused, ev("interval", 60, outcome="pass"), ev("interval", 90, outcome="pass")]
    d = decide(PAUSED, done, ready=True, now=100)
    assert d.kind == "hold" and d.due_at == 120 and "paused" in d.reason
    assert decide(PLAN, done, ready=True, now=100).kind == "resume"


def test_failures_while_paused_write_no_verdict_until_resumed() -> None:
    events = [ev("started", 0), ev("paused", 10), ev("interval", 30, outcome="fail"),
              ev("interval", 60, outcome="fail")]
    assert decide(PAUSED, events, ready=True, now=70).kind == "hold"
    assert decide(PLAN, events, ready=True, now=70).kind == "resume"
    resumed = [*events, ev("resumed", 70)]
    assert decide(PLAN, resumed, ready=True, now=71).kind == "fail"


def test_resume_continues_the_hold_where_the_pause_stopped_it() -> None:
    # 20 s of the 60 s hold ran, then 100 s paused: the hold ends at 60 + 100.
    events = [ev("started", 0), ev("paused", 20), ev("interval", 30, outcome="pass"),
              ev("resumed", 120), ev("interval", 150, outcome="pass")]
    state = fold(PLAN, events)
    assert state.paused_at is None and state.paused_s == 100
    assert state.hold_started_at == 100
    assert decide(PLAN, events, ready=True, now=155).kind == "wait"
    assert decide(PLAN, [*events, ev("interval", 160, outcome="pass")], ready=True,
                  now=160).kind == "advance"


def test_a_pause_before_the_canary_started_waits_for_it() -> None:
    assert decide(PAUSED, [], ready=True, now=0).kind == "start"
    assert decide(PAUSED, [ev("started", 0)], ready=True, now=1).kind == "pause"


HOLDING = CanaryPlan(model="m", version=2, steps=PLAN.steps, interval_s=30.0, failure_limit=2,
                     on_failure="pause")
FAILED_TWICE = [ev("started", 0), ev("interval", 30, outcome="fail"),
                ev("interval", 60, outcome="fail")]
HELD = [*FAILED_TWICE, ev("verdict", 60, outcome="held")]


@pytest.mark.parametrize(
    ("plan", "events", "kwargs", "kind", "weight", "reason"),
    [
        # The failure limit: revert (default) or hold at weight 0.
        (PLAN, FAILED_TWICE, {}, "fail", 0, "2 consecutive failed interval(s)"),
        (HOLDING, FAILED_TWICE, {}, "hold_failed", 0, "2 consecutive failed interval(s)"),
        # Recorded: a held verdict is held on every later tick (a restarted controller
        # too), whatever the fleet shows, and never becomes a revert.
        (HOLDING, HELD, {}, "hold_failed", 0, "recorded"),
        (HOLDING, HELD, {"ready": False}, "hold_failed", 0, "recorded"),
        (HOLDING, HELD, {"load_error": "s0: boom"}, "hold_failed", 0, "recorded"),
        (HOLDING, [*HELD, ev("interval", 90, outcome="pass")], {}, "hold_failed", 0, "recorded"),
        # Even a revert plan reading a held journal (onFailure edited to revert
        # afterwards) keeps holding: the verdict recorded is the one carried out.
        (PLAN, HELD, {}, "hold_failed", 0, "recorded"),
        # Below the limit a failure holds nothing: the run goes on.
        (HOLDING, FAILED_TWICE[:2], {"now": 61}, "analyse", 1000, ""),
        # What cannot load or never gets ready is reverted either way.
        (HOLDING, [ev("started", 0)], {"load_error": "s0: boom"}, "fail", 0,
         "canary failed to load: s0: boom"),
        (HOLDING, [ev("proposed", 1)], {"ready": False, "now": 602}, "fail", 0,
         "canary not ready within progressDeadline 600s"),
    ],
)
def test_on_failure_pause_holds_a_failed_canary_at_weight_zero(
    plan: CanaryPlan, events: list[Event], kwargs: dict[str, object], kind: str, weight: int,
    reason: str,
) -> None:
    args: dict[str, object] = {"ready": True, "now": 90} | kwargs
    decision = decide(plan, events, **args)  # type: ignore[arg-type]
    assert (decision.kind, decision.weight_bp, decision.reason) == (kind, weight, reason)


def test_a_held_canary_ignores_a_pause_toggle() -> None:
    paused = CanaryPlan(model="m", version=2, steps=PLAN.steps, interval_s=30.0,
                        failure_limit=2, on_failure="pause", paused=True)
    assert decide(paused, HELD, ready=True, now=90).kind == "hold_failed"
    assert fold(HOLDING, HELD).verdict == "held"
