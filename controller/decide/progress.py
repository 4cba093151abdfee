"""Canary progression as a pure fold over a journal of events.

The journal lives in git notes on the commit that started the canary, so a
restarted controller rebuilds exactly where a rollout stood: which step, since
when, and how the last intervals went. `decide` is the only place that says
what happens next; it takes the clock as an argument and does no I/O.

Rules (Argo Rollouts / Flagger semantics):
- Nothing is judged until the canary is ready (AVAILABLE, labelled and split on
  every target); readiness is recorded by a `started` event. The first sight of
  a canary is recorded (`proposed`); one not ready within `progress_deadline_s`
  of that fails, so a rollout never hangs on a version that cannot load.
- Each step holds its weight for `hold`; an analysis interval is due every
  `interval`. A step advances once its hold has passed with no failed interval
  and the latest judged interval passed: a failed interval (below the failure
  limit) starts the step's hold again from its own time.
- `failure_limit` consecutive failed intervals fail the rollout: with
  `on_failure` "revert" the verdict is `fail` (out of traffic, then the revert
  commit); with "pause" it is `held` (weight 0, still loaded, nothing written)
  and stays so until a person's commit ends it (abort, promote, or a retry,
  which raises `canary.attempt` and so starts a fresh journal). Inconclusive
  intervals follow `on_no_data`: `pass` and `fail` count as such; `pause` counts
  as neither and stops the step from advancing until data returns.
- An interval the metrics provider could not measure at all (a target down or
  restarted, no baseline after a controller restart) is `skipped`: it moves the
  analysis clock on and counts for nothing, so a gap is never a failure; a
  step does not advance (or promote) until an interval after the gap passed.
- After the last step: promote (auto) or report ready to promote (manual).
- A canary version that ended with a load error on a target fails at once,
  whatever the journal says, unless a verdict is already recorded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

EventKind = Literal[
    "proposed", "started", "interval", "step", "verdict", "paused", "resumed",
    # A pull request canary's run boundaries (`decide.pull_requests`); `fold` skips them.
    "baseline", "stopped",
    # A person's abort carried out (`runtime.aborts`): the run's last line; `fold` skips it.
    "aborted",
]
DecisionKind = Literal[
    "wait_ready", "start", "analyse", "advance", "promote", "ready_to_promote", "fail", "wait",
    "pause", "resume", "hold", "hold_failed",
]


@dataclass(frozen=True)
class Step:
    weight_bp: int
    hold_s: float


@dataclass(frozen=True)
class CanaryPlan:
    model: str
    version: int
    steps: tuple[Step, ...]
    interval_s: float
    failure_limit: int
    on_no_data: Literal["pause", "fail", "pass"] = "pause"
    promotion: Literal["auto", "manual"] = "auto"
    # From the first time the controller sees the canary to its being ready.
    progress_deadline_s: float = 600.0
    # `canary.paused`: hold the current step and weight; intervals are still judged
    # and journaled, but no step advances and no verdict is written.
    paused: bool = False
    # `analysis.onFailure`: what a failed analysis does (revert, or hold at weight 0).
    on_failure: Literal["revert", "pause"] = "revert"


@dataclass(frozen=True)
class Event:
    kind: EventKind
    at: float
    model: str
    version: int
    step: int = 0
    outcome: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @staticmethod
    def from_json(text: str) -> Event | None:
        try:
            raw = json.loads(text)
            return Event(
                kind=raw["kind"],
                at=float(raw["at"]),
                model=str(raw["model"]),
                version=int(raw["version"]),
                step=int(raw.get("step", 0)),
                outcome=str(raw.get("outcome", "")),
                detail=dict(raw.get("detail", {})),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Progress:
    started_at: float | None
    step: int
    step_started_at: float | None
    last_interval_at: float | None
    consecutive_failures: int
    passes_in_step: int
    latest_outcome: str
    verdict: str  # "" while running, else the recorded final verdict
    proposed_at: float | None = None
    # Where the step's hold counts from: its start, or its latest failed interval.
    hold_from: float | None = None
    # Seconds since `hold_from` covered by skipped (unmeasured) intervals.
    skipped_s: float = 0.0
    # When the journal says the canary was paused (None: running), and how long it
    # was paused since `hold_from`: a hold is time running, so a resume goes on
    # from where the pause stopped it.
    paused_at: float | None = None
    paused_s: float = 0.0

    @property
    def hold_started_at(self) -> float | None:
        """Where the hold counts from, moved on by the unmeasured and paused time since."""
        if self.hold_from is None:
            return None
        return self.hold_from + self.skipped_s + self.paused_s


@dataclass(frozen=True)
class Decision:
    kind: DecisionKind
    weight_bp: int
    step: int
    # For "analyse": the window to judge. For "wait": when something is next due.
    window: tuple[float, float] | None = None
    due_at: float | None = None
    reason: str = ""


def fold(plan: CanaryPlan, events: Sequence[Event]) -> Progress:
    """Where the rollout of `plan` stands after `events` (others' events ignored)."""
    started_at: float | None = None
    step = 0
    step_started_at: float | None = None
    last_interval_at: float | None = None
    failures = 0
    passes = 0
    latest = ""
    verdict = ""
    proposed_at: float | None = None
    hold_from: float | None = None
    skipped_s = 0.0
    paused_at: float | None = None
    paused_s = 0.0
    for event in sorted(_mine(plan, events), key=lambda e: e.at):
        if event.kind == "proposed" and proposed_at is None:
            proposed_at = event.at
        elif event.kind == "started" and started_at is None:
            started_at = event.at
            step_started_at = hold_from = event.at
            last_interval_at = event.at
        elif event.kind == "interval" and started_at is not None:
            previous = last_interval_at or event.at
            last_interval_at = max(previous, event.at)
            counted = _counted(event.outcome, plan.on_no_data)
            if counted == "skipped":
                skipped_s += max(0.0, event.at - previous)
                # Not measured (provider gap): neither pass nor failure, but the
                # step waits for a measured pass after the gap before it moves on.
                latest = "skipped"
                continue
            latest = counted
            if counted == "fail":
                failures += 1
                # The hold must pass with no failed interval: it starts again.
                hold_from, skipped_s, passes = event.at, 0.0, 0
                paused_s = 0.0
            elif counted == "pass":
                failures = 0
                passes += 1
        elif event.kind == "step" and event.step > step:
            # A new weight starts a fresh interval: no window mixes two weights.
            step = event.step
            step_started_at = hold_from = event.at
            last_interval_at = event.at
            passes = 0
            latest = ""
            skipped_s = 0.0
        elif event.kind == "paused" and started_at is not None and paused_at is None:
            paused_at = event.at
        elif event.kind == "resumed" and paused_at is not None:
            # Only the part of the pause after the hold's start holds it back.
            paused_s += max(0.0, event.at - max(paused_at, hold_from or paused_at))
            paused_at = None
        elif event.kind == "verdict":
            verdict = event.outcome
    return Progress(
        started_at,
        step,
        step_started_at,
        last_interval_at,
        failures,
        passes,
        latest,
        verdict,
        proposed_at,
        hold_from,
        skipped_s,
        paused_at,
        paused_s,
    )


def decide(
    plan: CanaryPlan,
    events: Sequence[Event],
    *,
    ready: bool,
    now: float,
    load_error: str = "",
) -> Decision:
    """What happens next; `load_error` is set when the canary version failed to load."""
    state = fold(plan, events)
    steps = plan.steps
    weight = steps[min(state.step, len(steps) - 1)].weight_bp if steps else 0
    if state.verdict in ("fail", "promote"):
        # Recorded but not yet carried out (e.g. the controller died in between).
        kind: DecisionKind = "fail" if state.verdict == "fail" else "promote"
        return Decision(kind, 0 if kind == "fail" else weight, state.step, reason="recorded")
    if state.verdict == "held":
        # A held failure stays held (and never becomes a revert) until a person's commit.
        return Decision("hold_failed", 0, state.step, reason="recorded")
    if load_error:
        # A version that cannot load never becomes ready: waiting would leave
        # the rollout stuck forever, so it is a failed canary.
        return Decision("fail", 0, state.step, reason=f"canary failed to load: {load_error}")
    if state.started_at is None:
        if ready:
            return Decision("start", weight, 0)
        deadline = (state.proposed_at or now) + plan.progress_deadline_s
        if now >= deadline:
            # Never ready (a version dir that stays incomplete, a target that
            # never loads it): a stuck rollout is a failed one.
            return Decision(
                "fail",
                0,
                0,
                reason=f"canary not ready within progressDeadline {plan.progress_deadline_s:g}s",
            )
        return Decision("wait_ready", weight, 0, due_at=deadline)
    if plan.paused != (state.paused_at is not None):
        # A person paused or resumed it (canary.paused): journal that first.
        return Decision("pause" if plan.paused else "resume", weight, state.step)
    if state.paused_at is not None:
        return _paused(plan, state, weight, ready=ready, now=now)
    if state.consecutive_failures >= plan.failure_limit:
        return Decision(
            "fail" if plan.on_failure == "revert" else "hold_failed",
            0,
            state.step,
            reason=f"{state.consecutive_failures} consecutive failed interval(s)",
        )
    assert state.hold_started_at is not None and state.last_interval_at is not None
    if not ready:
        # The split is not (yet) at this step's weight everywhere, or a target
        # lost the canary: judge nothing until it is back.
        return Decision("wait_ready", weight, state.step)
    if state.step >= len(steps):
        kind = "promote" if plan.promotion == "auto" else "ready_to_promote"
        return Decision(kind, weight, state.step)
    hold = steps[state.step].hold_s
    hold_over = now >= state.hold_started_at + hold
    if hold_over and state.passes_in_step > 0 and state.latest_outcome == "pass":
        nxt = state.step + 1
        if nxt >= len(steps):
            kind = "promote" if plan.promotion == "auto" else "ready_to_promote"
            return Decision(kind, weight, nxt)
        return Decision("advance", steps[nxt].weight_bp, nxt)
    next_interval = state.last_interval_at + plan.interval_s
    if now >= next_interval:
        return Decision("analyse", weight, state.step, window=(state.last_interval_at, now))
    due = next_interval
    if state.passes_in_step > 0 and state.latest_outcome == "pass":
        due = min(due, state.hold_started_at + hold)
    return Decision("wait", weight, state.step, due_at=due)


def _paused(plan: CanaryPlan, state: Progress, weight: int, *, ready: bool,
            now: float) -> Decision:
    """Paused: judge each interval as it is due, decide nothing (no step, no verdict)."""
    assert state.last_interval_at is not None
    next_interval = state.last_interval_at + plan.interval_s
    if ready and now >= next_interval:
        return Decision("analyse", weight, state.step, window=(state.last_interval_at, now))
    return Decision("hold", weight, state.step, due_at=next_interval,
                    reason="paused by canary.paused: true")


def _mine(plan: CanaryPlan, events: Sequence[Event]) -> list[Event]:
    return [e for e in events if e.model == plan.model and e.version == plan.version]


def _counted(outcome: str, on_no_data: str) -> str:
    if outcome == "inconclusive":
        return {"pause": "inconclusive", "fail": "fail", "pass": "pass"}[on_no_data]
    return outcome
