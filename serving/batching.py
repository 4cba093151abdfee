"""Server-side batching: concurrent `run` calls merged into one model call.

Owns TF Serving's `--enable_batching` behaviour (batching/batching_session.cc
over SharedBatchScheduler), without TensorFlow:

- one queue per (loaded version, signature, output keys, input layout); calls
  that differ in any of these are never merged;
- a queue is a deque of batches whose last one is open; a call joins the open
  batch, or closes it and opens a new one if it would overflow
  `max_batch_size`, or is refused UNAVAILABLE at once when
  `max_enqueued_batches` batches already wait;
- `num_batch_threads` threads take batches round-robin across queues: a batch
  is ready when it is closed, full, or its oldest call waited
  `batch_timeout_micros`;
- inputs are concatenated along dim 0, padded up to the next
  `allowed_batch_sizes` entry by repeating a row, dims >= 1 padded when
  `pad_variable_length_inputs`; outputs are split back and padding dropped.

Each queue has its version's options (sizes, timeout, depth, padding); the
threads are the server's, shared by every model. Which options a loaded
version batches with, or whether it batches at all, is the `options_for`
callable's to say (with --enable_per_model_batching_parameters,
serving.version_batching; otherwise every version gets the server's).

The caller blocks until its batch has run, so a request still holds its
version's handle while it waits (an unload waits for it). The pure helpers
(`batch_size_of`, `round_to_allowed`, `merge_inputs`, `split_outputs`,
`queue_key`) carry the semantics; `Batcher` is the threads and locks.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Executor, Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from serving.config.batching import BatchingOptions
from serving.core.status import Code, ServingError, invalid_argument, unavailable

Tensors = Mapping[str, np.ndarray]


# ------------------------------------------------------------ pure helpers


def batch_size_of(inputs: Tensors) -> int:
    """ComputeTensorBatchSize: every input's dim 0, which must agree."""
    if not inputs:
        raise invalid_argument("Batching Run() must have at least one input tensor")
    sizes = set()
    for value in inputs.values():
        if np.ndim(value) == 0:
            raise invalid_argument(
                "Batching Run() input tensors must have at least one dimension")
        sizes.add(int(np.shape(value)[0]))
    if len(sizes) != 1:
        raise invalid_argument("Batching Run() input tensors must have equal 0th-dimension size")
    return sizes.pop()


def round_to_allowed(allowed: Sequence[int], size: int) -> int:
    """RoundToLowestAllowedBatchSize: the smallest allowed size >= `size`."""
    return next((a for a in allowed if a >= size), size)


def queue_key(servable: object, signature_key: str, output_keys: Sequence[str] | None,
              inputs: Tensors, pad_variable_length: bool) -> Hashable:
    """Which calls may share a batch. Concatenation needs equal dtypes and, unless
    padding, equal dims after dim 0; TF Serving would fail the whole batch on a
    mismatch, so such calls get queues of their own instead."""
    layout = tuple(
        (name, np.asarray(v).dtype.str,
         np.ndim(v) if pad_variable_length else tuple(np.shape(v)[1:]))
        for name, v in sorted(inputs.items())
    )
    outputs = None if output_keys is None else tuple(output_keys)
    return (id(servable), signature_key, outputs, layout)


def _pad_dims(value: np.ndarray, dims: Sequence[int]) -> np.ndarray:
    """AddPadding: grow dims >= 1 to `dims`, filling with the tensor's first element."""
    if tuple(value.shape[1:]) == tuple(dims[1:]):
        return value
    if value.size == 0:
        raise invalid_argument("Got empty tensor in batch of non-empty tensors.")
    shape = (value.shape[0], *dims[1:])
    padded = np.full(shape, value.flat[0], dtype=value.dtype)
    padded[tuple(slice(0, n) for n in value.shape)] = value
    return padded


@dataclass(frozen=True)
class Merged:
    inputs: dict[str, np.ndarray]
    sizes: tuple[int, ...]  # dim 0 of each call, in order
    padding: int  # rows appended to reach an allowed batch size


