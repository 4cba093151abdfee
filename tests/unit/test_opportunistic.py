"""Opportunistic batching: the plan, the row bound, and the lanes over a fake model.

The fake model's rows each depend on every value of their own row only
(y = x / sum(x) per row, and a row-wise argmax), so a batched answer is
compared bit for bit with an unbatched call's. A gate inside the model holds
a call running while others arrive; nothing waits on time, only on conditions.
Submitted calls all go to a pool here (no inline budget); tests/unit/
test_inline_calls.py covers the calls that run in the submitting thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from serving.core.status import Code, ServingError, invalid_argument
from serving.dataplane import DataPlane, ModelRef
from serving.opportunistic import (
    OpportunisticBatcher,
    batch_plan,
    describe_plan,
    take_rows,
    unbatchable_reason,
)
from tests.helpers import WAIT_S, wait_for
from tests.unit.dataplane_fakes import FakeCore, Signature, TensorInfo

DT_FLOAT, DT_INT64 = 1, 9


def sig(inputs: Mapping[str, tuple[int, ...] | None],
        outputs: Mapping[str, tuple[int, ...] | None]) -> Signature:
    return Signature("k", "tensorflow/serving/predict",
                     {a: TensorInfo(f"{a}:0", DT_FLOAT, s) for a, s in inputs.items()},
                     {a: TensorInfo(f"{a}:0", DT_FLOAT, s) for a, s in outputs.items()})


# ------------------------------------------------------------ pure decisions


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (sig({"x": (-1,)}, {"y": (-1,)}), None),
        (sig({"a": (-1, 3), "b": (-1, -1, 2)}, {"y": (-1, 10), "z": (-1,)}), None),
        (sig({"x": (2, 3)}, {"y": (-1, 3)}), "input 'x' has a fixed leading dimension of 2"),
        (sig({"x": (-1,)}, {"y": (1,)}), "output 'y' has a fixed leading dimension of 1"),
        (sig({"x": (-1,)}, {"total": ()}), "output 'total' is a scalar"),
        (sig({"x": None}, {"y": (-1,)}), "input 'x' has an unknown rank"),
        (sig({}, {"y": (-1,)}), "it has no inputs"),
    ],
)
def test_a_signature_is_batched_only_if_every_tensor_has_an_unknown_leading_dim(
        signature: Signature, reason: str | None) -> None:
    assert unbatchable_reason(signature) == reason


def test_the_plan_is_described_in_one_line() -> None:
    plan = batch_plan({"a": sig({"x": (-1,)}, {"y": (-1,)}),
                       "b": sig({"x": (4,)}, {"y": (-1,)})})
    assert describe_plan(plan) == (
        "batched: a; not batched: b (input 'x' has a fixed leading dimension of 4)")
    assert describe_plan({}) == "batched: (none)"


@pytest.mark.parametrize(
    ("sizes", "max_rows", "taken"),
    [
        ([1, 1, 1], 64, 3),
        ([3, 5, 2], 8, 2),     # 3 + 5 fit, + 2 would not
        ([9, 1], 8, 1),        # a call larger than the bound runs alone
        ([2, 7, 1], 8, 1),
        ([4, 4, 4, 4], 8, 2),
        ([], 8, 0),
    ],
)
def test_the_next_call_takes_the_waiting_calls_that_fit(
        sizes: list[int], max_rows: int, taken: int) -> None:
    assert take_rows(sizes, max_rows) == taken


# ------------------------------------------------------------ a fake model


def normalize(x: np.ndarray) -> np.ndarray:
    """Each row over the sum of its own absolute values: every value of a row
    depends on the whole row, and on nothing outside it."""
    return (x / np.abs(x).sum(axis=1, keepdims=True)).astype(np.float32)


@dataclass
class ModelCall:
    rows: int
    thread: str


class RowModel:
    """serving_default: x [-1, 3] -> y [-1, 3] (normalize), top [-1] (argmax);
    fixed: x [2, 3] -> y [2, 3] (never batched). A NaN anywhere fails the call,
    as a model's check_numerics would. `hold()` keeps the next call running
    until `release()`."""

    def __init__(self) -> None:
        x, y = TensorInfo("x:0", DT_FLOAT, (-1, 3)), TensorInfo("y:0", DT_FLOAT, (-1, 3))
        top = TensorInfo("top:0", DT_INT64, (-1,))
        fixed = TensorInfo("x:0", DT_FLOAT, (2, 3))
        self.signatures = {
            "serving_default": Signature("serving_default", "tensorflow/serving/predict",
                                         {"x": x}, {"y": y, "top": top}),
            "fixed": Signature("fixed", "tensorflow/serving/predict", {"x": fixed},
                               {"y": fixed}),
        }
        self.calls: list[ModelCall] = []
        self.running = 0
        self._lock = threading.Lock()
        self._held = threading.Event()
        self._entered = threading.Event()
        self._release = threading.Event()
        self._release.set()

    def hold(self) -> None:
        self._release.clear()
        self._entered.clear()
        self._held.set()

    def release(self) -> None:
        self._release.set()

    def wait_entered(self) -> None:
        assert self._entered.wait(WAIT_S)

    def run(self, signature_key: str, inputs: Mapping[str, np.ndarray],
            output_keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        x = inputs["x"]
        with self._lock:
            self.calls.append(ModelCall(len(x), threading.current_thread().name))
            self.running += 1
            held, self._held = self._held.is_set(), threading.Event()
        try:
            if held:
                self._entered.set()
                assert self._release.wait(WAIT_S)
            if np.isnan(x).any():
                raise invalid_argument("Tensor had NaN values")
            out = {"y": normalize(x), "top": np.argmax(x, axis=1).astype(np.int64)}
            return {k: out[k] for k in (output_keys or out)}
        finally:
            with self._lock:
                self.running -= 1

    def signature_def_map(self) -> Any:
        raise NotImplementedError


def rows(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.1, 10.0, (n, 3)).astype(np.float32)


def unbatched(x: np.ndarray) -> dict[str, np.ndarray]:
    return {"y": normalize(x), "top": np.argmax(x, axis=1).astype(np.int64)}


def assert_same(got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for key in want:
        assert got[key].dtype == want[key].dtype
        assert got[key].shape == want[key].shape
        assert got[key].tobytes() == want[key].tobytes()  # bit for bit


@pytest.fixture
def model() -> Iterator[RowModel]:
    m = RowModel()
    yield m
    m.release()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    p = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pool")
    yield p
    p.shutdown(wait=True)


@pytest.fixture
def batcher() -> Iterator[OpportunisticBatcher]:
    b = OpportunisticBatcher(max_batch_rows=8, inline_budget_s=0)
    yield b
    b.stop()


def submit(b: OpportunisticBatcher, m: RowModel, x: np.ndarray, pool: ThreadPoolExecutor,
           keys: Sequence[str] | None = None) -> Future[dict[str, np.ndarray]]:
    return b.submit(m, "serving_default", {"x": x}, keys, model="m", version=1, executor=pool)


def start_held_call(b: OpportunisticBatcher, m: RowModel, pool: ThreadPoolExecutor,
                    x: np.ndarray) -> Future[dict[str, np.ndarray]]:
    """A call that runs (its lane is idle) and is held inside the model."""
    m.hold()
    first = submit(b, m, x, pool)
    m.wait_entered()
    return first


# ------------------------------------------------------------ the lanes


def test_a_call_to_an_idle_lane_runs_at_once_alone_in_the_callers_thread(
        batcher: OpportunisticBatcher, model: RowModel) -> None:
    x = rows(1, 2)
    got = batcher.run(model, "serving_default", {"x": x}, model="m", version=1)
    assert_same(got, unbatched(x))
    assert model.calls == [ModelCall(2, threading.current_thread().name)]
    assert batcher.waiting() == 0


def test_calls_arriving_while_one_runs_join_the_next_call_with_ragged_sizes(
        batcher: OpportunisticBatcher, model: RowModel, pool: ThreadPoolExecutor) -> None:
    first_x = rows(0, 1)
    first = start_held_call(batcher, model, pool, first_x)
    sizes = [1, 3, 2, 1]  # 7 rows: one next call under the bound of 8
    xs = [rows(10 + i, n) for i, n in enumerate(sizes)]
    joined = [submit(batcher, model, x, pool) for x in xs]
    assert batcher.waiting() == len(sizes)
    assert model.running == 1  # nobody started a second model call
    model.release()
    assert_same(first.result(WAIT_S), unbatched(first_x))
    for future, x in zip(joined, xs, strict=True):
        assert_same(future.result(WAIT_S), unbatched(x))
    assert [c.rows for c in model.calls] == [1, sum(sizes)]


def test_a_model_joins_only_while_a_call_of_it_runs(
        batcher: OpportunisticBatcher, model: RowModel, pool: ThreadPoolExecutor) -> None:
    plane = DataPlane(row_core(model), batcher=batcher)
    assert not batcher.joins("m") and not plane.joins_from_loop("m")
    first = start_held_call(batcher, model, pool, rows(0, 1))
    assert batcher.joins("m") and plane.joins_from_loop("m")
    assert not batcher.joins("other")
    model.release()
    first.result(WAIT_S)
    assert wait_for(lambda: not batcher.joins("m"))


def test_the_row_bound_splits_the_waiting_calls_into_calls_run_back_to_back(
        batcher: OpportunisticBatcher, model: RowModel, pool: ThreadPoolExecutor) -> None:
    first = start_held_call(batcher, model, pool, rows(0, 1))
    sizes = [5, 2, 4, 9, 1]  # bound 8: [5, 2], [4], [9] alone, [1]
    xs = [rows(20 + i, n) for i, n in enumerate(sizes)]
    joined = [submit(batcher, model, x, pool) for x in xs]
    model.release()
    first.result(WAIT_S)
    for future, x in zip(joined, xs, strict=True):
        assert_same(future.result(WAIT_S), unbatched(x))
    assert [c.rows for c in model.calls] == [1, 7, 4, 9, 1]


def test_an_output_filter_or_another_inner_shape_is_a_lane_of_its_own(
        batcher: OpportunisticBatcher, model: RowModel, pool: ThreadPoolExecutor) -> None:
    first = start_held_call(batcher, model, pool, rows(0, 1))
    x = rows(1, 2)
    # Same signature, other outputs: its lane is idle, so it runs now, beside the first.
    only_y = submit(batcher, model, x, pool, keys=["y"])
    assert_same(only_y.result(WAIT_S), {"y": normalize(x)})
    model.release()
    first.result(WAIT_S)
    assert [c.rows for c in model.calls] == [1, 2]


def test_a_failing_merged_call_is_split_so_each_caller_gets_its_own_answer(
        batcher: OpportunisticBatcher, model: RowModel, pool: ThreadPoolExecutor) -> None:
    first = start_held_call(batcher, model, pool, rows(0, 1))
    good_a, good_b = rows(1, 2), rows(2, 1)
    bad = rows(3, 2)
    bad[1, 2] = np.nan
    futures = [submit(batcher, model, x, pool) for x in (good_a, bad, good_b)]
    model.release()
    first.result(WAIT_S)
    assert_same(futures[0].result(WAIT_S), unbatched(good_a))
    assert_same(futures[2].result(WAIT_S), unbatched(good_b))
    with pytest.raises(ServingError) as info:
        futures[1].result(WAIT_S)
    assert (info.value.code, info.value.message) == (Code.INVALID_ARGUMENT,
                                                     "Tensor had NaN values")
    # The merged call (5 rows) failed, then each call ran alone.
    assert [c.rows for c in model.calls] == [1, 5, 2, 2, 1]


def test_a_failing_call_alone_fails_only_its_caller(
        batcher: OpportunisticBatcher, model: RowModel) -> None:
    bad = rows(3, 1)
    bad[0, 0] = np.nan
    with pytest.raises(ServingError):
        batcher.run(model, "serving_default", {"x": bad}, model="m", version=1)
    x = rows(4, 1)  # the lane is idle again
    assert_same(batcher.run(model, "serving_default", {"x": x}), unbatched(x))


def test_a_joined_call_withdrawn_before_it_starts_never_runs(
        batcher: OpportunisticBatcher, model: RowModel, pool: ThreadPoolExecutor) -> None:
    first = start_held_call(batcher, model, pool, rows(0, 1))
    keep, withdrawn = rows(1, 2), rows(2, 3)
    kept = submit(batcher, model, keep, pool)
    gone = submit(batcher, model, withdrawn, pool)
    assert gone.cancel()
    model.release()
    first.result(WAIT_S)
    assert_same(kept.result(WAIT_S), unbatched(keep))
    assert [c.rows for c in model.calls] == [1, 2]


def test_a_started_call_cannot_be_withdrawn(
        batcher: OpportunisticBatcher, model: RowModel, pool: ThreadPoolExecutor) -> None:
    x = rows(0, 1)
    first = start_held_call(batcher, model, pool, x)
    assert not first.cancel()
    model.release()
    assert_same(first.result(WAIT_S), unbatched(x))


def test_an_unbatched_signature_runs_at_once_even_while_its_model_is_busy(
        batcher: OpportunisticBatcher, model: RowModel, pool: ThreadPoolExecutor) -> None:
    first = start_held_call(batcher, model, pool, rows(0, 1))
    x = rows(1, 2)
    fixed = batcher.submit(model, "fixed", {"x": x}, executor=pool)
    assert_same(fixed.result(WAIT_S), unbatched(x))
    assert batcher.waiting() == 0
    model.release()
    first.result(WAIT_S)


def test_blocking_callers_join_too_and_the_next_call_runs_on_the_batchers_thread(
        batcher: OpportunisticBatcher, model: RowModel) -> None:
    model.hold()
    out: dict[int, dict[str, np.ndarray]] = {}
    xs = {i: rows(40 + i, i + 1) for i in range(3)}

    def call(i: int) -> None:
        out[i] = batcher.run(model, "serving_default", {"x": xs[i]}, model="m", version=1)

    threads = {i: threading.Thread(target=call, args=(i,), name=f"caller-{i}") for i in xs}
    threads[0].start()
    model.wait_entered()
    threads[1].start()
    threads[2].start()
    assert wait_for(lambda: batcher.waiting() == 2)
    model.release()
    for t in threads.values():
        t.join(WAIT_S)
        assert not t.is_alive()
    for i, x in xs.items():
        assert_same(out[i], unbatched(x))
    assert [c.rows for c in model.calls] == [1, 5]
    assert model.calls[0].thread == "caller-0"  # the idle call ran in its caller's thread
    assert model.calls[1].thread.startswith("opportunistic")


def test_calls_waiting_when_the_pool_is_shut_down_fail_unavailable_instead_of_hanging(
        model: RowModel) -> None:
    batcher = OpportunisticBatcher(max_batch_rows=8, inline_budget_s=0)
    model.hold()
    ran: list[dict[str, np.ndarray]] = []
    leader = threading.Thread(target=lambda: ran.append(
        batcher.run(model, "serving_default", {"x": rows(0, 1)})))
    leader.start()
    model.wait_entered()
    joined = batcher.submit(model, "serving_default", {"x": rows(1, 1)})
    batcher.stop()  # the next call has nowhere to run
    model.release()
    leader.join(WAIT_S)
    assert len(ran) == 1
    with pytest.raises(ServingError) as info:
        joined.result(WAIT_S)
    assert info.value.code is Code.UNAVAILABLE


def test_the_batch_observer_sees_every_model_call() -> None:
    seen: list[tuple[str, int, tuple[int, ...]]] = []

    class Observer:
        def observe_batch(self, model: str, version: int, input_sizes: Sequence[int],
                          processed_size: int, padding: int) -> None:
            assert (processed_size, padding) == (sum(input_sizes), 0)
            seen.append((model, version, tuple(input_sizes)))

    m = RowModel()
    b = OpportunisticBatcher(observer=Observer(), inline_budget_s=0)
    with ThreadPoolExecutor(2) as p:
        first = start_held_call(b, m, p, rows(0, 1))
        joined = [submit(b, m, rows(i, 2), p) for i in range(2)]
        m.release()
        for f in (first, *joined):
            f.result(WAIT_S)
    b.stop()
    assert seen == [("m", 1, (1,)), ("m", 1, (2, 2))]


# ------------------------------------------------------------ through the data plane


def row_core(model: RowModel) -> FakeCore:
    return FakeCore(versions={"m": {1: model}})  # type: ignore[dict-item]


def test_predict_async_joins_from_the_loop_and_holds_the_handle_until_its_call_ran(
        model: RowModel, pool: ThreadPoolExecutor) -> None:
    core = row_core(model)
    batcher = OpportunisticBatcher(inline_budget_s=0)
    plane = DataPlane(core, batcher=batcher)
    assert plane.batches_predict
    xs = [rows(50 + i, n) for i, n in enumerate([1, 2, 3])]

    async def scenario() -> None:
        model.hold()
        tasks = [asyncio.ensure_future(plane.predict_async(ModelRef("m"), {"x": xs[0]},
                                                           executor=pool))]
        await asyncio.get_running_loop().run_in_executor(None, model.wait_entered)
        tasks += [asyncio.ensure_future(plane.predict_async(ModelRef("m"), {"x": x},
                                                            executor=pool)) for x in xs[1:]]
        while batcher.waiting() < 2:
            await asyncio.sleep(0)
        assert core.in_flight == 3  # every caller holds its handle
        model.release()
        results = await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
        for r, x in zip(results, xs, strict=True):
            assert_same(r.outputs, unbatched(x))
            assert (r.served.model, r.served.version) == ("m", 1)

    asyncio.run(scenario())
    assert [c.rows for c in model.calls] == [1, 5]
    assert wait_for(lambda: core.in_flight == 0)
    batcher.stop()


def test_a_cancelled_caller_waiting_to_join_is_withdrawn_and_its_handle_released_at_once(
        model: RowModel, pool: ThreadPoolExecutor) -> None:
    core = row_core(model)
    batcher = OpportunisticBatcher(inline_budget_s=0)
    plane = DataPlane(core, batcher=batcher)
    keep = rows(2, 2)

    async def scenario() -> None:
        model.hold()
        first = asyncio.ensure_future(plane.predict_async(ModelRef("m"), {"x": rows(1, 1)},
                                                          executor=pool))
        await asyncio.get_running_loop().run_in_executor(None, model.wait_entered)
        gone = asyncio.ensure_future(plane.predict_async(ModelRef("m"), {"x": rows(3, 4)},
                                                         executor=pool))
        kept = asyncio.ensure_future(plane.predict_async(ModelRef("m"), {"x": keep},
                                                         executor=pool))
        while batcher.waiting() < 2:
            await asyncio.sleep(0)
        assert core.in_flight == 3
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert core.in_flight == 2  # released without waiting for any model call
        model.release()
        await asyncio.wait_for(first, WAIT_S)
        assert_same((await asyncio.wait_for(kept, WAIT_S)).outputs, unbatched(keep))

    asyncio.run(scenario())
    assert [c.rows for c in model.calls] == [1, 2]  # the 4 withdrawn rows never ran
    assert wait_for(lambda: core.in_flight == 0)
    batcher.stop()


def test_a_caller_cancelled_while_its_call_runs_keeps_its_handle_until_the_call_ends(
        model: RowModel, pool: ThreadPoolExecutor) -> None:
    core = row_core(model)
    batcher = OpportunisticBatcher(inline_budget_s=0)
    plane = DataPlane(core, batcher=batcher)

    async def scenario() -> None:
        model.hold()
        task = asyncio.ensure_future(plane.predict_async(ModelRef("m"), {"x": rows(1, 1)},
                                                         executor=pool))
        await asyncio.get_running_loop().run_in_executor(None, model.wait_entered)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert core.in_flight == 1  # the model still runs on its inputs
        model.release()

    asyncio.run(scenario())
    assert wait_for(lambda: core.in_flight == 0)
    assert [c.rows for c in model.calls] == [1]
    batcher.stop()


def test_blocking_predict_batches_opportunistically_too(model: RowModel) -> None:
    plane = DataPlane(row_core(model), batcher=OpportunisticBatcher(inline_budget_s=0))
    x = rows(5, 3)
    result = plane.predict(ModelRef("m"), {"x": x})
    assert_same(result.outputs, unbatched(x))
    assert model.calls == [ModelCall(3, threading.current_thread().name)]


# ------------------------------------------------------------ the flags


def test_enable_batching_takes_precedence_over_opportunistic_batching() -> None:
    from serving.batching import Batcher
    from serving.config.batching import BatchingOptions
    from serving.config.flags import parse_flags
    from serving.metrics import Metrics
    from serving.wiring import choose_batcher

    assert parse_flags([]).opportunistic_batching is True  # on by default
    assert parse_flags(["--opportunistic_batching=false"]).opportunistic_batching is False
    metrics = Metrics()
    timed = choose_batcher(BatchingOptions(), 64, metrics)
    assert isinstance(timed, Batcher)
    timed.stop()
    chosen = choose_batcher(None, 16, metrics)
    assert isinstance(chosen, OpportunisticBatcher) and chosen.max_batch_rows == 16
    chosen.stop()
    assert choose_batcher(None, 0, metrics) is None


def test_the_row_bound_flag_must_be_positive() -> None:
    from serving.config.flags import FlagError, parse_flags

    with pytest.raises(FlagError, match="--opportunistic_batching_max_batch_size must be at"
                                        " least 1"):
        parse_flags(["--opportunistic_batching_max_batch_size=0"])
