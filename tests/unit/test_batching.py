"""The batcher: pure merge/split/padding helpers, and the scheduler over a fake servable."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from serving.batching import (
    Batcher,
    batch_ready,
    batch_size_of,
    merge_inputs,
    queue_key,
    round_to_allowed,
    split_outputs,
)
from serving.config.batching import BatchingOptions
from serving.core.status import Code, ServingError
from serving.dataplane import DataPlane, ModelRef
from serving.tensor_codec import DT_FLOAT
from tests.helpers import WAIT_S, wait_for
from tests.unit.dataplane_fakes import half_plus_two_core


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


# ------------------------------------------------------------ pure helpers


def test_batch_size_is_the_shared_dim0() -> None:
    assert batch_size_of({"a": np.zeros((3, 2)), "b": np.zeros(3)}) == 3


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "Batching Run() must have at least one input tensor"),
        ({"a": np.float32(1)}, "Batching Run() input tensors must have at least one dimension"),
        ({"a": np.zeros(2), "b": np.zeros(3)},
         "Batching Run() input tensors must have equal 0th-dimension size"),
    ],
)
def test_unbatchable_inputs_are_invalid(inputs: Mapping[str, np.ndarray], message: str) -> None:
    with pytest.raises(ServingError) as info:
        batch_size_of(inputs)
    assert (info.value.code, info.value.message) == (Code.INVALID_ARGUMENT, message)


@pytest.mark.parametrize(
    ("allowed", "size", "expected"),
    [((), 3, 3), ((2, 4, 8), 1, 2), ((2, 4, 8), 2, 2), ((2, 4, 8), 3, 4), ((2, 4, 8), 9, 9)],
)
def test_round_to_allowed(allowed: tuple[int, ...], size: int, expected: int) -> None:
    assert round_to_allowed(allowed, size) == expected


def test_merge_concatenates_in_call_order_and_split_gives_each_its_rows() -> None:
    merged = merge_inputs([{"x": f32(1)}, {"x": f32(2, 3)}, {"x": f32(4)}])
    assert merged.sizes == (1, 2, 1) and merged.padding == 0
    np.testing.assert_array_equal(merged.inputs["x"], f32(1, 2, 3, 4))
    parts = split_outputs({"y": merged.inputs["x"] * 10}, merged.sizes)
    assert [p["y"].tolist() for p in parts] == [[10], [20, 30], [40]]


def test_allowed_sizes_pad_with_a_real_row_and_split_drops_the_padding() -> None:
    merged = merge_inputs([{"x": f32(1, 2)}, {"x": f32(3)}], allowed_batch_sizes=(2, 4, 8))
    assert merged.padding == 1
    np.testing.assert_array_equal(merged.inputs["x"], f32(1, 2, 3, 3))
    parts = split_outputs({"y": merged.inputs["x"] + 1}, merged.sizes, merged.padding)
    assert [p["y"].tolist() for p in parts] == [[2, 3], [4]]


def test_variable_length_inputs_are_padded_in_dims_after_0_with_the_first_element() -> None:
    a = np.array([[7, 8]], dtype=np.int64)
    b = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
    merged = merge_inputs([{"t": a}, {"t": b}], pad_variable_length=True)
    assert merged.inputs["t"].tolist() == [[7, 8, 7], [1, 2, 3], [4, 5, 6]]
    strings = merge_inputs([{"s": np.array([[b"a"]], dtype=object)},
                            {"s": np.array([[b"b", b"c"]], dtype=object)}],
                           pad_variable_length=True)
    assert strings.inputs["s"].tolist() == [[b"a", b"a"], [b"b", b"c"]]


def test_unequal_shapes_without_padding_fail_like_tf_serving() -> None:
    with pytest.raises(ServingError) as info:
        merge_inputs([{"t": np.zeros((1, 2))}, {"t": np.zeros((1, 3))}])
    assert info.value.code is Code.FAILED_PRECONDITION
    assert "padding is turned off" in info.value.message


def test_split_checks_the_batched_outputs() -> None:
    with pytest.raises(ServingError, match="0 dimensions"):
        split_outputs({"y": np.array(1.0, dtype=np.float32)}, [1, 1])
    with pytest.raises(ServingError, match="does not equal the sum"):
        split_outputs({"y": f32(1, 2, 3)}, [1, 1])


def test_queue_key_separates_what_cannot_share_a_batch() -> None:
    s, t = object(), object()
    base = queue_key(s, "sig", None, {"x": np.zeros((1, 2), np.float32)}, False)
    assert base == queue_key(s, "sig", None, {"x": np.ones((5, 2), np.float32)}, False)
    for other in (
        queue_key(t, "sig", None, {"x": np.zeros((1, 2), np.float32)}, False),  # version
        queue_key(s, "other", None, {"x": np.zeros((1, 2), np.float32)}, False),  # signature
        queue_key(s, "sig", ["y"], {"x": np.zeros((1, 2), np.float32)}, False),  # filter
        queue_key(s, "sig", None, {"x": np.zeros((1, 3), np.float32)}, False),  # shape
        queue_key(s, "sig", None, {"x": np.zeros((1, 2), np.float64)}, False),  # dtype
    ):
        assert other != base
    # With padding, only the rank matters.
    assert queue_key(s, "sig", None, {"x": np.zeros((1, 2))}, True) == queue_key(
        s, "sig", None, {"x": np.zeros((1, 9))}, True)


@pytest.mark.parametrize(
    ("batches", "size", "opened", "now", "closing", "ready"),
    [
        (2, 0, 0.0, 0.0, False, True),  # a closed batch waits
        (1, 0, 0.0, 9.0, False, False),  # nothing to run
        (1, 4, 0.0, 0.0, False, True),  # full
        (1, 1, 0.0, 0.99, False, False),  # still inside the timeout
        (1, 1, 0.0, 1.0, False, True),  # timed out
        (1, 1, 0.0, 0.0, True, True),  # shutting down: run what is there
    ],
)
def test_batch_ready(batches: int, size: int, opened: float, now: float, closing: bool,
                     ready: bool) -> None:
    assert batch_ready(batches, size, opened, now, max_batch_size=4, timeout_s=1.0,
                       closing=closing) is ready


# ------------------------------------------------------------ the scheduler


FLOAT_INPUT = SimpleNamespace(name="x:0", dtype=DT_FLOAT)


class GatedServable:
    """y = 0.5x + 2 per row; records each call; `gate` holds runs until set."""

    signatures: Mapping[str, Any] = {}

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[float], Sequence[str] | None]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail: Exception | None = None

    def run(self, signature_key: str, inputs: Mapping[str, np.ndarray],
            output_keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        x = np.asarray(inputs["x"])
        self.calls.append((signature_key, x.tolist(), output_keys))
        self.entered.set()
        assert self.gate.wait(WAIT_S)
        if self.fail is not None:
            raise self.fail
        return {"y": x * 0.5 + 2}


class Recorder:
    def __init__(self) -> None:
        self.batches: list[tuple[str, int, tuple[int, ...], int, int]] = []

    def observe_batch(self, model: str, version: int, input_sizes: Sequence[int],
                      processed_size: int, padding: int) -> None:
        self.batches.append((model, version, tuple(input_sizes), processed_size, padding))


@pytest.fixture
def make_batcher() -> Iterator[Callable[..., Batcher]]:
    made: list[Batcher] = []

    def make(observer: Recorder | None = None, **options: Any) -> Batcher:
        batcher = Batcher(BatchingOptions(**{"num_batch_threads": 1, **options}), observer)
        made.append(batcher)
        return batcher

    yield make
    for batcher in made:
        batcher.stop(timeout=WAIT_S)


def in_threads(fns: Sequence[Callable[[], Any]]) -> tuple[list[Any], list[threading.Thread]]:
    results: list[Any] = [None] * len(fns)

    def runner(i: int) -> None:
        try:
            results[i] = fns[i]()
        except Exception as exc:  # collected for the assertion
            results[i] = exc

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    return results, threads


def join(threads: Sequence[threading.Thread]) -> None:
    for t in threads:
        t.join(WAIT_S)
        assert not t.is_alive()


def block_first_batch(batcher: Batcher, servable: GatedServable
                      ) -> tuple[list[Any], list[threading.Thread]]:
    """Occupy the only batch thread with a call that waits on the gate."""
    servable.gate.clear()
    first = in_threads([lambda: batcher.run(servable, "sig", {"x": f32(0)})])
    assert servable.entered.wait(WAIT_S)
    return first


def test_concurrent_calls_merge_into_one_run_and_get_their_own_rows(
        make_batcher: Callable[..., Batcher]) -> None:
    recorder = Recorder()
    batcher = make_batcher(recorder, max_batch_size=8)
    servable = GatedServable()
    first = block_first_batch(batcher, servable)
    rows = [f32(1), f32(2, 3), f32(4)]
    results, threads = in_threads(
        [partial(batcher.run, servable, "sig", {"x": r}, model="m", version=7) for r in rows])
    assert wait_for(lambda: batcher.pending() == 3)
    servable.gate.set()
    join(first[1] + threads)
    assert [c[1] for c in servable.calls] == [[0.0], [1.0, 2.0, 3.0, 4.0]]
    assert [r["y"].tolist() for r in results] == [[2.5], [3.0, 3.5], [4.0]]
    assert recorder.batches[-1] == ("m", 7, (1, 2, 1), 4, 0)


def test_a_full_queue_refuses_at_once_with_tf_servings_message(
        make_batcher: Callable[..., Batcher]) -> None:
    batcher = make_batcher(max_batch_size=1, max_enqueued_batches=1)
    servable = GatedServable()
    first = block_first_batch(batcher, servable)
    queued = in_threads([lambda: batcher.run(servable, "sig", {"x": f32(1)})])
    assert wait_for(lambda: batcher.pending() == 1)
    with pytest.raises(ServingError) as info:
        batcher.run(servable, "sig", {"x": f32(2)})  # answered while the gate is shut
    assert info.value.code is Code.UNAVAILABLE
    assert info.value.message == (
        "The batch scheduling queue to which this task was submitted is full; currently 1"
        " batches enqueued and max_enqueued_batches is 1")
    servable.gate.set()
    join(first[1] + queued[1])
    assert queued[0][0]["y"].tolist() == [2.5]


def test_a_call_larger_than_max_batch_size_is_invalid(
        make_batcher: Callable[..., Batcher]) -> None:
    batcher = make_batcher(max_batch_size=2)
    with pytest.raises(ServingError) as info:
        batcher.run(GatedServable(), "sig", {"x": f32(1, 2, 3)})
    assert (info.value.code, info.value.message) == (
        Code.INVALID_ARGUMENT, "Task size 3 is larger than maximum input batch size 2")


def test_overflowing_the_open_batch_starts_the_next_one(
        make_batcher: Callable[..., Batcher]) -> None:
    batcher = make_batcher(max_batch_size=2, max_enqueued_batches=2)
    servable = GatedServable()
    first = block_first_batch(batcher, servable)
    results, threads = [], []
    for r in (f32(1), f32(2), f32(3)):  # one at a time: order within batches is fixed
        res, ts = in_threads([partial(batcher.run, servable, "sig", {"x": r})])
        results += res
        threads += ts
        assert wait_for(partial(lambda n: batcher.pending() == n, len(threads)))
    servable.gate.set()
    join(first[1] + threads)
    assert [c[1] for c in servable.calls] == [[0.0], [1.0, 2.0], [3.0]]


def test_padding_to_allowed_sizes_is_invisible_to_callers(
        make_batcher: Callable[..., Batcher]) -> None:
    recorder = Recorder()
    batcher = make_batcher(recorder, max_batch_size=4, allowed_batch_sizes=(2, 4))
    servable = GatedServable()
    assert batcher.run(servable, "sig", {"x": f32(6)})["y"].tolist() == [5.0]
    assert servable.calls[-1][1] == [6.0, 6.0]
    assert recorder.batches[-1][3:] == (2, 1)


def test_different_signatures_and_filters_are_never_merged(
        make_batcher: Callable[..., Batcher]) -> None:
    batcher = make_batcher(max_batch_size=8)
    servable = GatedServable()
    first = block_first_batch(batcher, servable)
    results, threads = in_threads([
        lambda: batcher.run(servable, "a", {"x": f32(1)}),
        lambda: batcher.run(servable, "b", {"x": f32(2)}),
        lambda: batcher.run(servable, "a", {"x": f32(3)}, ["y"]),
    ])
    assert wait_for(lambda: batcher.pending() == 3)
    servable.gate.set()
    join(first[1] + threads)
    runs = sorted((c[0], c[1], c[2]) for c in servable.calls[1:])
    assert runs == [("a", [1.0], None), ("a", [3.0], ["y"]), ("b", [2.0], None)]
    assert [r["y"].tolist() for r in results] == [[2.5], [3.0], [3.5]]


def test_a_failing_batch_fails_every_call_in_it(make_batcher: Callable[..., Batcher]) -> None:
    batcher = make_batcher(max_batch_size=8)
    servable = GatedServable()
    first = block_first_batch(batcher, servable)
    servable.fail = ServingError(Code.INVALID_ARGUMENT, "bad x")
    results, threads = in_threads(
        [partial(batcher.run, servable, "sig", {"x": f32(r)}) for r in (1, 2)])
    assert wait_for(lambda: batcher.pending() == 2)
    servable.gate.set()
    join(first[1] + threads)
    assert all(isinstance(r, ServingError) and r.code is Code.INVALID_ARGUMENT
               and r.message == "bad x" for r in results + first[0])


def test_timeout_lets_a_lone_call_run(make_batcher: Callable[..., Batcher]) -> None:
    batcher = make_batcher(max_batch_size=64, batch_timeout_micros=1000)
    assert batcher.run(GatedServable(), "sig", {"x": f32(2)})["y"].tolist() == [3.0]


def test_stop_finishes_queued_calls_then_refuses(make_batcher: Callable[..., Batcher]) -> None:
    batcher = make_batcher(max_batch_size=8, batch_timeout_micros=60_000_000)
    servable = GatedServable()
    results, threads = in_threads([lambda: batcher.run(servable, "sig", {"x": f32(4)})])
    assert wait_for(lambda: batcher.pending() == 1)  # waits on a one-minute timeout
    batcher.stop(timeout=WAIT_S)
    join(threads)
    assert results[0]["y"].tolist() == [4.0]
    with pytest.raises(ServingError) as info:
        batcher.run(servable, "sig", {"x": f32(1)})
    assert info.value.code is Code.UNAVAILABLE


def test_the_data_plane_routes_predict_through_the_batcher(
        make_batcher: Callable[..., Batcher]) -> None:
    recorder = Recorder()
    core = half_plus_two_core()
    unbatched = DataPlane(core).predict(ModelRef("half_plus_two"), {"x": f32(1, 2)})
    dp = DataPlane(core, batcher=make_batcher(recorder))
    result = dp.predict(ModelRef("half_plus_two"), {"x": f32(1, 2)})
    assert result.outputs["y"].tolist() == unbatched.outputs["y"].tolist()
    assert recorder.batches == [("half_plus_two", result.served.version, (2,), 2, 0)]


class OneVersionCore:
    """A core with one servable whose handle records when it is released."""

    def __init__(self, servable: GatedServable) -> None:
        self.servable = servable
        self.released = threading.Event()

    @contextlib.contextmanager
    def handle(self, model: str, version: int | None = None, label: str | None = None,
               headers: Mapping[str, str] | None = None,
               wait_s: float | None = None) -> Iterator[Any]:
        yield SimpleNamespace(model=model, version=1, label=None, servable=self.servable)
        self.released.set()

    async def wait_for_version(self, model: str, version: int | None = None,
                               label: str | None = None,
                               headers: Mapping[str, str] | None = None,
                               wait_s: float | None = None) -> None:
        """Nothing here is ever loading."""

    def list_models(self) -> Sequence[Any]:
        return []


def test_a_request_keeps_its_handle_until_its_batch_has_run(
        make_batcher: Callable[..., Batcher]) -> None:
    servable = GatedServable()
    servable.signatures = {"serving_default": SimpleNamespace(inputs={"x": FLOAT_INPUT},
                                                              outputs={"y": None})}
    core = OneVersionCore(servable)
    dp = DataPlane(core, batcher=make_batcher())
    servable.gate.clear()
    results, threads = in_threads([lambda: dp.predict(ModelRef("m"), {"x": f32(2)})])
    assert servable.entered.wait(WAIT_S)
    assert not core.released.is_set()  # an unload would still wait for this request
    servable.gate.set()
    join(threads)
    assert core.released.is_set() and results[0].outputs["y"].tolist() == [3.0]


# ----- predict_batched: the event loop joins a batch without a thread per request


def gated_core() -> tuple[GatedServable, OneVersionCore]:
    servable = GatedServable()
    servable.signatures = {"serving_default": SimpleNamespace(inputs={"x": FLOAT_INPUT},
                                                              outputs={"y": None})}
    return servable, OneVersionCore(servable)


def test_batched_predict_on_the_loop_matches_predict_and_merges_calls(
        make_batcher: Callable[..., Batcher]) -> None:
    recorder = Recorder()
    core = half_plus_two_core()
    expected = DataPlane(core).predict(ModelRef("half_plus_two"), {"x": f32(1, 2, 4)})
    dp = DataPlane(core, batcher=make_batcher(recorder, batch_timeout_micros=200_000,
                                              max_batch_size=3))

    async def three() -> list[Any]:
        calls = [dp.predict_batched(ModelRef("half_plus_two"), {"x": f32(1, 2)}),
                 dp.predict_batched(ModelRef("half_plus_two"), {"x": f32(4)})]
        return list(await asyncio.gather(*calls))

    first, second = asyncio.run(three())
    assert first.outputs["y"].tolist() + second.outputs["y"].tolist() == (
        expected.outputs["y"].tolist())
    assert recorder.batches == [("half_plus_two", first.served.version, (2, 1), 3, 0)]


def test_a_cancelled_batched_predict_keeps_its_handle_until_its_batch_has_run(
        make_batcher: Callable[..., Batcher]) -> None:
    servable, core = gated_core()
    dp = DataPlane(core, batcher=make_batcher())
    servable.gate.clear()

    async def cancel_while_waiting() -> None:
        task = asyncio.ensure_future(dp.predict_batched(ModelRef("m"), {"x": f32(2)}))
        while not servable.entered.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(cancel_while_waiting(), WAIT_S))
    assert not core.released.is_set()  # an unload would still wait for the batch
    servable.gate.set()
    assert core.released.wait(WAIT_S)


def test_batched_predict_errors_release_the_handle_and_keep_their_codes(
        make_batcher: Callable[..., Batcher]) -> None:
    servable, core = gated_core()
    dp = DataPlane(core, batcher=make_batcher())
    with pytest.raises(ServingError) as missing:
        asyncio.run(dp.predict_batched(ModelRef("m"), {"x": f32(2)}, "nope"))
    assert missing.value.code is Code.FAILED_PRECONDITION
    servable.fail = ServingError(Code.INVALID_ARGUMENT, "bad rows")
    with pytest.raises(ServingError) as failed:
        asyncio.run(dp.predict_batched(ModelRef("m"), {"x": f32(2)}))
    assert (failed.value.code, failed.value.message) == (Code.INVALID_ARGUMENT, "bad rows")
    assert core.released.wait(WAIT_S)


def test_batched_predict_needs_a_batcher() -> None:
    with pytest.raises(RuntimeError):
        asyncio.run(DataPlane(half_plus_two_core()).predict_batched(
            ModelRef("half_plus_two"), {"x": f32(1)}))


def test_a_cancelled_caller_does_not_cost_the_rest_of_its_batch_their_rows(
        make_batcher: Callable[..., Batcher]) -> None:
    servable = GatedServable()
    batcher = make_batcher(batch_timeout_micros=100_000, max_batch_size=2)
    servable.gate.clear()
    first = batcher.submit(servable, "sig", {"x": f32(1)})
    second = batcher.submit(servable, "sig", {"x": f32(2)})
    assert servable.entered.wait(WAIT_S)
    assert first.cancel()
    servable.gate.set()
    assert second.result(WAIT_S)["y"].tolist() == [3.0]
    assert batcher.run(servable, "sig", {"x": f32(4)})["y"].tolist() == [4.0]  # thread alive


# ----- per-version options (--enable_per_model_batching_parameters)


def test_each_servable_batches_with_its_own_options_on_shared_threads() -> None:
    small, padded, plain = GatedServable(), GatedServable(), GatedServable()
    own = {id(small): BatchingOptions(max_batch_size=2),
           id(padded): BatchingOptions(max_batch_size=4, allowed_batch_sizes=(4,)),
           id(plain): None}
    recorder = Recorder()
    batcher = Batcher(BatchingOptions(num_batch_threads=1, max_batch_size=100), recorder,
                      options_for=lambda servable: own[id(servable)])
    try:
        with pytest.raises(ServingError, match="Task size 3 is larger than maximum input"
                           " batch size 2"):
            batcher.bind(small, "small", 1).run("sig", {"x": f32(1, 2, 3)})
        assert batcher.bind(padded, "padded", 1).run("sig", {"x": f32(6)})["y"].tolist() == [5.0]
        assert recorder.batches == [("padded", 1, (1,), 4, 3)]
        # Not batched: the servable itself, called directly.
        assert batcher.bind(plain, "plain", 1) is plain
    finally:
        batcher.stop(timeout=WAIT_S)


def test_a_version_without_batching_runs_in_the_executor_on_the_loop_path() -> None:
    servable, core = gated_core()
    batcher = Batcher(BatchingOptions(num_batch_threads=1), options_for=lambda s: None)
    dp = DataPlane(core, batcher=batcher)
    try:
        result = asyncio.run(dp.predict_async(ModelRef("m"), {"x": f32(2, 4)}))
        assert result.outputs["y"].tolist() == [3.0, 4.0]
        assert core.released.is_set()
        assert batcher.pending() == 0 and len(servable.calls) == 1
    finally:
        batcher.stop(timeout=WAIT_S)