def merge_inputs(calls: Sequence[Tensors], allowed_batch_sizes: Sequence[int] = (),
                 pad_variable_length: bool = False) -> Merged:
    """MergeInputTensors: concatenate each input along dim 0 across `calls`."""
    sizes = tuple(batch_size_of(c) for c in calls)
    total = sum(sizes)
    padding = round_to_allowed(allowed_batch_sizes, total) - total
    names = list(calls[0])
    merged: dict[str, np.ndarray] = {}
    for name in names:
        parts = [np.asarray(c[name]) for c in calls]
        if pad_variable_length:
            if len({p.ndim for p in parts}) != 1:
                raise ServingError(Code.FAILED_PRECONDITION,
                                   f"Tensors with name '{name}' have different ranks.")
            dims = np.max([p.shape for p in parts], axis=0)
            parts = [_pad_dims(p, dims) for p in parts]
        elif any(p.shape[1:] != parts[0].shape[1:] for p in parts):
            raise ServingError(
                Code.FAILED_PRECONDITION,
                f"Tensors with name '{name}' from different tasks have different shapes and"
                " padding is turned off.Set pad_variable_length_inputs to true, or ensure"
                " that all tensors with the same namehave equal dimensions starting with"
                " the first dim.")
        if padding:
            # Repeat a real row: it is always a valid input for the model.
            parts.append(np.repeat(parts[-1][:1], padding, axis=0))
        merged[name] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
    return Merged(merged, sizes, padding)


def split_outputs(outputs: Tensors, sizes: Sequence[int], padding: int = 0
                  ) -> list[dict[str, np.ndarray]]:
    """SplitOutputTensors: one dict per call, padding rows dropped."""
    total = sum(sizes) + padding
    bounds = np.cumsum([0, *sizes])
    results: list[dict[str, np.ndarray]] = [{} for _ in sizes]
    for name, value in outputs.items():
        value = np.asarray(value)
        if value.ndim == 0:
            raise ServingError(Code.FAILED_PRECONDITION, "Batched output tensor has 0 dimensions")
        if value.shape[0] != total:
            raise ServingError(
                Code.FAILED_PRECONDITION,
                "Batched output tensor's 0th dimension does not equal the sum of the 0th"
                " dimension sizes of the input tensors")
        for i, result in enumerate(results):
            result[name] = value[bounds[i]:bounds[i + 1]]
    return results


def batch_ready(num_batches: int, open_size: int, opened: float, now: float,
                max_batch_size: int, timeout_s: float, closing: bool = False) -> bool:
    """Whether a queue has a batch to hand to a thread: a closed batch waits, or
    the open one is non-empty and full, timed out, or the batcher is closing."""
    if num_batches > 1:
        return True
    return open_size > 0 and (closing or open_size >= max_batch_size or now >= opened + timeout_s)


def queue_full_error(enqueued: int, limit: int) -> ServingError:
    """SharedBatchScheduler's refusal when no batch can take the call."""
    return unavailable(
        "The batch scheduling queue to which this task was submitted is full; currently"
        f" {enqueued} batches enqueued and max_enqueued_batches is {limit}")


# ------------------------------------------------------------ the scheduler


class RunnableServable(Protocol):
    def run(self, signature_key: str, inputs: Mapping[str, np.ndarray],
            output_keys: Sequence[str] | None = None) -> dict[str, np.ndarray]: ...


class BatchObserver(Protocol):
    def observe_batch(self, model: str, version: int, input_sizes: Sequence[int],
                      processed_size: int, padding: int) -> None: ...


@dataclass(eq=False)
class _Call:
    inputs: Tensors
    size: int
    # Completed by the batch thread; callers block on it or await it.
    future: Future[dict[str, np.ndarray]] = field(default_factory=Future)


@dataclass(eq=False)
class _Batch:
    opened: float
    calls: list[_Call] = field(default_factory=list)
    size: int = 0


@dataclass(eq=False)
class _Queue:
    servable: RunnableServable
    signature_key: str
    output_keys: Sequence[str] | None
    model: str
    version: int
    options: BatchingOptions
    batches: deque[_Batch]


