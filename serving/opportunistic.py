"""Opportunistic batching: batching that never waits (--opportunistic_batching).

A call whose lane (loaded version, signature, output keys, input layout) is
idle runs at once, alone, on the path it takes without batching. Calls that
arrive while a call of their lane is running join the next call, which
starts as soon as the running one ends, with at most `max_batch_rows` rows
(a call larger than that runs alone); there is no timer and no batch thread.
Under no load every call runs alone with no added latency; under load the
model runs back to back on batches as large as the arrivals make them.

Only signatures whose every input and output has an unknown leading
dimension are batched (`batch_plan`, decided once per version when it loads
and logged by `planned_loads`); any other signature runs unbatched.

Results are those of unbatched calls: inputs are concatenated along dim 0
(`serving.batching.merge_inputs`, no padding) and outputs split back. If a
merged call fails, each of its calls is run again alone, so every caller
gets exactly the answer or the error its own unbatched call would have got
(one caller's bad row never fails the others). Values are bit-identical for
models computed row by row elementwise; a matrix product may pick another
kernel for another batch size, so its float32 rows can differ from an
unbatched call's in the last bits (tests/unit/test_opportunistic.py and
tests/integration/test_opportunistic.py check both, docs/batching.md says
how much).

Two entry points share the lanes: `run` blocks (a worker thread: the idle
call runs in that thread) and `submit` returns a future (an event loop: the
idle call runs in the executor it names, or, when its signature's calls are
measured cheaper than two thread hand-offs, at once in the submitting
thread; serving.call_costs). A joined call not yet started can
be withdrawn by cancelling its future; once started it runs to the end, and
its future completes only after the model call returned, so a handle
released on completion outlives the call.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Executor, Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from serving.batching import (
    BatchObserver,
    RunnableServable,
    batch_size_of,
    merge_inputs,
    queue_key,
    split_outputs,
)
from serving.call_costs import INLINE_BUDGET_S, CallCosts, runs_inline
from serving.core.loader import Loader
from serving.core.status import unavailable

log = logging.getLogger(__name__)

Tensors = Mapping[str, np.ndarray]
Outputs = dict[str, np.ndarray]

DEFAULT_MAX_BATCH_ROWS = 64


# ------------------------------------------------------------ pure decisions


class _TensorInfo(Protocol):
    @property
    def shape(self) -> tuple[int, ...] | None: ...


class _Signature(Protocol):
    @property
    def inputs(self) -> Mapping[str, Any]: ...
    @property
    def outputs(self) -> Mapping[str, Any]: ...


def unbatchable_reason(signature: _Signature) -> str | None:
    """Why a signature cannot be batched along dim 0, or None if it can: every
    input and output must have a known rank >= 1 and an unknown (-1) dim 0."""
    if not signature.inputs:
        return "it has no inputs"
    for kind, tensors in (("input", signature.inputs), ("output", signature.outputs)):
        for alias in sorted(tensors):
            shape = tensors[alias].shape
            if shape is None:
                return f"{kind} '{alias}' has an unknown rank"
            if not shape:
                return f"{kind} '{alias}' is a scalar"
            if shape[0] != -1:
                return f"{kind} '{alias}' has a fixed leading dimension of {shape[0]}"
    return None


def has_rows(inputs: Tensors) -> bool:
    """Whether a request can be cut into rows: every input has a leading dimension
    of one size (a scalar, or inputs of unlike lengths, runs alone and gets the
    model's own answer, as an unbatched server gives it)."""
    sizes = {getattr(value, "shape", ())[:1] for value in inputs.values()}
    return len(sizes) == 1 and () not in sizes


def batch_plan(signatures: Mapping[str, _Signature]) -> dict[str, str | None]:
    """Each signature key -> None if batched, else why not."""
    return {key: unbatchable_reason(sig) for key, sig in signatures.items()}


def describe_plan(plan: Mapping[str, str | None]) -> str:
    """The plan as one log line's tail: batched keys, then the others with reasons."""
    batched = sorted(k for k, reason in plan.items() if reason is None)
    others = sorted((k, r) for k, r in plan.items() if r is not None)
    parts = [f"batched: {', '.join(batched) or '(none)'}"]
    parts += [f"not batched: {k} ({reason})" for k, reason in others]
    return "; ".join(parts)


def take_rows(sizes: Sequence[int], max_rows: int) -> int:
    """How many of the waiting calls (rows each, in arrival order) the next
    model call takes: as many as fit in `max_rows`, and always at least one."""
    total = 0
    for count, size in enumerate(sizes):
        if count and total + size > max_rows:
            return count
        total += size
    return len(sizes)


# ------------------------------------------------------------ the lanes


@dataclass(eq=False)
class _Call:
    inputs: Tensors
    size: int
    future: Future[Outputs] = field(default_factory=Future)


Outcome = tuple[_Call, Outputs | None, BaseException | None]


@dataclass(eq=False)
class _Lane:
    """A lane that exists is busy: one model call of it is running."""

    servable: RunnableServable
    signature_key: str
    output_keys: Sequence[str] | None
    model: str
    version: int
    waiting: list[_Call] = field(default_factory=list)


class OpportunisticBatcher:
    """The lanes and their model calls; see the module docstring."""

    withdrawable = True  # a joined call's future may be cancelled until it starts

    def __init__(self, max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
                 observer: BatchObserver | None = None, max_threads: int = 4,
                 inline_budget_s: float = INLINE_BUDGET_S,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.max_batch_rows = max_batch_rows
        self._observer = observer
        self._inline_budget_s = inline_budget_s  # 0: every submitted call goes to a pool
        self.costs = CallCosts()
        self._clock = clock  # times model calls for `costs`
        self._cheap: set[str] = set()  # models whose last call was measured cheap
        self._lock = threading.Lock()
        self._lanes: dict[Hashable, _Lane] = {}
        self._busy: dict[str, int] = {}  # model -> its lanes running a call
        # Decided at load (`planned_loads`); a servable loaded some other way is
        # planned on first use. Weak: an unloaded version's plan goes with it.
        self._plans: weakref.WeakKeyDictionary[Any, dict[str, str | None]] = (
            weakref.WeakKeyDictionary())
        # Runs the next call of a lane whose running call was a blocking
        # caller's own (that caller returns at once with its answer).
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_threads, thread_name_prefix="opportunistic")

    # -- plans

    def plan(self, servable: Any) -> dict[str, str | None]:
        """The servable's batch plan, decided once per servable."""
        try:
            return self._plans[servable]
        except KeyError:
            plan = batch_plan(servable.signatures)
            self._plans[servable] = plan
            return plan
        except TypeError:  # not weakly referenceable: plan it each time
            return batch_plan(servable.signatures)

    def batches(self, servable: Any, signature_key: str) -> bool:
        return self.plan(servable).get(signature_key, "") is None

    # -- callers

    def bind(self, servable: Any, model: str, version: int) -> OpportunisticServable:
        """`servable` as the data plane sees it, with `run` and `submit` batched."""
        return OpportunisticServable(self, servable, model, version)

    def run(self, servable: RunnableServable, signature_key: str, inputs: Tensors,
            output_keys: Sequence[str] | None = None, *, model: str = "", version: int = 0,
            ) -> Outputs:
        """Blocking: an idle lane's call runs here, in the caller's thread;
        otherwise the caller waits for the call it joined."""
        if not self.batches(servable, signature_key) or not has_rows(inputs):
            return servable.run(signature_key, inputs, output_keys)
        rows = batch_size_of(inputs)
        if runs_inline(self.costs.estimate(servable, signature_key, rows), rows,
                       self.max_batch_rows, self._inline_budget_s):
            # Cheaper than a hand-off: joining a batch would cost this caller
            # more than the call itself, so it runs alone, here, at once.
            outputs = self._timed_run(servable, signature_key, inputs, output_keys, model, rows)
            self._observe_sizes(model, version, (rows,))
            return outputs
        call, lane, key = self._arrive(servable, signature_key, inputs, output_keys, model,
                                       version)
        if lane is None:
            return call.future.result()
        try:
            outputs = self._timed_run(servable, signature_key, inputs, output_keys, model,
                                      call.size)
            self._observe(lane, (call.size,))
            return outputs
        finally:
            self._continue(key, lane, self._threads)

    def submit(self, servable: RunnableServable, signature_key: str, inputs: Tensors,
               output_keys: Sequence[str] | None = None, *, model: str = "", version: int = 0,
               executor: Executor | None = None) -> Future[Outputs]:
        """An idle lane's call starts at once in `executor` (None: this batcher's
        threads), or runs here if its signature's calls are measured cheap
        (then the future is done on return); the future completes when its
        call has run."""
        pool = executor if executor is not None else self._threads
        if not self.batches(servable, signature_key) or not has_rows(inputs):
            return pool.submit(servable.run, signature_key, inputs, output_keys)
        call, lane, key = self._arrive(servable, signature_key, inputs, output_keys, model,
                                       version)
        if lane is None:
            return call.future
        if runs_inline(self.costs.estimate(servable, signature_key, call.size), call.size,
                       self.max_batch_rows, self._inline_budget_s):
            self._drive(key, lane, [call], pool, started=False)
        else:
            self._dispatch(pool, key, lane, [call])
        return call.future

    def joins(self, model: str) -> bool:
        """Whether an event loop should `submit` a call of `model` rather than
        run it in a thread: a call of it is running in some lane now, so a new
        call may well join one, or its last call was measured cheap, so a new
        one likely runs on the loop (hints, read without the lock)."""
        return model in self._busy or model in self._cheap

    def waiting(self) -> int:
        """Calls that joined a busy lane and have not started yet."""
        with self._lock:
            return sum(len(lane.waiting) for lane in self._lanes.values())

    def stop(self, timeout: float = 10.0) -> None:
        """Refuse further hand-offs to this batcher's threads (their waiting
        calls fail UNAVAILABLE); calls already handed to them still run."""
        self._threads.shutdown(wait=False)

    # -- the lanes

    def _arrive(self, servable: RunnableServable, signature_key: str, inputs: Tensors,
                output_keys: Sequence[str] | None, model: str, version: int,
                ) -> tuple[_Call, _Lane | None, Hashable]:
        """The call, and its lane if the caller is to run it now (None: joined)."""
        call = _Call(inputs, batch_size_of(inputs))
        key = queue_key(servable, signature_key, output_keys, inputs, False)
        with self._lock:
            lane = self._lanes.get(key)
            if lane is not None:
                lane.waiting.append(call)
                return call, None, key
            lane = _Lane(servable, signature_key, output_keys, model, version)
            self._lanes[key] = lane
            self._busy[model] = self._busy.get(model, 0) + 1
        return call, lane, key

    def _next_calls(self, key: Hashable, lane: _Lane) -> list[_Call]:
        """The calls of the lane's next model call (none: the lane is idle
        again). Withdrawn calls are dropped here; the others are marked running."""
        with self._lock:
            while lane.waiting:
                count = take_rows([c.size for c in lane.waiting], self.max_batch_rows)
                taken, lane.waiting = lane.waiting[:count], lane.waiting[count:]
                calls = [c for c in taken if c.future.set_running_or_notify_cancel()]
                if calls:
                    return calls
            del self._lanes[key]
            self._idle(lane.model)
            return []

    def _idle(self, model: str) -> None:
        """One of `model`'s lanes is idle again (the caller holds the lock)."""
        left = self._busy.pop(model, 1) - 1
        if left:
            self._busy[model] = left

    def _continue(self, key: Hashable, lane: _Lane, pool: Executor) -> None:
        calls = self._next_calls(key, lane)
        if calls:
            self._dispatch(pool, key, lane, calls, started=True)

    def _dispatch(self, pool: Executor, key: Hashable, lane: _Lane, calls: list[_Call],
                  started: bool = False) -> None:
        """Hand the lane's next model call to a thread of `pool`. A pool that is
        shutting down never runs it: every waiting call then fails, so no caller
        (nor the handle it holds) waits forever."""
        try:
            work = pool.submit(self._drive, key, lane, calls, pool, started)
        except RuntimeError:  # the pool is shut down
            self._abandon(key, lane, calls)
            return

        def cancelled(done: Future[None]) -> None:
            if done.cancelled():  # shut down with its queue cancelled
                self._abandon(key, lane, calls)

        work.add_done_callback(cancelled)

    def _abandon(self, key: Hashable, lane: _Lane, calls: list[_Call]) -> None:
        with self._lock:
            calls = calls + lane.waiting
            lane.waiting = []
            if self._lanes.pop(key, None) is not None:
                self._idle(lane.model)
        for call in calls:
            settle(call.future, error=unavailable("Server is shutting down"))

    def _drive(self, key: Hashable, lane: _Lane, calls: list[_Call], pool: Executor,
               started: bool) -> None:
        """Run one model call of the lane. The calls that joined meanwhile are
        handed to another thread before this one completes its callers'
        futures, so the model runs again while those answers go out."""
        if not started:
            calls = [c for c in calls if c.future.set_running_or_notify_cancel()]
        outcomes = self._run_calls(lane, calls) if calls else []
        self._continue(key, lane, pool)
        for call, result, error in outcomes:
            settle(call.future, result, error)

    def _run_calls(self, lane: _Lane, calls: list[_Call]) -> list[Outcome]:
        """Each call's outputs or error, as its own unbatched call would give."""
        if len(calls) > 1:
            try:
                merged = merge_inputs([c.inputs for c in calls])
                outputs = self._lane_run(lane, merged.inputs, sum(merged.sizes))
                parts = split_outputs(outputs, merged.sizes)
            except Exception:  # noqa: BLE001 (whatever failed, each call alone decides)
                # Perhaps one call's rows failed the merged call: run each
                # alone, so each gets its own unbatched answer or error.
                return [o for call in calls for o in self._run_calls(lane, [call])]
            self._observe(lane, merged.sizes)
            return [(call, part, None) for call, part in zip(calls, parts, strict=True)]
        call = calls[0]
        try:
            result = self._lane_run(lane, call.inputs, call.size)
        except BaseException as exc:
            return [(call, None, exc)]
        self._observe(lane, (call.size,))
        return [(call, result, None)]

    def _timed_run(self, servable: RunnableServable, signature_key: str, inputs: Tensors,
                   output_keys: Sequence[str] | None, model: str, rows: int) -> Outputs:
        """The model call on `rows` rows; its wall time, if it succeeds, goes into
        the signature's measured cost and the model's cheap-or-not hint."""
        start = self._clock()
        outputs = servable.run(signature_key, inputs, output_keys)
        self.costs.observe(servable, signature_key, self._clock() - start, rows)
        if runs_inline(self.costs.estimate(servable, signature_key, 1), 1, self.max_batch_rows,
                       self._inline_budget_s):
            self._cheap.add(model)
        else:
            self._cheap.discard(model)
        return outputs

    def _lane_run(self, lane: _Lane, inputs: Tensors, rows: int) -> Outputs:
        return self._timed_run(lane.servable, lane.signature_key, inputs, lane.output_keys,
                               lane.model, rows)

    def _observe(self, lane: _Lane, sizes: Sequence[int]) -> None:
        self._observe_sizes(lane.model, lane.version, sizes)

    def _observe_sizes(self, model: str, version: int, sizes: Sequence[int]) -> None:
        """One model call of these callers' rows, for the batch-size histogram."""
        if self._observer is not None:
            self._observer.observe_batch(model, version, sizes, sum(sizes), 0)

    def record_plan(self, servable: Any, path: str) -> None:
        """Decide and log a freshly loaded version's plan (`planned_loads`)."""
        plan = self.plan(servable)
        log.info("Opportunistic batching of %s: %s", path, describe_plan(plan))


def settle(future: Future[Outputs], result: Outputs | None = None,
           error: BaseException | None = None) -> None:
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]
    except InvalidStateError:  # withdrawn by its caller before it started
        pass


