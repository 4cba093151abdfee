"""Shadow scoring: run a sampled request again on the split's other version,
off the response path, and record how the two answers compare.

The data plane calls `ShadowScorer.offer` after a request's answer is ready
(the user's handle is not held by the shadow). `offer` never blocks: the job
goes into a bounded queue, and when the queue is full the sample is dropped
and counted as the outcome "dropped", never queued behind users. One worker
thread takes jobs in order; each run takes its own servable handle on the
shadow version for the length of that run only, so a shadow never delays an
unload beyond its own run. The comparison itself is `shadow_compare.compare`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from serving.shadow_compare import Comparison, Outcome, compare

log = logging.getLogger(__name__)

DEFAULT_QUEUE_CAPACITY = 256

Run = Callable[[Any], Mapping[str, np.ndarray]]
"""The request replayed on a servable handle: handle -> outputs; raises on failure."""


class ShadowPeerLike(Protocol):
    @property
    def version(self) -> int: ...
    @property
    def tolerance(self) -> float: ...
    @property
    def outputs(self) -> tuple[str, ...]: ...


class ShadowCoreLike(Protocol):
    """The part of ServerCore the scorer uses."""

    def shadow_peer(self, model: str, served_label: str | None) -> ShadowPeerLike | None: ...

    def handle(self, model: str, version: int | None = None, label: str | None = None,
               headers: Mapping[str, str] | None = None) -> AbstractContextManager[Any]: ...


class ShadowMetricsLike(Protocol):
    def observe_shadow(self, model: str, version: int, baseline_version: int, outcome: Outcome,
                       abs_diff_sum: float, abs_diff_count: int) -> None: ...


@dataclass(frozen=True)
class ShadowJob:
    """One sampled request: run it on `version`, compare with `primary`, which
    `baseline_version` answered the user with."""

    model: str
    version: int
    baseline_version: int
    run: Run
    primary: Mapping[str, np.ndarray]
    tolerance: float
    outputs: tuple[str, ...] = ()


_STOP = object()


class ShadowScorer:
    """A bounded queue and one worker thread; see the module docstring."""

    def __init__(self, core: ShadowCoreLike, metrics: ShadowMetricsLike | None = None,
                 capacity: int = DEFAULT_QUEUE_CAPACITY) -> None:
        self._core = core
        self._metrics = metrics
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(capacity, 1))
        self._idle = threading.Condition()
        self._busy = 0  # jobs offered and not yet recorded
        self._thread = threading.Thread(target=self._work, name="shadow-scorer", daemon=True)
        self._thread.start()

    def peer(self, model: str, served_label: str | None) -> ShadowPeerLike | None:
        """Where a request the `served_label` side answered is also scored, if sampled."""
        return self._core.shadow_peer(model, served_label)

    def offer(self, job: ShadowJob) -> bool:
        """Queue `job` without blocking; False (and counted "dropped") when full."""
        with self._idle:
            self._busy += 1
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self._done(job, Comparison("dropped"))
            return False
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Until every offered job is recorded (tests and shutdown); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def stop(self, timeout: float) -> None:
        """End the worker: samples still queued are dropped (and counted), the
        run in progress may finish within `timeout`. A shutdown never waits
        for a backlog of shadow work."""
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                self._done(job, Comparison("dropped"))
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return  # offers raced in; the daemon worker dies with the process
        self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            self._done(job, self._score(job))

    def _score(self, job: ShadowJob) -> Comparison:
        try:
            with self._core.handle(job.model, job.version) as handle:
                answer = job.run(handle)
        except Exception as exc:  # the shadow side failed: an outcome, never a crash
            log.debug("shadow run of %s v%d failed: %s", job.model, job.version, exc)
            return Comparison("error", detail=str(exc))
        try:
            return compare(job.primary, answer, job.tolerance, job.outputs)
        except Exception as exc:  # an output numpy cannot compare: not comparable
            return Comparison("mismatch", detail=str(exc))

    def _done(self, job: ShadowJob, result: Comparison) -> None:
        try:
            if self._metrics is not None:
                self._metrics.observe_shadow(job.model, job.version, job.baseline_version,
                                             result.outcome, result.abs_diff_sum,
                                             result.abs_diff_count)
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()