class Batcher:
    """Merges concurrent `run` calls per queue; see the module docstring."""

    # A call stays in its batch once queued, even if its caller gives up.
    withdrawable = False

    def __init__(self, options: BatchingOptions, observer: BatchObserver | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 options_for: Callable[[Any], BatchingOptions | None] | None = None) -> None:
        """`options`: the server's (its threads serve every queue); `options_for`:
        a loaded servable's own options, None if it is not batched (default:
        `options` for every servable)."""
        self.options = options
        self._observer = observer
        self._clock = clock
        self._options_for = options_for or (lambda servable: options)
        self._cond = threading.Condition()
        self._queues: dict[Hashable, _Queue] = {}
        self._next = 0  # round-robin position over self._queues
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{options.thread_pool_name}_{i}",
                             daemon=True)
            for i in range(options.threads())
        ]
        for thread in self._threads:
            thread.start()

    # -- callers

    def run(self, servable: RunnableServable, signature_key: str, inputs: Tensors,
            output_keys: Sequence[str] | None = None, *, model: str = "", version: int = 0,
            options: BatchingOptions | None = None) -> dict[str, np.ndarray]:
        """Run `inputs` as part of a batch; blocks until that batch has run."""
        return self.submit(servable, signature_key, inputs, output_keys, model=model,
                           version=version, options=options).result()

    def submit(self, servable: RunnableServable, signature_key: str, inputs: Tensors,
               output_keys: Sequence[str] | None = None, *, model: str = "", version: int = 0,
               options: BatchingOptions | None = None, executor: Executor | None = None,
               ) -> Future[dict[str, np.ndarray]]:
        """Queue `inputs` for a batch (with `options`, default the server's);
        the future completes when that batch has run, on a batch thread
        (`executor` is unused). Refusals (too large, queue full, stopping)
        raise here, at once."""
        options = options or self.options
        size = batch_size_of(inputs)
        if size > options.max_batch_size:
            raise invalid_argument(
                f"Task size {size} is larger than maximum input batch size"
                f" {options.max_batch_size}")
        call = _Call(inputs, size)
        key = queue_key(servable, signature_key, output_keys, inputs,
                        options.pad_variable_length_inputs)
        with self._cond:
            if self._stopping:
                raise unavailable("Server is shutting down; batching is stopped")
            queue = self._queues.get(key)
            if queue is None:
                queue = _Queue(servable, signature_key, output_keys, model, version, options,
                               deque([_Batch(self._clock())]))
                self._queues[key] = queue
            self._enqueue(queue, call)
            self._cond.notify()
        return call.future

    def _enqueue(self, queue: _Queue, call: _Call) -> None:
        open_batch = queue.batches[-1]
        limits = queue.options
        if open_batch.size + call.size > limits.max_batch_size:
            if len(queue.batches) >= limits.max_enqueued_batches:
                raise queue_full_error(len(queue.batches), limits.max_enqueued_batches)
            open_batch = _Batch(self._clock())
            queue.batches.append(open_batch)
        if not open_batch.calls:
            open_batch.opened = self._clock()
        open_batch.calls.append(call)
        open_batch.size += call.size

    def joins(self, model: str) -> bool:
        """Every call joins a batch (and waits for it)."""
        return True

    def bind(self, servable: Any, model: str, version: int) -> Any:
        """`servable` as the data plane sees it: a BatchedServable whose `run`
        goes through the batcher, or `servable` itself if it is not batched."""
        options = self._options_for(servable)
        if options is None:
            return servable
        return BatchedServable(self, servable, model, version, options)

    def stop(self, timeout: float = 10.0) -> None:
        """Refuse new calls, finish every queued batch, then end the threads."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- batch threads

    def _ready(self, queue: _Queue, now: float) -> bool:
        batch = queue.batches[0]
        return batch_ready(len(queue.batches), batch.size, batch.opened, now,
                           queue.options.max_batch_size, _timeout(queue), self._stopping)

    def pending(self) -> int:
        """Calls accepted but not yet handed to a batch thread."""
        with self._cond:
            return sum(len(b.calls) for q in self._queues.values() for b in q.batches)

    def _take(self) -> tuple[_Queue, _Batch] | None:
        """The next ready batch, round-robin over queues; None if none is ready."""
        keys = list(self._queues)
        now = self._clock()
        for i in range(len(keys)):
            key = keys[(self._next + i) % len(keys)]
            queue = self._queues[key]
            if not self._ready(queue, now):
                continue
            self._next = (self._next + i + 1) % max(len(keys), 1)
            batch = queue.batches.popleft()
            if not queue.batches:
                queue.batches.append(_Batch(now))
            if len(queue.batches) == 1 and not queue.batches[0].calls:
                # An idle queue holds its servable alive; drop it (a later
                # call simply makes a new one).
                del self._queues[key]
            return queue, batch
        return None

    def _wait_time(self, now: float) -> float | None:
        """How long until some open batch times out (None: nothing is waiting)."""
        due = [q.batches[0].opened + _timeout(q) for q in self._queues.values()
               if q.batches[0].calls]
        if not due:
            return None
        return max(0.0, min(due) - now)

    def _work(self) -> None:
        while True:
            with self._cond:
                while True:
                    work = self._take()
                    if work is not None:
                        break
                    if self._stopping and not any(
                            b.calls for q in self._queues.values() for b in q.batches):
                        return
                    self._cond.wait(self._wait_time(self._clock()))
            self._process(*work)

    def _process(self, queue: _Queue, batch: _Batch) -> None:
        calls = batch.calls
        try:
            merged = merge_inputs([c.inputs for c in calls], queue.options.allowed_batch_sizes,
                                  queue.options.pad_variable_length_inputs)
            outputs = queue.servable.run(queue.signature_key, merged.inputs, queue.output_keys)
            if len(calls) == 1 and not merged.padding:
                parts = [outputs]
            else:
                parts = split_outputs(outputs, merged.sizes, merged.padding)
            if self._observer is not None:
                self._observer.observe_batch(queue.model, queue.version, merged.sizes,
                                             sum(merged.sizes) + merged.padding, merged.padding)
        except ServingError as exc:
            for call in calls:  # one error object per caller: each may annotate its own
                _settle(call.future, error=ServingError(exc.code, exc.message))
            return
        except Exception as exc:  # a model fault: every caller of the batch sees it
            for call in calls:
                _settle(call.future, error=exc)
            return
        for call, part in zip(calls, parts, strict=True):
            _settle(call.future, result=part)


def _timeout(queue: _Queue) -> float:
    return queue.options.batch_timeout_micros / 1e6


def _settle(future: Future[dict[str, np.ndarray]], result: dict[str, np.ndarray] | None = None,
            error: BaseException | None = None) -> None:
    """Complete a caller's future; one its caller cancelled is left as it is
    (the rest of the batch must still get their rows)."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]
    except InvalidStateError:
        pass


class BatchedServable:
    """A servable whose `run` goes through a Batcher; the rest is passed through."""

    def __init__(self, batcher: Batcher, servable: Any, model: str, version: int,
                 options: BatchingOptions | None = None) -> None:
        self._batcher = batcher
        self._servable = servable
        self._model = model
        self._version = version
        self._options = options

    @property
    def signatures(self) -> Mapping[str, Any]:
        return self._servable.signatures  # type: ignore[no-any-return]

    def signature_def_map(self) -> Any:
        return self._servable.signature_def_map()

    def run(self, signature_key: str, inputs: Mapping[str, np.ndarray],
            output_keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        return self._batcher.run(self._servable, signature_key, inputs, output_keys,
                                 model=self._model, version=self._version,
                                 options=self._options)

    def submit(self, signature_key: str, inputs: Mapping[str, np.ndarray],
               output_keys: Sequence[str] | None = None, executor: Executor | None = None,
               ) -> Future[dict[str, np.ndarray]]:
        """As `run`, without blocking: the batch's result, when it has run."""
        return self._batcher.submit(self._servable, signature_key, inputs, output_keys,
                                    model=self._model, version=self._version,
                                    options=self._options)
