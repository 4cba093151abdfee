"""The polling source over real temporary directories, with a real manager and fake loaders."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.core import source as source_module
from serving.core.manager import AspiredVersion, Manager, VersionState
from serving.core.source import FileSystemSource, ModelSource, fingerprint_dir
from serving.core.versions import VersionPolicy
from tests.unit.fakes import DEADLINE_S, FakeClock, FakeLoaders

S, A, E = VersionState.START, VersionState.AVAILABLE, VersionState.END
LATEST = VersionPolicy("latest")


@pytest.fixture
def manager() -> Iterator[Manager]:
    clock = FakeClock()
    m = Manager(max_num_load_retries=0, clock=clock, sleep=clock.sleep)
    yield m
    m.stop(timeout=DEADLINE_S)


def make_version(base: Path, name: str, *, complete: bool = True) -> Path:
    path = base / name
    (path / "variables").mkdir(parents=True)
    (path / "variables" / "variables.data").write_bytes(b"weights")
    if complete:
        (path / "saved_model.pb").write_bytes(b"graph")
    return path


def grow(path: Path) -> None:
    """Change a version directory the way a running upload does (the size changes)."""
    with open(path / "variables" / "variables.data", "ab") as f:
        f.write(b"more")


def states(manager: Manager, model: str) -> dict[int, VersionState]:
    return {s.version: s.state for s in manager.statuses(model)}


def settle(manager: Manager, model: str, expected: dict[int, VersionState]) -> None:
    ok = manager.wait_until(lambda: states(manager, model) == expected, DEADLINE_S)
    assert ok, f"{model}: {states(manager, model)} != {expected}"


def model(name: str, base: Path, policy: VersionPolicy = LATEST) -> ModelSource:
    return ModelSource(name, str(base), policy, FakeLoaders(name))


def test_new_complete_version_is_aspired_on_the_second_poll(
    manager: Manager, tmp_path: Path
) -> None:
    version_dir = make_version(tmp_path, "1")
    seen: list[AspiredVersion] = []
    loaders = FakeLoaders("m")

    def factory(aspired: AspiredVersion) -> object:
        seen.append(aspired)
        return loaders(aspired)

    src = FileSystemSource(manager)
    src.set_models([ModelSource("m", str(tmp_path), LATEST, factory)])  # type: ignore[arg-type]
    src.poll_once()
    assert manager.models() == []  # one look proves nothing about completeness
    src.poll_once()
    settle(manager, "m", {1: A})
    assert seen == [
        AspiredVersion(1, str(version_dir), fingerprint_dir(str(version_dir)).fingerprint)
    ]
    assert src.errors() == {}


def test_incomplete_versions_are_not_aspired(manager: Manager, tmp_path: Path) -> None:
    make_version(tmp_path, "1")
    src = FileSystemSource(manager)
    src.set_models([model("m", tmp_path)])
    src.poll_once()
    src.poll_once()
    settle(manager, "m", {1: A})
    make_version(tmp_path, "2", complete=False)  # no saved_model.pb
    uploading = make_version(tmp_path, "3")  # complete but still being written
    for _ in range(3):
        grow(uploading)
        src.poll_once()
        # An aspired version would show up at once (START), before any load.
        assert states(manager, "m") == {1: A}
    src.poll_once()  # unchanged since the last poll: now it is ready
    settle(manager, "m", {3: A, 1: E})


def test_fingerprint_tracks_files_and_saved_model(tmp_path: Path) -> None:
    path = make_version(tmp_path, "1", complete=False)
    before = fingerprint_dir(str(path))
    assert not before.has_saved_model
    assert fingerprint_dir(str(path)) == before
    grow(path)
    assert fingerprint_dir(str(path)).fingerprint != before.fingerprint
    (path / "saved_model.pbtxt").write_text("graph")
    assert fingerprint_dir(str(path)).has_saved_model
    assert not fingerprint_dir(str(tmp_path / "missing")).has_saved_model


def test_removed_version_is_unloaded(manager: Manager, tmp_path: Path) -> None:
    make_version(tmp_path, "1")
    make_version(tmp_path, "2")
    src = FileSystemSource(manager)
    src.set_models([model("m", tmp_path, VersionPolicy("all"))])
    src.poll_once()
    src.poll_once()
    settle(manager, "m", {1: A, 2: A})
    shutil.rmtree(tmp_path / "2")
    src.poll_once()
    settle(manager, "m", {1: A, 2: E})


def test_missing_base_path_keeps_loaded_versions_and_does_not_stall_others(
    manager: Manager, tmp_path: Path
) -> None:
    base_a, base_b = tmp_path / "a", tmp_path / "b"
    make_version(base_a, "1")
    make_version(base_b, "1")
    reported: list[tuple[str, str]] = []
    src = FileSystemSource(manager, on_error=lambda name, msg: reported.append((name, msg)))
    src.set_models([model("a", base_a), model("b", base_b)])
    src.poll_once()
    src.poll_once()
    settle(manager, "a", {1: A})
    settle(manager, "b", {1: A})

    os.rename(base_a, tmp_path / "a.moved")
    make_version(base_b, "2")
    src.poll_once()
    src.poll_once()
    settle(manager, "b", {2: A, 1: E})  # b moved on
    assert states(manager, "a") == {1: A}  # a keeps serving
    message = f"Could not find base path {base_a} for servable a"
    assert src.errors() == {"a": message}
    assert reported == [("a", message)]  # reported once, not on every failing poll

    os.rename(tmp_path / "a.moved", base_a)
    src.poll_once()
    assert src.errors() == {}
    assert states(manager, "a") == {1: A}


@pytest.mark.parametrize("always_present", [True, False])
def test_zero_versions(manager: Manager, tmp_path: Path, always_present: bool) -> None:
    make_version(tmp_path, "1")
    src = FileSystemSource(manager, servable_versions_always_present=always_present)
    src.set_models([model("m", tmp_path)])
    src.poll_once()
    src.poll_once()
    settle(manager, "m", {1: A})
    shutil.rmtree(tmp_path / "1")
    src.poll_once()
    src.poll_once()
    if always_present:
        # A storage blip showing no versions unloads nothing (TF Serving #1480, #2273).
        # (An unload would have started inside poll_once: UNLOADING is set synchronously.)
        assert states(manager, "m") == {1: A}
    else:
        settle(manager, "m", {1: E})  # TF Serving's semantics: nothing aspired


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (VersionPolicy("latest"), {3: A}),
        (VersionPolicy("latest", num_versions=2), {3: A, 2: A}),
        (VersionPolicy("all"), {3: A, 2: A, 1: A}),
        (VersionPolicy("specific", versions=(1, 3, 9)), {3: A, 1: A}),
    ],
)
def test_version_policies(
    manager: Manager, tmp_path: Path, policy: VersionPolicy, expected: dict[int, VersionState]
) -> None:
    for name in ("1", "2", "3", "not-a-version"):
        make_version(tmp_path, name)
    src = FileSystemSource(manager)
    src.set_models([model("m", tmp_path, policy)])
    src.poll_once()
    src.poll_once()
    settle(manager, "m", expected)


def test_latest_ignores_an_incomplete_newer_version(manager: Manager, tmp_path: Path) -> None:
    make_version(tmp_path, "1")
    make_version(tmp_path, "2", complete=False)
    src = FileSystemSource(manager)
    src.set_models([model("m", tmp_path)])
    src.poll_once()
    src.poll_once()
    settle(manager, "m", {1: A})


def test_duplicate_version_dirs_load_the_one_tf_serving_picks(
    manager: Manager, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_version(tmp_path, "0001")
    make_version(tmp_path, "001")
    seen: list[str] = []
    loaders = FakeLoaders("m")

    def factory(aspired: AspiredVersion) -> object:
        seen.append(aspired.path)
        return loaders(aspired)

    src = FileSystemSource(manager)
    src.set_models([ModelSource("m", str(tmp_path), LATEST, factory)])  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="serving.core.source"):
        src.poll_once()
        src.poll_once()
    settle(manager, "m", {1: A})
    assert seen == [str(tmp_path / "001")]
    assert sum("Duplicate version directories" in r.message for r in caplog.records) == 1


def test_failed_version_is_retried_after_its_directory_changes(
    manager: Manager, tmp_path: Path
) -> None:
    path = make_version(tmp_path, "1")
    (path / "BROKEN").write_text("x")
    loaders = FakeLoaders("m")

    class CheckingLoader:
        def __init__(self, aspired: AspiredVersion) -> None:
            self._aspired = aspired

        def load(self) -> object:
            if os.path.exists(os.path.join(self._aspired.path, "BROKEN")):
                raise RuntimeError("corrupt model")
            return loaders(self._aspired).load()

        def unload(self) -> None:
            pass

    src = FileSystemSource(manager)
    src.set_models([ModelSource("m", str(tmp_path), LATEST, CheckingLoader)])
    src.poll_once()
    src.poll_once()
    settle(manager, "m", {1: E})
    src.poll_once()  # unchanged: no retry
    assert states(manager, "m") == {1: E}
    (path / "BROKEN").unlink()
    src.poll_once()  # changed: not yet stable
    assert states(manager, "m") == {1: E}
    src.poll_once()  # stable with a new fingerprint: retried
    settle(manager, "m", {1: A})


def test_models_dropped_from_the_config_are_removed(manager: Manager, tmp_path: Path) -> None:
    make_version(tmp_path / "a", "1")
    make_version(tmp_path / "b", "1")
    src = FileSystemSource(manager)
    src.set_models([model("a", tmp_path / "a"), model("b", tmp_path / "b")])
    src.poll_once()
    src.poll_once()
    settle(manager, "a", {1: A})
    src.set_models([model("b", tmp_path / "b")])
    settle(manager, "a", {1: E})
    assert manager.models() == ["b"]
    src.poll_once()
    assert states(manager, "a") == {1: E}


def test_polling_thread_picks_up_new_versions(manager: Manager, tmp_path: Path) -> None:
    make_version(tmp_path, "1")
    src = FileSystemSource(manager, poll_interval_s=0.02)
    src.set_models([model("m", tmp_path)])
    src.start()
    try:
        settle(manager, "m", {1: A})
        make_version(tmp_path, "2")
        settle(manager, "m", {2: A, 1: E})
    finally:
        src.stop()


def test_poll_interval_zero_polls_until_models_settle(
    manager: Manager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source_module, "ONE_SHOT_SETTLE_S", 0.02)
    make_version(tmp_path / "a", "1")
    src = FileSystemSource(manager, poll_interval_s=0)
    src.set_models([model("a", tmp_path / "a")])
    src.start()
    try:
        settle(manager, "a", {1: A})
        make_version(tmp_path / "b", "1")
        src.set_models([model("a", tmp_path / "a"), model("b", tmp_path / "b")])
        settle(manager, "b", {1: A})
    finally:
        src.stop()


def test_thread_waits_an_interval_after_a_direct_poll(manager: Manager, tmp_path: Path) -> None:
    make_version(tmp_path, "1")
    started: list[float] = []
    manager.add_listener(lambda s: started.append(time.monotonic()) if s.state is S else None)
    src = FileSystemSource(manager, poll_interval_s=0.3)
    src.set_models([model("m", tmp_path)])
    src.poll_once()  # the first observation, as ServerCore takes it on reload
    baseline = time.monotonic()
    src.start()
    try:
        settle(manager, "m", {1: A})
    finally:
        src.stop()
    # The confirming observation came a full interval later, not at once.
    assert started[0] - baseline >= 0.3 - 0.01
