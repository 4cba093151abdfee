"""The reconcile executor: observe, plan, act, repeat until in sync or out of time.

Observation of every target runs in parallel so one slow or dead target never
delays the others. A target that fails is backed off exponentially and reported;
it rejoins the fleet on its next successful observation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from controller.decide.fleet import DesiredModel, DesiredState, ObservedTarget
from controller.decide.plan import Action, Finding, Plan, action_models, action_text, plan
from controller.runtime.logfields import fields

log = logging.getLogger(__name__)


class Target(Protocol):
    @property
    def name(self) -> str: ...

    def observe(self, desired: Mapping[str, DesiredModel]) -> ObservedTarget: ...

    def apply(self, action: Action) -> None: ...


@dataclass
class Backoff:
    """Per-target exponential backoff after failures (pure bookkeeping)."""

    base_s: float = 1.0
    max_s: float = 60.0
    failures: dict[str, int] = field(default_factory=dict)
    retry_at: dict[str, float] = field(default_factory=dict)

    def failed(self, target: str, now: float) -> None:
        count = self.failures.get(target, 0) + 1
        self.failures[target] = count
        self.retry_at[target] = now + min(self.max_s, self.base_s * 2 ** (count - 1))

    def succeeded(self, target: str) -> None:
        self.failures.pop(target, None)
        self.retry_at.pop(target, None)

    def waiting(self, target: str, now: float) -> bool:
        return now < self.retry_at.get(target, 0.0)


@dataclass(frozen=True)
class ReconcileResult:
    in_sync: bool
    plan: Plan
    observed: tuple[ObservedTarget, ...]
    applied: tuple[Action, ...]
    errors: tuple[str, ...]

    @property
    def findings(self) -> tuple[Finding, ...]:
        return self.plan.findings


class Reconciler:
    def __init__(
        self,
        targets: Sequence[Target],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        backoff: Backoff | None = None,
        poll_s: float = 0.2,
    ) -> None:
        self.targets = list(targets)
        self.clock = clock
        self.sleep = sleep
        self.backoff = backoff or Backoff()
        self.poll_s = poll_s
        # Sized for a fleet that may grow (targets discovered in DNS) up to 16 at once.
        self._pool = ThreadPoolExecutor(max_workers=16)

    def set_targets(self, targets: Sequence[Target]) -> None:
        """Replace the fleet (discovery): a new target starts with no backoff; a gone
        one is forgotten, so a replica coming back under the same name starts fresh."""
        names = {t.name for t in targets}
        for gone in {t.name for t in self.targets} - names:
            self.backoff.succeeded(gone)
        self.targets = list(targets)

    def observe(self, desired: DesiredState) -> list[ObservedTarget]:
        now = self.clock()
        futures = {}
        observed: dict[str, ObservedTarget] = {}
        for target in self.targets:
            if self.backoff.waiting(target.name, now):
                observed[target.name] = ObservedTarget(
                    target.name, False, error="backing off after failures"
                )
            else:
                futures[target.name] = self._pool.submit(target.observe, desired.models)
        for name, future in futures.items():
            result = future.result()
            observed[name] = result
            if result.reachable:
                self.backoff.succeeded(name)
            else:
                self.backoff.failed(name, now)
        return [observed[t.name] for t in self.targets]

    def run(
        self,
        desired: DesiredState,
        *,
        deadline_s: float = 60.0,
        superseded: Callable[[], bool] = lambda: False,
    ) -> ReconcileResult:
        """Converge the fleet on `desired`.

        Returns when in sync, when nothing more can progress in this pass (only
        unreachable targets or failed loads remain), when `superseded()` says a
        newer desired state exists, or at the deadline.
        """
        end = self.clock() + deadline_s
        applied: list[Action] = []
        errors: list[str] = []
        while True:
            observed = self.observe(desired)
            current = plan(desired, observed)
            if not current.waiting or self.clock() >= end or superseded():
                return ReconcileResult(
                    current.in_sync, current, tuple(observed), tuple(applied), tuple(errors)
                )
            if current.actions:
                failed = self._apply(current.actions, applied, errors, desired.commit)
                if failed and not any(t.reachable and t.name not in failed for t in observed):
                    # Nothing else can progress this pass.
                    return ReconcileResult(
                        False, current, tuple(observed), tuple(applied), tuple(errors)
                    )
            else:
                self.sleep(self.poll_s)

    def _apply(
        self, actions: Sequence[Action], applied: list[Action], errors: list[str],
        commit: str = "",
    ) -> set[str]:
        by_target: dict[str, list[Action]] = {}
        for action in actions:
            by_target.setdefault(action.target, []).append(action)
        names = {t.name: t for t in self.targets}
        futures = {
            name: self._pool.submit(self._apply_in_order, names[name], todo)
            for name, todo in by_target.items()
        }
        failed: set[str] = set()
        for name, future in futures.items():
            done, error = future.result()
            applied.extend(done)
            for action in done:
                # Every change made to a target, in words, with what it was for.
                log.info("%s: %s (commit %s)", name, action_text(action), commit[:12],
                         extra=fields("apply", model=",".join(action_models(action)),
                                      target=name, commit=commit))
            if error:
                failed.add(name)
                errors.append(error)
                log.warning("%s", error, extra=fields("apply_failed", target=name, commit=commit))
                self.backoff.failed(name, self.clock())
        return failed

    @staticmethod
    def _apply_in_order(target: Target, actions: list[Action]) -> tuple[list[Action], str]:
        done: list[Action] = []
        for action in actions:
            try:
                target.apply(action)
            except Exception as err:  # noqa: BLE001 - one target's failure is reported, not fatal
                return done, str(err)
            done.append(action)
        return done, ""

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
