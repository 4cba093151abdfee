"""The manager: aspired versions in, loaded servables and their states out.

Owns, per model: the aspired versions a source asked for, one entry per
version with its lifecycle state (START, LOADING, AVAILABLE, UNLOADING, END),
the transition policy, and ref-counted servable handles. After every event it
asks the pure `next_action` for the model and applies at most one action per
model at a time: loads run on a load worker pool and unloads on an unload
worker pool, outside the lock, so a slow load never blocks handles, status
calls or other models.

Differences from TF Serving's AspiredVersionsManager, on purpose:
- A version that failed to load is retried when it is re-aspired with a
  different fingerprint (its directory changed); TF Serving never retries it
  (#1738). Re-aspiring it unchanged does not retry.
- END entries are kept for status reporting but bounded per model (TF
  Serving's state monitor grows forever, #1488).
- The transition policy can differ per model.

Locking: one re-entrant lock guards all state; its condition variable is
notified at every state change. Listeners run under that lock, in order, so
they see each change exactly when it happens; they must be quick and must not
block (they may call the read methods).

Requests that find no servable version may wait for one on its way in
(`wait_for_load`, or `wait_for_load_async` on an event loop): the pure
`waiting.readiness` says whether a load would serve them; the wait is on the
same condition variable (an event loop's waiters are woken through
`call_soon_threadsafe`, so no thread blocks for them).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from serving.core.clock import MONOTONIC, Clock
from serving.core.loader import Loader
from serving.core.policies import TransitionPolicy, VersionSnapshot, next_action
from serving.core.states import LOADED_STATES, VersionState
from serving.core.status import Code, ServingError
from serving.core.waiting import Readiness, readiness

__all__ = [
    "AspiredVersion",
    "Manager",
    "TransitionPolicy",
    "VersionState",
    "VersionStatus",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionStatus:
    model: str
    version: int
    state: VersionState
    error: ServingError | None


@dataclass(frozen=True)
class AspiredVersion:
    version: int
    path: str
    fingerprint: str = ""


LoaderFactory = Callable[[AspiredVersion], Loader]
Listener = Callable[[VersionStatus], None]


@dataclass(eq=False)
class _Entry:
    """One version of one model under management."""

    aspired: AspiredVersion
    factory: LoaderFactory
    state: VersionState = VersionState.START
    is_aspired: bool = True
    error: ServingError | None = None
    loader: Loader | None = None
    servable: object = None
    refs: int = 0
    ended_at: int = 0  # order in which entries reached END, for trimming


@dataclass(eq=False)
class _Model:
    aspired: dict[int, AspiredVersion] = field(default_factory=dict)
    factory: LoaderFactory | None = None
    entries: dict[int, _Entry] = field(default_factory=dict)
    busy: bool = False  # an action is in flight
    removed: bool = False


class _Workers:
    """A fixed pool of daemon threads; daemon so a hung loader cannot block process exit."""

    def __init__(self, name: str, count: int) -> None:
        self._tasks: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(max(count, 1))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, task: Callable[[], None]) -> None:
        self._tasks.put(task)

    def _run(self) -> None:
        while (task := self._tasks.get()) is not None:
            try:
                task()
            except Exception:  # a bug in a task must not kill the worker
                log.exception("manager task failed")

    def shutdown(self, timeout: float) -> None:
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join(timeout)


def _as_serving_error(exc: BaseException) -> ServingError:
    if isinstance(exc, ServingError):
        return exc
    return ServingError(Code.UNKNOWN, str(exc) or type(exc).__name__)


class Manager:
    def __init__(
        self,
        *,
        default_policy: TransitionPolicy = TransitionPolicy.AVAILABILITY_PRESERVING,
        num_load_threads: int = 4,
        num_unload_threads: int = 4,
        max_num_load_retries: int = 5,
        load_retry_interval_s: float = 60.0,
        max_end_entries: int = 16,
        clock: Clock = MONOTONIC,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._default_policy = default_policy
        self._max_retries = max(max_num_load_retries, 0)
        self._retry_interval = load_retry_interval_s
        self._max_end = max(max_end_entries, 0)
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition(threading.RLock())
        self._models: dict[str, _Model] = {}
        self._policies: dict[str, TransitionPolicy] = {}
        self._listeners: list[Listener] = []
        # Event-loop waiters: called (quickly, without blocking) at every change.
        self._wakers: set[Callable[[], None]] = set()
        self._end_counter = 0
        self._stopping = False
        self._loads = _Workers("load", num_load_threads)
        self._unloads = _Workers("unload", num_unload_threads)

    # ----- what sources and server_core call -----

    def set_aspired_versions(
        self, model: str, versions: Sequence[AspiredVersion], loader_factory: LoaderFactory
    ) -> None:
        """Replace the aspired set of `model`; an empty sequence unloads every version."""
        with self._cond:
            if self._stopping:
                log.warning("manager stopped; ignoring aspired versions for %s", model)
                return
            m = self._models.setdefault(model, _Model())
            m.removed = False
            m.factory = loader_factory
            m.aspired = {v.version: v for v in versions}
            self._sync(model, m)

    def remove_model(self, model: str) -> None:
        """Unload every version of `model` and stop listing it; its END states stay queryable."""
        with self._cond:
            m = self._models.get(model)
            if m is None:
                return
            m.removed = True
            m.aspired = {}
            self._sync(model, m)

    def set_policy(self, model: str, policy: TransitionPolicy | None) -> None:
        with self._cond:
            if policy is None:
                self._policies.pop(model, None)
            else:
                self._policies[model] = policy
            m = self._models.get(model)
            if m is not None:
                self._kick(model, m)

    def policy(self, model: str) -> TransitionPolicy:
        with self._cond:
            return self._policies.get(model, self._default_policy)

    # ----- reads -----

    def statuses(self, model: str) -> list[VersionStatus]:
        """Every version of `model` the manager knows, highest version first."""
        with self._cond:
            m = self._models.get(model)
            if m is None:
                return []
            return [self._status(model, e) for _, e in sorted(m.entries.items(), reverse=True)]

    def models(self) -> list[str]:
        with self._cond:
            return sorted(name for name, m in self._models.items() if not m.removed)

    def available_versions(self, model: str) -> list[int]:
        with self._cond:
            m = self._models.get(model)
            if m is None:
                return []
            return sorted(
                (v for v, e in m.entries.items() if e.state is VersionState.AVAILABLE),
                reverse=True,
            )

    @contextmanager
    def handle(self, model: str, version: int) -> Iterator[object]:
        """The servable of an AVAILABLE version, held for one request.

        While held, an unload of this version waits, so the request finishes
        on the version it started on.
        """
        with self._cond:
            m = self._models.get(model)
            entry = m.entries.get(version) if m is not None else None
            if entry is None or entry.state is not VersionState.AVAILABLE:
                # TF Serving's ServableRequest::Specific debug string.
                raise ServingError(
                    Code.NOT_FOUND,
                    f"Servable not found for request: Specific({model}, {version})",
                )
            entry.refs += 1
            servable = entry.servable
        try:
            yield servable
        finally:
            with self._cond:
                entry.refs -= 1
                if entry.refs == 0:
                    self._cond.notify_all()

    def readiness(self, model: str, version: int | None) -> Readiness:
        """Whether `version` of `model` (None: the latest) is servable, on its way, or neither."""
        with self._cond:
            return readiness(self._snapshots(self._models.get(model)), version)

    def wait_for_load(self, model: str, version: int | None, timeout: float) -> bool:
        """Block while a version that would serve the request is on its way in.

        True when the request is servable now (so it is worth another try);
        False at once when nothing is about to serve it, or when the load
        failed or `timeout` passed first.
        """
        with self._cond:
            self._cond.wait_for(
                lambda: self.readiness(model, version) is not Readiness.COMING, max(timeout, 0))
            return self.readiness(model, version) is Readiness.READY

    async def wait_for_load_async(self, model: str, version: int | None, timeout: float) -> bool:
        """`wait_for_load` for an event loop: awaits instead of blocking a thread."""
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(changed.set)
            except RuntimeError:  # the loop closed under a late waiter
                pass

        deadline = loop.time() + max(timeout, 0)
        with self._cond:
            self._wakers.add(wake)
        try:
            while True:
                # Cleared before the check: a change after it sets the event again.
                changed.clear()
                state = self.readiness(model, version)
                remaining = deadline - loop.time()
                if state is not Readiness.COMING or remaining <= 0:
                    return state is Readiness.READY
                try:
                    await asyncio.wait_for(changed.wait(), remaining)
                except TimeoutError:
                    pass
        finally:
            with self._cond:
                self._wakers.discard(wake)

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until `predicate()` holds (checked at every state change) or `timeout` passes."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def add_listener(self, callback: Listener) -> None:
        with self._cond:
            self._listeners.append(callback)

    def stop(self, timeout: float = 30.0) -> None:
        """Unload everything (waiting for handles), then stop the workers."""
        with self._cond:
            self._stopping = True
            for name, m in self._models.items():
                m.aspired = {}
                self._sync(name, m)
            drained = self._cond.wait_for(self._all_unloaded, timeout)
        if not drained:
            log.warning("manager stop: versions still loaded after %.1fs", timeout)
        self._loads.shutdown(timeout=1.0)
        self._unloads.shutdown(timeout=1.0)

    # ----- internals; every method below runs with self._cond held -----

    def _all_unloaded(self) -> bool:
        return all(
            e.state not in LOADED_STATES for m in self._models.values() for e in m.entries.values()
        )

    @staticmethod
    def _snapshots(m: _Model | None) -> list[VersionSnapshot]:
        if m is None:
            return []
        return [VersionSnapshot(v, e.state, e.is_aspired) for v, e in m.entries.items()]

    def _changed(self) -> None:
        self._cond.notify_all()
        for wake in list(self._wakers):
            wake()

    def _status(self, model: str, entry: _Entry) -> VersionStatus:
        return VersionStatus(model, entry.aspired.version, entry.state, entry.error)

    def _set_state(self, model: str, entry: _Entry, state: VersionState) -> None:
        entry.state = state
        if state is VersionState.END:
            self._end_counter += 1
            entry.ended_at = self._end_counter
        self._publish(model, entry)

    def _publish(self, model: str, entry: _Entry) -> None:
        status = self._status(model, entry)
        for listener in list(self._listeners):
            try:
                listener(status)
            except Exception:
                log.exception("version state listener failed")
        self._changed()

    def _sync(self, model: str, m: _Model) -> None:
        """Reconcile entries with the aspired set, then look for the next action."""
        for version, entry in list(m.entries.items()):
            if version in m.aspired:
                continue
            entry.is_aspired = False
            if entry.state is VersionState.START:
                # Never loaded: nothing to release (TF Serving flushes these).
                del m.entries[version]
        for version, aspired in m.aspired.items():
            current = m.entries.get(version)
            if current is not None and current.state is VersionState.UNLOADING:
                continue  # re-created once the unload finishes
            if current is None or self._wants_fresh_entry(current, aspired):
                assert m.factory is not None
                fresh = _Entry(aspired=aspired, factory=m.factory)
                m.entries[version] = fresh
                self._publish(model, fresh)
            else:
                current.is_aspired = True
        self._trim_end_entries(m)
        # Aspired flags may have changed: wake retry waits so they can cancel,
        # and requests waiting for a version that is no longer coming.
        self._changed()
        self._kick(model, m)

    @staticmethod
    def _wants_fresh_entry(entry: _Entry, aspired: AspiredVersion) -> bool:
        if entry.state is not VersionState.END:
            return False
        if entry.error is None:
            return True  # unloaded earlier, aspired again: load it again
        # Failed: retry only if the directory changed since the failed attempt.
        return entry.aspired.fingerprint != aspired.fingerprint

    def _trim_end_entries(self, m: _Model) -> None:
        ended = sorted(
            (e for e in m.entries.values() if e.state is VersionState.END),
            key=lambda e: e.ended_at,
        )
        excess = len(ended) - self._max_end
        for entry in ended:
            if excess <= 0:
                break
            # A failed version that is still aspired must stay: its entry is
            # what stops the manager from retrying it unchanged.
            if not entry.is_aspired:
                del m.entries[entry.aspired.version]
                excess -= 1

    def _kick(self, model: str, m: _Model) -> None:
        if m.busy:
            return
        action = next_action(self.policy(model), self._snapshots(m))
        if action is None:
            return
        entry = m.entries[action.version]
        m.busy = True
        if action.kind == "load":
            self._set_state(model, entry, VersionState.LOADING)
            self._loads.submit(lambda: self._run_load(model, m, entry))
        else:
            self._set_state(model, entry, VersionState.UNLOADING)
            self._unloads.submit(lambda: self._run_unload(model, m, entry))

    def _finish(self, model: str, m: _Model, entry: _Entry, state: VersionState) -> None:
        self._set_state(model, entry, state)
        m.busy = False
        self._sync(model, m)

    # ----- worker tasks; they take the lock only around state changes -----

    def _run_load(self, model: str, m: _Model, entry: _Entry) -> None:
        attempt = 0
        while True:
            try:
                loader = entry.loader or entry.factory(entry.aspired)
                entry.loader = loader
                servable = loader.load()
            except Exception as exc:
                error = _as_serving_error(exc)
                log.warning(
                    "loading %s version %d failed: %s", model, entry.aspired.version, error.message
                )
                if attempt < self._max_retries and self._wait_for_retry(entry):
                    attempt += 1
                    continue
                with self._cond:
                    entry.error = error
                    entry.loader = None
                    self._finish(model, m, entry, VersionState.END)
                return
            with self._cond:
                entry.servable = servable
                self._finish(model, m, entry, VersionState.AVAILABLE)
            return

    def _wait_for_retry(self, entry: _Entry) -> bool:
        """Wait out the retry interval; False if the retry was cancelled meanwhile.

        A retry is cancelled when the version stops being aspired or the
        manager stops (TF Serving's CancelLoadServableRetry). Without an
        injected sleep, the wait is on the condition variable, so stop() and
        set_aspired_versions() interrupt it.
        """
        deadline = self._clock.now() + self._retry_interval
        while True:
            with self._cond:
                if self._stopping or not entry.is_aspired:
                    return False
                remaining = deadline - self._clock.now()
                if remaining <= 0:
                    return True
                if self._sleep is None:
                    self._cond.wait(remaining)
                    continue
            self._sleep(remaining)

    def _run_unload(self, model: str, m: _Model, entry: _Entry) -> None:
        with self._cond:
            # UNLOADING takes no new handles; wait for the in-flight ones.
            self._cond.wait_for(lambda: entry.refs == 0)
            loader, entry.loader, entry.servable = entry.loader, None, None
        try:
            if loader is not None:
                loader.unload()
        except Exception:
            # The version is gone from serving either way; keep the model moving.
            log.exception("unloading %s version %d failed", model, entry.aspired.version)
        with self._cond:
            self._finish(model, m, entry, VersionState.END)
