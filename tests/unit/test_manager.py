"""The manager with scripted fake loaders and a fake clock: ordering, handles, retries."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from serving.core.manager import (
    AspiredVersion,
    Manager,
    TransitionPolicy,
    VersionState,
    VersionStatus,
)
from serving.core.states import LOADED_STATES
from serving.core.status import Code, ServingError
from tests.helpers import wait_for
from tests.unit.fakes import DEADLINE_S, FakeClock, FakeLoaders, Servable, aspire

S, L, A, U, E = (
    VersionState.START,
    VersionState.LOADING,
    VersionState.AVAILABLE,
    VersionState.UNLOADING,
    VersionState.END,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def manager(clock: FakeClock) -> Iterator[Manager]:
    m = Manager(
        max_num_load_retries=2,
        load_retry_interval_s=10.0,
        clock=clock,
        sleep=clock.sleep,
    )
    yield m
    m.stop(timeout=DEADLINE_S)


def state_of(manager: Manager, model: str, version: int) -> VersionState | None:
    for status in manager.statuses(model):
        if status.version == version:
            return status.state
    return None


def wait_state(manager: Manager, model: str, version: int, state: VersionState) -> None:
    ok = manager.wait_until(lambda: state_of(manager, model, version) is state, DEADLINE_S)
    assert ok, f"{model} v{version} never reached {state}: {manager.statuses(model)}"


def record(manager: Manager) -> list[VersionStatus]:
    seen: list[VersionStatus] = []
    manager.add_listener(seen.append)
    return seen


def test_loads_an_aspired_version_and_serves_it(manager: Manager) -> None:
    loaders = FakeLoaders("m")
    seen = record(manager)
    manager.set_aspired_versions("m", aspire(1), loaders)
    wait_state(manager, "m", 1, A)
    assert [s.state for s in seen] == [S, L, A]
    assert manager.models() == ["m"]
    assert manager.available_versions("m") == [1]
    with manager.handle("m", 1) as servable:
        assert servable == Servable("m", 1, "")
    assert manager.statuses("m") == [VersionStatus("m", 1, A, None)]


def test_unknown_model_or_version_is_not_found(manager: Manager) -> None:
    assert manager.statuses("nope") == []
    assert manager.available_versions("nope") == []
    with pytest.raises(ServingError) as err, manager.handle("nope", 1):
        pass
    assert err.value.code is Code.NOT_FOUND
    assert err.value.message == "Servable not found for request: Specific(nope, 1)"


def test_availability_preserving_loads_new_before_unloading_old(manager: Manager) -> None:
    loaders = FakeLoaders("m")
    manager.set_aspired_versions("m", aspire(1), loaders)
    wait_state(manager, "m", 1, A)
    gaps: list[list[int]] = []

    def serving_throughout(status: VersionStatus) -> None:
        if not manager.available_versions("m"):
            gaps.append([status.version])

    manager.add_listener(serving_throughout)
    seen = record(manager)
    manager.set_aspired_versions("m", aspire(2), loaders)
    wait_state(manager, "m", 1, E)
    assert [(s.version, s.state) for s in seen] == [(2, S), (2, L), (2, A), (1, U), (1, E)]
    assert loaders.events == [("load", 1), ("load", 2), ("unload", 1)]
    assert gaps == []
    assert manager.available_versions("m") == [2]
    assert [(s.version, s.state) for s in manager.statuses("m")] == [(2, A), (1, E)]


def test_resource_preserving_never_has_two_loaded(manager: Manager) -> None:
    loaders = FakeLoaders("m")
    manager.set_policy("m", TransitionPolicy.RESOURCE_PRESERVING)
    assert manager.policy("m") is TransitionPolicy.RESOURCE_PRESERVING
    max_loaded: list[int] = []

    def count_loaded(_: VersionStatus) -> None:
        max_loaded.append(sum(s.state in LOADED_STATES for s in manager.statuses("m")))

    manager.add_listener(count_loaded)
    for version in (1, 2, 3):
        manager.set_aspired_versions("m", aspire(version), loaders)
        wait_state(manager, "m", version, A)
    assert max(max_loaded) == 1
    assert loaders.events == [
        ("load", 1),
        ("unload", 1),
        ("load", 2),
        ("unload", 2),
        ("load", 3),
    ]
    manager.set_policy("m", None)
    assert manager.policy("m") is TransitionPolicy.AVAILABILITY_PRESERVING


def test_handle_blocks_unload_until_released(manager: Manager) -> None:
    loaders = FakeLoaders("m")
    manager.set_aspired_versions("m", aspire(1), loaders)
    wait_state(manager, "m", 1, A)
    with manager.handle("m", 1) as held:
        manager.set_aspired_versions("m", aspire(2), loaders)
        wait_state(manager, "m", 2, A)
        wait_state(manager, "m", 1, U)
        # The unload waits for us: not called, and no new handles on v1.
        assert ("unload", 1) not in loaders.events
        with pytest.raises(ServingError) as err, manager.handle("m", 1):
            pass
        assert err.value.code is Code.NOT_FOUND
        assert manager.available_versions("m") == [2]
        assert held == Servable("m", 1, "")
    wait_state(manager, "m", 1, E)
    assert loaders.events[-1] == ("unload", 1)


def test_in_flight_request_finishes_on_its_version(manager: Manager) -> None:
    loaders = FakeLoaders("m")
    manager.set_aspired_versions("m", aspire(1), loaders)
    wait_state(manager, "m", 1, A)
    in_request = threading.Event()
    finish = threading.Event()
    result: list[object] = []

    def request() -> None:
        with manager.handle("m", 1) as servable:
            in_request.set()
            assert finish.wait(DEADLINE_S)
            result.append(servable)
            result.append(state_of(manager, "m", 1))

    worker = threading.Thread(target=request)
    worker.start()
    assert in_request.wait(DEADLINE_S)
    manager.set_aspired_versions("m", aspire(2), loaders)
    wait_state(manager, "m", 1, U)
    finish.set()
    worker.join(DEADLINE_S)
    assert not worker.is_alive()
    assert result == [Servable("m", 1, ""), U]
    wait_state(manager, "m", 1, E)


def test_load_retries_then_ends_with_error_while_old_keeps_serving(
    manager: Manager, clock: FakeClock
) -> None:
    loaders = FakeLoaders("m")
    loaders.script(2, failures=-1, error=ServingError(Code.INVALID_ARGUMENT, "bad graph"))
    manager.set_aspired_versions("m", aspire(1), loaders)
    wait_state(manager, "m", 1, A)
    manager.set_aspired_versions("m", aspire(2), loaders)
    wait_state(manager, "m", 2, E)
    # One attempt plus max_num_load_retries, load_retry_interval_s apart.
    assert loaders.attempts[(2, "")] == 3
    assert clock.sleeps == [10.0, 10.0]
    status = manager.statuses("m")[0]
    assert status.version == 2
    assert status.error is not None
    assert (status.error.code, status.error.message) == (Code.INVALID_ARGUMENT, "bad graph")
    assert manager.available_versions("m") == [1]
    with manager.handle("m", 1) as servable:
        assert servable == Servable("m", 1, "")


def test_non_serving_error_becomes_unknown(manager: Manager) -> None:
    loaders = FakeLoaders("m")
    loaders.script(1, failures=-1, error=ValueError("no such file"))
    manager.set_aspired_versions("m", aspire(1), loaders)
    wait_state(manager, "m", 1, E)
    error = manager.statuses("m")[0].error
    assert error is not None
    assert (error.code, error.message) == (Code.UNKNOWN, "no such file")


def test_load_succeeds_on_a_retry(manager: Manager, clock: FakeClock) -> None:
    loaders = FakeLoaders("m")
    loaders.script(1, failures=1)
    manager.set_aspired_versions("m", aspire(1), loaders)
    wait_state(manager, "m", 1, A)
    assert clock.sleeps == [10.0]
    assert manager.statuses("m")[0].error is None


def test_failed_version_is_retried_only_when_its_fingerprint_changes(manager: Manager) -> None:
    loaders = FakeLoaders("m")
    loaders.script(2, "broken", failures=-1)
    manager.set_aspired_versions("m", aspire(1, fingerprint="ok"), loaders)
    wait_state(manager, "m", 1, A)
    manager.set_aspired_versions("m", aspire(2, fingerprint="broken"), loaders)
    wait_state(manager, "m", 2, E)
    # Re-aspired unchanged: stays failed, no new attempt, v1 keeps serving.
    manager.set_aspired_versions("m", aspire(2, fingerprint="broken"), loaders)
    assert state_of(manager, "m", 2) is E
    assert loaders.attempts[(2, "broken")] == 3
    assert manager.available_versions("m") == [1]
    # The directory changed: a fresh attempt, which succeeds and replaces v1.
    manager.set_aspired_versions("m", aspire(2, fingerprint="fixed"), loaders)
    wait_state(manager, "m", 2, A)
    wait_state(manager, "m", 1, E)
    assert manager.statuses("m")[0] == VersionStatus("m", 2, A, None)
    with manager.handle("m", 2) as servable:
        assert servable == Servable("m", 2, "fixed")


def test_retry_wait_is_interrupted_when_version_is_unaspired() -> None:
    # No injected sleep: the 60 s retry wait must end as soon as the version
    # stops being aspired, not after 60 s.
    manager = Manager(max_num_load_retries=5, load_retry_interval_s=60.0)
    try:
        loaders = FakeLoaders("m")
        loaders.script(1, failures=-1)
        manager.set_aspired_versions("m", aspire(1), loaders)
        assert wait_for(lambda: loaders.attempts.get((1, ""), 0) >= 1)
        manager.set_aspired_versions("m", [], loaders)
        wait_state(manager, "m", 1, E)
        assert loaders.attempts[(1, "")] == 1
    finally:
        manager.stop(timeout=DEADLINE_S)


def test_slow_load_of_one_model_does_not_block_another(manager: Manager) -> None:
    slow, fast = FakeLoaders("a"), FakeLoaders("b")
    gate = slow.script(1, gate=threading.Event()).gate
    assert gate is not None
    manager.set_aspired_versions("b", aspire(1), fast)
    wait_state(manager, "b", 1, A)
    manager.set_aspired_versions("a", aspire(1), slow)
    assert slow.load_started(1).wait(DEADLINE_S)
    try:
        assert state_of(manager, "a", 1) is L
        # Reads, handles and another model's transition all go ahead.
        with manager.handle("b", 1) as servable:
            assert servable == Servable("b", 1, "")
        manager.set_aspired_versions("b", aspire(2), fast)
        wait_state(manager, "b", 2, A)
        wait_state(manager, "b", 1, E)
        assert state_of(manager, "a", 1) is L
    finally:
        gate.set()
    wait_state(manager, "a", 1, A)


def test_end_entries_are_bounded(clock: FakeClock) -> None:
    manager = Manager(max_end_entries=3, clock=clock, sleep=clock.sleep)
    try:
        loaders = FakeLoaders("m")
        for version in range(1, 8):
            manager.set_aspired_versions("m", aspire(version), loaders)
            wait_state(manager, "m", version, A)
            if version > 1:
                wait_state(manager, "m", version - 1, E)
        # The newest three END entries remain, the oldest were dropped.
        assert [(s.version, s.state) for s in manager.statuses("m")] == [
            (7, A),
            (6, E),
            (5, E),
            (4, E),
        ]
    finally:
        manager.stop(timeout=DEADLINE_S)


def test_empty_aspired_set_unloads_everything(manager: Manager) -> None:
    loaders = FakeLoaders("m")
    manager.set_aspired_versions("m", aspire(1, 2), loaders)
    wait_state(manager, "m", 1, A)
    wait_state(manager, "m", 2, A)
    manager.set_aspired_versions("m", [], loaders)
    wait_state(manager, "m", 1, E)
    wait_state(manager, "m", 2, E)
    assert manager.available_versions("m") == []
    assert manager.models() == ["m"]


def test_unloaded_version_is_loaded_again_when_reaspired(manager: Manager) -> None:
    loaders = FakeLoaders("m")
    manager.set_aspired_versions("m", aspire(1), loaders)
    wait_state(manager, "m", 1, A)
    manager.set_aspired_versions("m", [], loaders)
    wait_state(manager, "m", 1, E)
    manager.set_aspired_versions("m", aspire(1), loaders)
    wait_state(manager, "m", 1, A)
    assert loaders.events == [("load", 1), ("unload", 1), ("load", 1)]


def test_reaspired_while_unloading_is_loaded_after_the_unload(manager: Manager) -> None:
    loaders = FakeLoaders("m")
    manager.set_aspired_versions("m", aspire(1), loaders)
    wait_state(manager, "m", 1, A)
    with manager.handle("m", 1):
        manager.set_aspired_versions("m", [], loaders)
        wait_state(manager, "m", 1, U)
        manager.set_aspired_versions("m", aspire(1), loaders)
        assert state_of(manager, "m", 1) is U
    wait_state(manager, "m", 1, A)
    assert loaders.events == [("load", 1), ("unload", 1), ("load", 1)]


def test_remove_model_unloads_and_unlists(manager: Manager) -> None:
    loaders = FakeLoaders("m")
    manager.set_aspired_versions("m", aspire(1), loaders)
    wait_state(manager, "m", 1, A)
    manager.remove_model("m")
    wait_state(manager, "m", 1, E)
    assert manager.models() == []
    assert manager.statuses("m") == [VersionStatus("m", 1, E, None)]


def test_statuses_are_highest_version_first(manager: Manager) -> None:
    loaders = FakeLoaders("m")
    manager.set_aspired_versions("m", [AspiredVersion(v, f"/p/{v}") for v in (3, 10, 7)], loaders)
    for version in (3, 7, 10):
        wait_state(manager, "m", version, A)
    assert [s.version for s in manager.statuses("m")] == [10, 7, 3]
    assert manager.available_versions("m") == [10, 7, 3]


def test_stop_unloads_everything_after_handles_are_released(clock: FakeClock) -> None:
    manager = Manager(clock=clock, sleep=clock.sleep)
    a, b = FakeLoaders("a"), FakeLoaders("b")
    manager.set_aspired_versions("a", aspire(1, 2), a)
    manager.set_aspired_versions("b", aspire(1), b)
    for model, version in (("a", 1), ("a", 2), ("b", 1)):
        wait_state(manager, model, version, A)
    stopped = threading.Event()

    def stop() -> None:
        manager.stop(DEADLINE_S)
        stopped.set()

    with manager.handle("b", 1):
        stopper = threading.Thread(target=stop)
        stopper.start()
        wait_state(manager, "b", 1, U)
        assert not stopped.is_set()
    stopper.join(DEADLINE_S)
    assert stopped.is_set()
    assert sorted(e for e in a.events if e[0] == "unload") == [("unload", 1), ("unload", 2)]
    assert b.events[-1] == ("unload", 1)
    assert all(s.state is E for m in ("a", "b") for s in manager.statuses(m))
    # A stopped manager takes no new work.
    manager.set_aspired_versions("a", aspire(3), a)
    assert state_of(manager, "a", 3) is None


def test_a_failing_listener_does_not_break_the_manager(manager: Manager) -> None:
    def broken(_: VersionStatus) -> None:
        raise RuntimeError("listener bug")

    manager.add_listener(broken)
    manager.set_aspired_versions("m", aspire(1), FakeLoaders("m"))
    wait_state(manager, "m", 1, A)


# ----- requests waiting for a version on its way in (resource-preserving gaps)


def in_gap(manager: Manager, loaders: FakeLoaders, failures: int = 0) -> threading.Event:
    """v1 AVAILABLE, then a resource-preserving swap to v2 held in its load
    (which then fails `failures` times, as FakeLoaders scripts say)."""
    manager.set_policy("m", TransitionPolicy.RESOURCE_PRESERVING)
    manager.set_aspired_versions("m", aspire(1), loaders)
    wait_state(manager, "m", 1, A)
    gate = loaders.script(2, gate=threading.Event(), failures=failures).gate
    assert gate is not None
    manager.set_aspired_versions("m", aspire(2), loaders)
    assert loaders.load_started(2).wait(DEADLINE_S)
    assert manager.available_versions("m") == []
    return gate


def waiting(fn: Callable[[], bool]) -> tuple[threading.Thread, list[bool]]:
    out: list[bool] = []
    worker = threading.Thread(target=lambda: out.append(fn()))
    worker.start()
    return worker, out


def test_a_request_in_the_gap_waits_for_the_new_version(manager: Manager) -> None:
    loaders = FakeLoaders("m")
    gate = in_gap(manager, loaders)
    latest, latest_out = waiting(lambda: manager.wait_for_load("m", None, 60 * DEADLINE_S))
    pinned, pinned_out = waiting(lambda: manager.wait_for_load("m", 2, 60 * DEADLINE_S))
    # Still waiting while the load runs: nothing has answered them.
    latest.join(0.05)
    assert latest.is_alive() and pinned.is_alive() and latest_out == pinned_out == []
    gate.set()
    for worker in (latest, pinned):
        worker.join(DEADLINE_S)
    assert latest_out == pinned_out == [True]
    assert manager.available_versions("m") == [2]


def test_a_request_nothing_is_about_to_serve_does_not_wait(manager: Manager) -> None:
    loaders = FakeLoaders("m")
    gate = in_gap(manager, loaders)
    try:
        # The old version (being unloaded for good), an unknown one, an unknown model:
        # a wait of an hour returns at once.
        for model, version in (("m", 1), ("m", 7), ("other", None)):
            assert manager.wait_for_load(model, version, 3600) is False
    finally:
        gate.set()


def test_a_failed_load_ends_the_wait_as_not_servable(clock: FakeClock) -> None:
    manager = Manager(max_num_load_retries=0, clock=clock, sleep=clock.sleep)
    try:
        loaders = FakeLoaders("m")
        gate = in_gap(manager, loaders, failures=-1)
        worker, out = waiting(lambda: manager.wait_for_load("m", None, 60 * DEADLINE_S))
        gate.set()
        worker.join(DEADLINE_S)
        assert out == [False]
        assert manager.statuses("m")[0].error is not None
    finally:
        manager.stop(timeout=DEADLINE_S)


def test_the_wait_is_bounded_by_its_timeout(manager: Manager) -> None:
    loaders = FakeLoaders("m")
    gate = in_gap(manager, loaders)
    try:
        assert manager.wait_for_load("m", None, 0.0) is False
        assert manager.wait_for_load("m", None, 0.05) is False
    finally:
        gate.set()


def test_an_event_loop_awaits_the_new_version_without_blocking(manager: Manager) -> None:
    loaders = FakeLoaders("m")
    gate = in_gap(manager, loaders)

    async def scenario() -> tuple[bool, bool, int]:
        ticks = 0
        wait = asyncio.ensure_future(manager.wait_for_load_async("m", None, 60 * DEADLINE_S))
        # The loop keeps running other work while the request waits.
        while ticks < 20:
            await asyncio.sleep(0.001)
            ticks += 1
        pending = not wait.done()
        gate.set()
        return pending, await asyncio.wait_for(wait, DEADLINE_S), ticks

    pending, ready, ticks = asyncio.run(scenario())
    assert pending and ready and ticks == 20
    assert manager.available_versions("m") == [2]


def test_an_event_loop_waiter_gets_the_same_answers(manager: Manager) -> None:
    loaders = FakeLoaders("m")
    gate = in_gap(manager, loaders)
    try:
        assert asyncio.run(manager.wait_for_load_async("m", 1, 3600)) is False
        assert asyncio.run(manager.wait_for_load_async("m", None, 0.05)) is False
    finally:
        gate.set()
    wait_state(manager, "m", 2, A)
    assert asyncio.run(manager.wait_for_load_async("m", None, 3600)) is True
