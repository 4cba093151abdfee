"""--batching_parameters_file parsing, defaults and TF Serving's checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.config.batching import (
    DEFAULT_THREAD_POOL_NAME,
    PER_MODEL_FILE,
    BatchingConfigError,
    BatchingOptions,
    check,
    options_from_flags,
    parse_batching_parameters,
    read_batching_parameters,
    version_batching,
)
from serving.config.flags import FlagError, parse_flags

FULL = """\
# tuned for the MLP
max_batch_size { value: 8 }
batch_timeout_micros { value: 2000 }
max_enqueued_batches { value: 3 }
num_batch_threads { value: 2 }
thread_pool_name { value: "mine" }
allowed_batch_sizes: 2
allowed_batch_sizes: 4
allowed_batch_sizes: 8
pad_variable_length_inputs: true
"""


def test_every_field_parses() -> None:
    assert parse_batching_parameters("b.cfg", FULL) == BatchingOptions(
        max_batch_size=8, batch_timeout_micros=2000, max_enqueued_batches=3,
        num_batch_threads=2, thread_pool_name="mine", allowed_batch_sizes=(2, 4, 8),
        pad_variable_length_inputs=True,
    )


def test_omitted_fields_take_shared_batch_scheduler_defaults() -> None:
    options = parse_batching_parameters("b.cfg", "max_batch_size { value: 16 }\n")
    assert options == BatchingOptions(max_batch_size=16)
    assert (options.batch_timeout_micros, options.max_enqueued_batches) == (0, 10)
    assert options.threads() >= 1  # one per CPU
    assert parse_batching_parameters("b.cfg", "").max_batch_size == 1000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_batch_size: 4\n", "b.cfg:1:17: Error parsing text-format"
                                " tensorflow.serving.BatchingParameters: "),
        ("\nmax_batch_sise { value: 4 }\n", "b.cfg:2:1: Error parsing text-format"),
        ("max_batch_size { value: 4 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: 3\n",
         "b.cfg:2: Last entry in allowed_batch_sizes must match max_batch_size;"
         " last entry was 3; expected 4"),
        ("max_batch_size { value: 4 }\nallowed_batch_sizes: 4\nallowed_batch_sizes: 4\n",
         "b.cfg:2: allowed_batch_sizes entries must be monotonically increasing"),
        ("max_batch_size { value: 0 }\n", "b.cfg:1: max_batch_size must be positive; was 0"),
        ("max_batch_size { value: 2 }\nmax_enqueued_batches { value: 0 }\n",
         "b.cfg:2: max_enqueued_batches must be positive; was 0"),
        ("batch_timeout_micros { value: -1 }\n",
         "b.cfg:1: batch_timeout_micros must be non-negative; was -1"),
        ("num_batch_threads { value: 0 }\n", "b.cfg:1: num_batch_threads must be >= 1; was 0"),
    ],
)
def test_errors_name_file_and_line(text: str, expected: str) -> None:
    with pytest.raises(BatchingConfigError) as info:
        parse_batching_parameters("b.cfg", text)
    assert str(info.value).startswith(expected)


def test_check_accepts_defaults() -> None:
    assert check(BatchingOptions()) == []


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(BatchingConfigError, match="cannot read batching parameters file"):
        read_batching_parameters(str(tmp_path / "missing.cfg"))


def test_options_from_flags(tmp_path: Path) -> None:
    path = tmp_path / "b.cfg"
    path.write_text(FULL)
    assert options_from_flags(False, "") is None
    default = BatchingOptions(thread_pool_name=DEFAULT_THREAD_POOL_NAME)
    assert options_from_flags(True, "") == default
    options = options_from_flags(True, str(path))
    assert options is not None and options.max_batch_size == 8


def test_flags() -> None:
    flags = parse_flags(["--enable_batching", "--batching_parameters_file=/b.cfg"])
    assert (flags.enable_batching, flags.batching_parameters_file) == (True, "/b.cfg")
    assert parse_flags([]).enable_batching is False
    with pytest.raises(FlagError, match="without setting --enable_batching"):
        parse_flags(["--batching_parameters_file=/b.cfg"])


# ----- --enable_per_model_batching_parameters: GetPerModelBatchingParams

COMMON = BatchingOptions(max_batch_size=64, batch_timeout_micros=5, num_batch_threads=3,
                         thread_pool_name="shared")


def version_dir(tmp_path: Path, text: str | None) -> str:
    (tmp_path / "1").mkdir(parents=True)
    if text is not None:
        (tmp_path / "1" / PER_MODEL_FILE).write_text(text)
    return str(tmp_path / "1")


def test_without_per_model_parameters_every_version_gets_the_servers(tmp_path: Path) -> None:
    path = version_dir(tmp_path, "max_batch_size { value: 2 }")
    assert version_batching(COMMON, False, path) == COMMON
    # Batching off: the file is never read, even with per-model parameters on.
    assert version_batching(None, True, version_dir(tmp_path / "x", "garbage")) is None


def test_a_versions_file_gives_its_queue_options_on_the_servers_threads(tmp_path: Path) -> None:
    options = version_batching(COMMON, True, version_dir(tmp_path, FULL))
    assert options == BatchingOptions(
        max_batch_size=8, batch_timeout_micros=2000, max_enqueued_batches=3,
        num_batch_threads=3, thread_pool_name="shared", allowed_batch_sizes=(2, 4, 8),
        pad_variable_length_inputs=True)
    # Fields the file leaves out take BatchingParameters' defaults, not the server's.
    lone = version_batching(COMMON, True, version_dir(tmp_path / "y", ""))
    assert lone == BatchingOptions(num_batch_threads=3, thread_pool_name="shared")


def test_a_version_without_a_file_is_not_batched(tmp_path: Path) -> None:
    # TF Serving does not fall back on the server's parameters here.
    assert version_batching(COMMON, True, version_dir(tmp_path, None)) is None


def test_a_versions_thread_fields_are_ignored_not_checked(tmp_path: Path) -> None:
    path = version_dir(tmp_path, "num_batch_threads { value: 0 }\nmax_batch_size { value: 4 }")
    options = version_batching(COMMON, True, path)
    assert options is not None and (options.num_batch_threads, options.max_batch_size) == (3, 4)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("max_batch_size { value: 4 }\nallowed_batch_sizes: 2\n", ":2: Last entry in allowed"),
        ("\nmax_batch_size { valu: 4 }", ":2:18: Error parsing text-format"),
        ("max_batch_size { value: 0 }", ":1: max_batch_size must be positive"),
    ],
)
def test_a_bad_versions_file_names_the_file_and_line(tmp_path: Path, text: str,
                                                     where: str) -> None:
    path = version_dir(tmp_path, text)
    with pytest.raises(BatchingConfigError) as info:
        version_batching(COMMON, True, path)
    assert str(info.value).startswith(f"{path}/{PER_MODEL_FILE}{where}")