class OpportunisticServable:
    """A servable whose `run` and `submit` go through an OpportunisticBatcher."""

    def __init__(self, batcher: OpportunisticBatcher, servable: Any, model: str,
                 version: int) -> None:
        self._batcher = batcher
        self._servable = servable
        self._model = model
        self._version = version

    @property
    def signatures(self) -> Mapping[str, Any]:
        return self._servable.signatures  # type: ignore[no-any-return]

    def signature_def_map(self) -> Any:
        return self._servable.signature_def_map()

    def run(self, signature_key: str, inputs: Tensors,
            output_keys: Sequence[str] | None = None) -> Outputs:
        return self._batcher.run(self._servable, signature_key, inputs, output_keys,
                                 model=self._model, version=self._version)

    def submit(self, signature_key: str, inputs: Tensors,
               output_keys: Sequence[str] | None = None,
               executor: Executor | None = None) -> Future[Outputs]:
        return self._batcher.submit(self._servable, signature_key, inputs, output_keys,
                                    model=self._model, version=self._version,
                                    executor=executor)


class _PlannedLoader:
    def __init__(self, loader: Loader, path: str, batcher: OpportunisticBatcher) -> None:
        self._loader = loader
        self._path = path
        self._batcher = batcher

    def load(self) -> object:
        servable = self._loader.load()
        try:
            self._batcher.record_plan(servable, self._path)
        except Exception:  # a servable without signatures simply is never batched
            log.exception("no batch plan for %s", self._path)
        return servable

    def unload(self) -> None:
        self._loader.unload()


def planned_loads(factory: Callable[[str], Loader], batcher: OpportunisticBatcher,
                  ) -> Callable[[str], Loader]:
    """Wrap a platform's loader factory so each loaded version's batch plan is
    decided (and logged with its path) when it loads, not on a request."""

    def make(path: str) -> Loader:
        return _PlannedLoader(factory(path), path, batcher)

    return make
