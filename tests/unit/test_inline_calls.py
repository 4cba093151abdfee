"""Submitted calls measured cheap run in the submitting thread (serving.call_costs).

The batcher's clock is a fake that the fake model advances by the cost the
test gives it, so "cheap" and "dear" are exact; the thread a call ran in is
what each test asserts.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from serving.call_costs import CallCosts, runs_inline, size_class
from serving.opportunistic import OpportunisticBatcher
from tests.helpers import WAIT_S
from tests.unit.dataplane_fakes import Signature, TensorInfo

BUDGET_S = 25e-6


@pytest.mark.parametrize(
    ("cost_s", "rows", "inline"),
    [
        (None, 1, False),        # never measured: to the pool, where it is measured
        (10e-6, 1, True),
        (24e-6, 8, True),
        (25e-6, 1, False),       # the budget itself is not under the budget
        (5e-3, 1, False),
        (10e-6, 9, False),       # more rows than a batch may have
    ],
)
def test_only_a_measured_cheap_call_of_batch_size_runs_inline(
        cost_s: float | None, rows: int, inline: bool) -> None:
    assert runs_inline(cost_s, rows, max_rows=8, budget_s=BUDGET_S) is inline


@pytest.mark.parametrize(("rows", "size"), [(0, 1), (1, 1), (2, 2), (3, 4), (8, 8), (9, 16)])
def test_sizes_are_classed_by_the_next_power_of_two(rows: int, size: int) -> None:
    assert size_class(rows) == size


class Servable:
    """Weakly referenceable, as loaded versions are."""


def test_the_estimate_is_the_fastest_call_of_the_size_class_or_a_larger_one() -> None:
    costs, a, b = CallCosts(), Servable(), Servable()
    costs.observe(a, "serving_default", 5.0, 1)
    costs.observe(a, "serving_default", 2.0, 1)
    costs.observe(a, "serving_default", 9.0, 1)  # a slow call (GIL waits) changes nothing
    costs.observe(a, "serving_default", 30.0, 8)
    assert costs.estimate(a, "serving_default", 1) == 2.0
    assert costs.estimate(a, "serving_default", 2) == 30.0  # only a larger class known
    assert costs.estimate(a, "serving_default", 7) == 30.0
    assert costs.estimate(a, "serving_default", 9) is None  # nothing that large measured
    assert costs.estimate(a, "other", 1) is None
    assert costs.estimate(b, "serving_default", 1) is None
    del a
    gc.collect()
    assert len(costs._costs) == 0
    # A servable that cannot be weakly referenced is never measured.
    costs.observe(7, "serving_default", 1.0, 1)
    assert costs.estimate(7, "serving_default", 1) is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CostedModel:
    """x [-1] -> y = 2x; each call advances the batcher's clock by `cost_s`
    and records the thread it ran in."""

    def __init__(self, clock: FakeClock) -> None:
        x = TensorInfo("x:0", 1, (-1,))
        self.signatures = {"serving_default": Signature(
            "serving_default", "tensorflow/serving/predict", {"x": x}, {"y": x})}
        self.clock = clock
        self.cost_s = 2e-6
        self.threads: list[str] = []

    def run(self, signature_key: str, inputs: Mapping[str, np.ndarray],
            output_keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        self.threads.append(threading.current_thread().name)
        self.clock.now += self.cost_s
        return {"y": inputs["x"] * 2}

    def signature_def_map(self) -> object:
        raise NotImplementedError


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    p = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pool")
    yield p
    p.shutdown(wait=True)


def call(b: OpportunisticBatcher, m: CostedModel, pool: ThreadPoolExecutor,
         rows: int = 1) -> tuple[bool, list[float]]:
    """Submit one call; whether it was done on return, and its answer."""
    future = b.submit(m, "serving_default", {"x": np.arange(rows, dtype=np.float32)},
                      model="m", version=1, executor=pool)
    done = future.done()
    return done, future.result(WAIT_S)["y"].tolist()


def test_a_cheap_signature_runs_in_the_submitting_thread_once_measured(
        pool: ThreadPoolExecutor) -> None:
    clock = FakeClock()
    m, b = CostedModel(clock), OpportunisticBatcher(max_batch_rows=8, clock=clock)
    here = threading.current_thread().name
    assert call(b, m, pool, rows=4)[1] == [0.0, 2.0, 4.0, 6.0]
    assert m.threads[-1].startswith("pool")  # unmeasured: the pool, which measures it
    assert call(b, m, pool, rows=3) == (True, [0.0, 2.0, 4.0])  # done on return
    assert m.threads[-1] == here
    assert call(b, m, pool, rows=1) == (True, [0.0])  # a smaller call costs no more
    assert call(b, m, pool, rows=5)[1] == [2.0 * i for i in range(5)]
    assert m.threads[-1].startswith("pool")  # a larger size class: measured first
    assert call(b, m, pool, rows=9)[1] == [2.0 * i for i in range(9)]
    assert m.threads[-1].startswith("pool")  # more rows than a batch: the pool
    b.stop()


def test_a_dear_signature_goes_to_the_pool_and_a_worker_joins_its_lane(
        pool: ThreadPoolExecutor) -> None:
    clock = FakeClock()
    m, b = CostedModel(clock), OpportunisticBatcher(max_batch_rows=8, clock=clock)
    m.cost_s = 5e-3
    for _ in range(3):
        call(b, m, pool)
    assert all(t.startswith("pool") for t in m.threads)
    assert not b.joins("m")  # an event loop hands it to a thread
    m.cost_s = 2e-6  # one fast call is enough: its cost is the version's own
    call(b, m, pool)
    call(b, m, pool)
    assert m.threads[-1] == threading.current_thread().name
    assert b.joins("m")  # an event loop submits it, and it runs there
    b.stop()


class Observer:
    def __init__(self) -> None:
        self.batches: list[tuple[str, int, tuple[int, ...]]] = []

    def observe_batch(self, model: str, version: int, sizes: Sequence[int], rows: int,
                      padded: int) -> None:
        self.batches.append((model, version, tuple(sizes)))


def test_a_worker_runs_a_cheap_call_at_once_without_a_lane() -> None:
    clock, observer = FakeClock(), Observer()
    m = CostedModel(clock)
    b = OpportunisticBatcher(max_batch_rows=8, clock=clock, observer=observer)
    x = {"x": np.arange(2, dtype=np.float32)}
    b.run(m, "serving_default", x, model="m", version=1)
    assert b.run(m, "serving_default", x, model="m", version=1)["y"].tolist() == [0.0, 2.0]
    assert m.threads == [threading.current_thread().name] * 2
    assert b.waiting() == 0 and not b._lanes
    # Each call still counts as a model call of its rows in the batch histogram.
    assert observer.batches == [("m", 1, (2,)), ("m", 1, (2,))]
    b.stop()


def test_no_budget_sends_every_call_to_the_pool(pool: ThreadPoolExecutor) -> None:
    clock = FakeClock()
    m = CostedModel(clock)
    b = OpportunisticBatcher(max_batch_rows=8, clock=clock, inline_budget_s=0)
    for _ in range(3):
        call(b, m, pool)
    assert all(t.startswith("pool") for t in m.threads)
    b.stop()
