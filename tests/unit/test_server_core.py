"""ServerCore with fake loaders: reload validation, label rules, deadlines, resolution."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from tensorflow_serving.config import model_server_config_pb2

from serving.core.policies import TransitionPolicy
from serving.core.states import VersionState
from serving.core.status import Code, ServingError
from serving.generated import rollouts_serving_pb2
from serving.loaders.registry import PlatformRegistry
from serving.server_core import CoreOptions, ServerCore
from tests.helpers import WAIT_S, wait_for

# Loads of version directories containing this file block until released.
BLOCK = "block"
FAIL = "fail"


class FakeLoader:
    gates: dict[str, threading.Event] = {}

    def __init__(self, path: str) -> None:
        self.path = path
        self.unloaded = threading.Event()

    def load(self) -> object:
        # Block first, then fail: a version marked with both stays LOADING
        # until the test opens its gate, so the test sees that state.
        if (Path(self.path) / BLOCK).exists():
            gate = FakeLoader.gates.setdefault(self.path, threading.Event())
            gate.wait(120)  # failure-only: the test opens it
        if (Path(self.path) / FAIL).exists():
            raise ServingError(Code.INVALID_ARGUMENT, f"bad model at {self.path}")
        return self

    def unload(self) -> None:
        self.unloaded.set()


def add_version(base: Path, version: int, *markers: str) -> Path:
    """Write the version aside and rename it in, as exporters do: the poller
    never sees a version directory without its markers."""
    staging = base / f".staging-{version}"
    staging.mkdir(parents=True)
    (staging / "saved_model.pb").write_bytes(b"x")
    for marker in markers:
        (staging / marker).write_text("")
    return staging.rename(base / str(version))


def config(
    *models: tuple[str, Path], platform: str = "fake", **labels: int
) -> model_server_config_pb2.ModelServerConfig:
    result = model_server_config_pb2.ModelServerConfig()
    for name, base in models:
        entry = result.model_config_list.config.add(
            name=name, base_path=str(base), model_platform=platform
        )
        entry.model_version_policy.all.SetInParent()
        entry.version_labels.update(labels)
    return result


@pytest.fixture
def make_core() -> Iterator[Callable[..., ServerCore]]:
    cores: list[ServerCore] = []

    def make(**options: object) -> ServerCore:
        registry = PlatformRegistry({"fake": FakeLoader, "other": FakeLoader})
        opts = CoreOptions(file_system_poll_wait_seconds=0.02, **options)  # type: ignore[arg-type]
        core = ServerCore(opts, registry=registry)
        cores.append(core)
        return core

    yield make
    for gate in FakeLoader.gates.values():
        gate.set()
    for core in cores:
        core.stop(timeout=5)


def test_reload_loads_new_models_and_applies_labels(make_core, tmp_path: Path) -> None:
    core = make_core()
    add_version(tmp_path / "m", 1)
    add_version(tmp_path / "m", 2)
    core.reload_config(config(("m", tmp_path / "m"), stable=1), timeout_s=5)
    assert core.labels("m") == {"stable": 1}
    assert wait_for(lambda: core.manager.available_versions("m") == [2, 1])
    with core.handle("m") as handle:  # no version/label: the stable label wins
        assert (handle.version, handle.label) == (1, "stable")
    with core.handle("m", version=2) as handle:
        assert handle.version == 2 and handle.label is None
    assert [s.version for s in core.model_status("m")] == [2, 1]
    assert core.model_status("m", label="stable")[0].state is VersionState.AVAILABLE
    assert core.current_config().model_config_list.config[0].version_labels["stable"] == 1


@pytest.mark.parametrize(
    ("mutate", "code", "message"),
    [
        (
            lambda c: c.model_config_list.config.add(
                name="m", base_path="/x", model_platform="fake"
            ),
            Code.INVALID_ARGUMENT,
            "Illegal to list model m multiple times in config list",
        ),
        (
            lambda c: setattr(c.model_config_list.config[0], "base_path", "rel/m"),
            Code.INVALID_ARGUMENT,
            "Expected model m to have an absolute path or URI; got base_path()=rel/m",
        ),
        (
            lambda c: c.model_config_list.config.add(
                name="n", base_path="/x", model_platform="pytorch"
            ),
            Code.INVALID_ARGUMENT,
            "Model n requests unsupported platform pytorch",
        ),
        (
            lambda c: setattr(c.model_config_list.config[0], "model_platform", "other"),
            Code.INVALID_ARGUMENT,
            "Illegal to change a model's platform. For model m platform "
            "was fake and new platform requested is other",
        ),
    ],
)
def test_reload_validation_errors_keep_old_config(
    make_core, tmp_path: Path, mutate, code: Code, message: str
) -> None:
    core = make_core()
    add_version(tmp_path / "m", 1)
    core.reload_config(config(("m", tmp_path / "m")), timeout_s=5)
    bad = config(("m", tmp_path / "m"))
    mutate(bad)
    with pytest.raises(ServingError) as err:
        core.reload_config(bad, timeout_s=5)
    assert (err.value.code, err.value.message) == (code, message)
    assert core.current_config().model_config_list.config[0].model_platform == "fake"
    assert core.manager.available_versions("m") == [1]


def test_label_on_unavailable_version_is_refused(make_core, tmp_path: Path) -> None:
    core = make_core()
    add_version(tmp_path / "m", 1)
    core.reload_config(config(("m", tmp_path / "m"), stable=1), timeout_s=5)
    with pytest.raises(ServingError) as err:
        core.reload_config(config(("m", tmp_path / "m"), stable=1, canary=7), timeout_s=5)
    assert err.value.code is Code.FAILED_PRECONDITION
    assert err.value.message == (
        "Request to assign label to version 7 of model m, which is not currently "
        "available for inference"
    )
    assert core.labels("m") == {"stable": 1}


def test_allow_unavailable_covers_new_labels_only(make_core, tmp_path: Path) -> None:
    core = make_core(allow_version_labels_for_unavailable_models=True)
    add_version(tmp_path / "m", 1)
    core.reload_config(config(("m", tmp_path / "m"), stable=1), timeout_s=5)
    core.reload_config(config(("m", tmp_path / "m"), stable=1, canary=7), timeout_s=5)
    assert core.labels("m") == {"stable": 1, "canary": 7}
    with pytest.raises(ServingError) as err:  # moving an existing label still needs AVAILABLE
        core.reload_config(config(("m", tmp_path / "m"), stable=7, canary=7), timeout_s=5)
    assert err.value.code is Code.FAILED_PRECONDITION
    assert core.labels("m") == {"stable": 1, "canary": 7}


def test_labels_are_exactly_the_configs_labels(make_core, tmp_path: Path) -> None:
    # TF Serving's rule: the label map is rebuilt from the config on every reload.
    core = make_core()
    add_version(tmp_path / "m", 1)
    core.reload_config(config(("m", tmp_path / "m"), stable=1), timeout_s=5)
    assert core.labels("m") == {"stable": 1}
    core.reload_config(config(("m", tmp_path / "m")), timeout_s=5)
    assert core.labels("m") == {}


def test_reload_deadline_names_model_and_version(make_core, tmp_path: Path) -> None:
    core = make_core()
    add_version(tmp_path / "slow", 3, BLOCK)
    started = time.monotonic()
    with pytest.raises(ServingError) as err:
        core.reload_config(config(("slow", tmp_path / "slow")), timeout_s=0.5)
    assert time.monotonic() - started < 3
    assert err.value.code is Code.DEADLINE_EXCEEDED
    assert "name: slow version: 3" in err.value.message


def test_failed_load_is_reported_with_model_and_version(make_core, tmp_path: Path) -> None:
    core = make_core(max_num_load_retries=0)
    add_version(tmp_path / "bad", 4, FAIL)
    with pytest.raises(ServingError) as err:
        core.reload_config(config(("bad", tmp_path / "bad")), timeout_s=5)
    assert err.value.code is Code.UNKNOWN
    assert "{name: bad version: 4} due to error: INVALID_ARGUMENT: bad model at" in (
        err.value.message
    )


def test_missing_model_errors_match_tf_serving(make_core, tmp_path: Path) -> None:
    core = make_core()
    add_version(tmp_path / "m", 1)
    core.reload_config(config(("m", tmp_path / "m")), timeout_s=5)
    cases = [
        (
            lambda: core.model_status("nope"),
            Code.NOT_FOUND,
            "Could not find any versions of model nope",
        ),
        (
            lambda: core.model_status("m", version=9),
            Code.NOT_FOUND,
            "Could not find version 9 of model m",
        ),
        (
            lambda: core.model_status("m", label="x"),
            Code.INVALID_ARGUMENT,
            "Unrecognized servable version label: x",
        ),
        (
            lambda: core.handle("nope").__enter__(),
            Code.NOT_FOUND,
            "Servable not found for request: Latest(nope)",
        ),
        (
            lambda: core.handle("m", version=3).__enter__(),
            Code.NOT_FOUND,
            "Servable not found for request: Specific(m, 3)",
        ),
    ]
    for call, code, message in cases:
        with pytest.raises(ServingError) as err:
            call()
        assert (err.value.code, err.value.message) == (code, message)


def test_split_validation_and_router(make_core, tmp_path: Path) -> None:
    core = make_core()
    add_version(tmp_path / "m", 1)
    add_version(tmp_path / "m", 2)
    core.reload_config(config(("m", tmp_path / "m"), stable=1), timeout_s=5)
    assert wait_for(lambda: core.manager.available_versions("m") == [2, 1])
    split = rollouts_serving_pb2.Split(model_name="m", canary_weight_bp=5000)
    with pytest.raises(ServingError) as err:  # no canary label yet
        core.set_split(split)
    assert err.value.code is Code.INVALID_ARGUMENT
    core.reload_config(config(("m", tmp_path / "m"), stable=1, canary=2), timeout_s=5)
    with pytest.raises(ServingError):
        core.set_split(rollouts_serving_pb2.Split(model_name="m", canary_weight_bp=10001))
    core.set_split(split)
    core.router = lambda s, headers, labels: "canary" if headers.get("x") == "1" else None
    with core.handle("m", headers={"x": "1"}) as handle:
        assert (handle.version, handle.label) == (2, "canary")
    with core.handle("m", headers={}) as handle:
        assert (handle.version, handle.label) == (1, "stable")
    # kept model with both labels: split kept
    core.reload_config(config(("m", tmp_path / "m"), stable=1, canary=2), timeout_s=5)
    assert core.get_split("m") is not None
    # the shadow rate is set with the split; a peer is the other label's version
    assert core.shadow_peer("m", "stable") is None
    shadowed = rollouts_serving_pb2.Split(
        model_name="m", shadow=rollouts_serving_pb2.Shadow(sample=1.0, tolerance=0.5,
                                                           outputs=["y"]))
    core.set_split(shadowed)
    assert core.get_split("m") == shadowed
    peer = core.shadow_peer("m", "stable")
    assert peer is not None and (peer.version, peer.tolerance, peer.outputs) == (2, 0.5, ("y",))
    back = core.shadow_peer("m", "canary")
    assert back is not None and back.version == 1
    assert core.shadow_peer("m", None) is None
    core.clear_split("m")
    assert core.get_split("m") is None
    core.set_split(split)
    # the canary label goes: a split naming it cannot stay
    core.reload_config(config(("m", tmp_path / "m"), stable=1), timeout_s=5)
    assert core.get_split("m") is None


def test_removed_model_unloads_after_inflight_handle(make_core, tmp_path: Path) -> None:
    core = make_core()
    add_version(tmp_path / "a", 1)
    add_version(tmp_path / "b", 1)
    core.reload_config(config(("a", tmp_path / "a"), ("b", tmp_path / "b")), timeout_s=5)
    with core.handle("a") as handle:
        loader = handle.servable
        core.reload_config(config(("b", tmp_path / "b")), timeout_s=5)
        assert wait_for(lambda: core.model_status("a")[0].state is VersionState.UNLOADING)
        assert not loader.unloaded.is_set()
    assert wait_for(lambda: core.model_status("a")[0].state is VersionState.END)
    assert loader.unloaded.is_set()
    assert core.list_models() == ["b"]


# ----- requests in the gap of a resource-preserving swap wait for the new version


def latest_config(base: Path) -> model_server_config_pb2.ModelServerConfig:
    result = model_server_config_pb2.ModelServerConfig()
    result.model_config_list.config.add(name="m", base_path=str(base), model_platform="fake")
    return result  # no version policy: TF Serving's latest, one version


def state(core: ServerCore, version: int) -> VersionState | None:
    return next((s.state for s in core.manager.statuses("m") if s.version == version), None)


def swap_held_in_load(core: ServerCore, base: Path, *markers: str) -> threading.Event:
    """v1 serving, then v2 appears; its load (resource-preserving: after v1's
    unload) blocks until the returned gate is set."""
    add_version(base, 1)
    core.reload_config(latest_config(base), timeout_s=5)
    gate = FakeLoader.gates.setdefault(str(base / "2"), threading.Event())
    add_version(base, 2, BLOCK, *markers)
    assert core.manager.wait_until(lambda: state(core, 2) is VersionState.LOADING, 10)
    assert core.manager.available_versions("m") == []
    return gate


def in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []

    def run() -> None:
        try:
            out.append(fn())
        except ServingError as exc:
            out.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    return worker, out


def served_version(core: ServerCore, **kwargs: object) -> int:
    with core.handle("m", **kwargs) as handle:  # type: ignore[arg-type]
        return handle.version


RESOURCE = {"default_transition_policy": TransitionPolicy.RESOURCE_PRESERVING}


def test_a_request_in_the_gap_is_served_by_the_new_version(make_core, tmp_path: Path) -> None:
    core = make_core(max_wait_for_version_s=600.0, **RESOURCE)
    gate = swap_held_in_load(core, tmp_path / "m")
    latest, latest_out = in_thread(lambda: served_version(core))
    pinned, pinned_out = in_thread(lambda: served_version(core, version=2))
    latest.join(0.05)
    assert latest.is_alive() and pinned.is_alive()
    gate.set()
    latest.join(WAIT_S)
    pinned.join(WAIT_S)
    assert latest_out == pinned_out == [2]


def test_a_request_nothing_is_about_to_serve_fails_at_once(make_core, tmp_path: Path) -> None:
    core = make_core(max_wait_for_version_s=3600.0, **RESOURCE)
    gate = swap_held_in_load(core, tmp_path / "m")
    try:
        cases: list[tuple[dict[str, object], str]] = [
            ({"version": 1}, "Servable not found for request: Specific(m, 1)"),
            ({"version": 9}, "Servable not found for request: Specific(m, 9)"),
            ({"label": "nope"}, "Unrecognized servable version label: nope"),
        ]
        for kwargs, message in cases:
            worker, out = in_thread(partial(served_version, core, **kwargs))
            worker.join(WAIT_S)  # failure-only bound; an hour's wait would still be running
            assert not worker.is_alive()
            assert isinstance(out[0], ServingError) and out[0].message == message
    finally:
        gate.set()


def test_the_wait_is_bounded_by_the_request_and_the_flag(make_core, tmp_path: Path) -> None:
    core = make_core(max_wait_for_version_s=0.05, **RESOURCE)
    gate = swap_held_in_load(core, tmp_path / "m")
    try:
        for kwargs in ({}, {"wait_s": 3600.0}, {"wait_s": 0.0}):
            with pytest.raises(ServingError) as err:
                served_version(core, **kwargs)
            assert err.value.code is Code.NOT_FOUND
            assert err.value.message == "Servable not found for request: Latest(m)"
    finally:
        gate.set()


def test_a_failed_load_answers_the_waiting_request(make_core, tmp_path: Path) -> None:
    core = make_core(max_wait_for_version_s=600.0, max_num_load_retries=0, **RESOURCE)
    gate = swap_held_in_load(core, tmp_path / "m", FAIL)
    worker, out = in_thread(lambda: served_version(core))
    gate.set()
    worker.join(WAIT_S)
    assert isinstance(out[0], ServingError)
    assert out[0].message == "Servable not found for request: Latest(m)"


def test_an_event_loop_awaits_the_gap(make_core, tmp_path: Path) -> None:
    core = make_core(max_wait_for_version_s=600.0, **RESOURCE)
    gate = swap_held_in_load(core, tmp_path / "m")

    async def scenario() -> tuple[bool, int]:
        wait = asyncio.ensure_future(core.wait_for_version("m"))
        await asyncio.sleep(0.05)  # the loop is free meanwhile; the wait is not over
        pending = not wait.done()
        gate.set()
        await asyncio.wait_for(wait, WAIT_S)
        with core.handle("m", wait_s=0.0) as handle:
            return pending, handle.version

    assert asyncio.run(scenario()) == (True, 2)
