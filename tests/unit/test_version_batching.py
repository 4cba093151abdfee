"""--enable_per_model_batching_parameters: each version's batching, decided as it loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.config.batching import PER_MODEL_FILE, BatchingOptions
from serving.core.status import Code, ServingError
from serving.version_batching import VersionBatching

COMMON = BatchingOptions(max_batch_size=32, num_batch_threads=2, thread_pool_name="pool")


class FakeLoader:
    def __init__(self, path: str, log: list[str]) -> None:
        self.path = path
        self.log = log

    def load(self) -> object:
        self.log.append(f"load {self.path}")
        return object()

    def unload(self) -> None:
        self.log.append(f"unload {self.path}")


def test_versions_batch_as_their_files_say_and_forget_it_on_unload(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / PER_MODEL_FILE).write_text("max_batch_size { value: 4 }\n")
    (tmp_path / "2").mkdir()
    log: list[str] = []
    batching = VersionBatching(COMMON)
    loads = batching.loads(lambda path: FakeLoader(path, log))
    with_file, without = loads(str(tmp_path / "1")), loads(str(tmp_path / "2"))
    first, second = with_file.load(), without.load()
    assert batching.options_for(first) == BatchingOptions(
        max_batch_size=4, num_batch_threads=2, thread_pool_name="pool")
    assert batching.options_for(second) is None
    # A servable some other factory loaded batches as the server says.
    assert batching.options_for(object()) == COMMON
    with_file.unload()
    assert log[-1] == f"unload {tmp_path / '1'}"
    assert batching.options_for(first) == COMMON


def test_a_bad_file_fails_the_load_naming_it_before_the_model_loads(tmp_path: Path) -> None:
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / PER_MODEL_FILE).write_text("max_batch_size { value: 8 }\nbogus: 1\n")
    log: list[str] = []
    loader = VersionBatching(COMMON).loads(lambda path: FakeLoader(path, log))(
        str(tmp_path / "3"))
    with pytest.raises(ServingError) as info:
        loader.load()
    assert info.value.code is Code.INVALID_ARGUMENT
    assert info.value.message.startswith(f"{tmp_path}/3/{PER_MODEL_FILE}:2:1: Error parsing")
    assert "bogus" in info.value.message
    assert log == []
