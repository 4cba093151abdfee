"""`--batching_parameters_file`: TF Serving's text-format BatchingParameters.

Owns parsing the file (the message of servables/tensorflow/
session_bundle_config.proto, scalar fields wrapped like
`max_batch_size { value: 128 }`) into a frozen `BatchingOptions`, TF Serving's
defaults for every field left out, and the checks TF Serving makes before it
creates a batch scheduler. Every error names the file and line.

Also `--enable_per_model_batching_parameters` (SessionBundleConfig's
enable_per_model_batching_params): a version directory's own
`batching_params.pbtxt`, and which batching a version gets
(`version_batching`, TF Serving's GetPerModelBatchingParams).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)
from google.protobuf.message import Message

from serving.config.errors import StartupError

# server.cc names the pool this way when --enable_batching has no file.
DEFAULT_THREAD_POOL_NAME = "model_server_batch_threads"
# What a SavedModel version directory may hold (bundle_factory_util.cc).
PER_MODEL_FILE = "batching_params.pbtxt"


class BatchingConfigError(StartupError):
    """A batching parameters file that cannot be read, parsed or used."""


def _default_threads() -> int:
    # SharedBatchScheduler::Options: port::MaxParallelism(), the usable CPUs.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class BatchingOptions:
    """The batcher's settings; defaults are SharedBatchScheduler's QueueOptions."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = 0  # 0: one per CPU, resolved by `threads()`
    thread_pool_name: str = "batch_threads"
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False

    def threads(self) -> int:
        return self.num_batch_threads or _default_threads()


def default_options() -> BatchingOptions:
    """What `--enable_batching` without a parameters file means."""
    return BatchingOptions(thread_pool_name=DEFAULT_THREAD_POOL_NAME)


def _batching_parameters_class() -> type[Message]:
    # The tensorflow-serving-api wheel does not ship session_bundle_config_pb2,
    # so declare BatchingParameters (fields 1-7) in a private pool; the text
    # format it accepts is then exactly the real message's.
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(
        name="rollouts_batching_parameters.proto", package="tensorflow.serving",
        syntax="proto3", dependency=["google/protobuf/wrappers.proto"],
    )
    msg = file.message_type.add(name="BatchingParameters")
    wrapped = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
    for number, name, wrapper in (
        (1, "max_batch_size", "Int64Value"),
        (2, "batch_timeout_micros", "Int64Value"),
        (3, "max_enqueued_batches", "Int64Value"),
        (4, "num_batch_threads", "Int64Value"),
        (5, "thread_pool_name", "StringValue"),
    ):
        msg.field.add(name=name, number=number, type=wrapped, label=1,
                      type_name=f".google.protobuf.{wrapper}")
    msg.field.add(name="allowed_batch_sizes", number=6, label=3,
                  type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64)
    msg.field.add(name="pad_variable_length_inputs", number=7, label=1,
                  type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL)
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


_MESSAGE = _batching_parameters_class()


def _line_of(text: str, field: str) -> int:
    """The 1-based line where `field` is set (1 if it is not in the text)."""
    pattern = re.compile(rf"(^|[\s{{;,]){re.escape(field)}\b")
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.search(line.split("#", 1)[0]):
            return number
    return 1


def check(options: BatchingOptions) -> list[tuple[str, str]]:
    """TF Serving's checks, as (field, message) pairs; empty when usable.

    Messages follow bundle_factory_util.h CreateBatchScheduler and
    SharedBatchScheduler::AddQueue."""
    problems: list[tuple[str, str]] = []
    if options.max_batch_size <= 0:
        problems.append(("max_batch_size",
                         f"max_batch_size must be positive; was {options.max_batch_size}"))
    if options.batch_timeout_micros < 0:
        problems.append(("batch_timeout_micros", "batch_timeout_micros must be non-negative;"
                         f" was {options.batch_timeout_micros}"))
    if options.max_enqueued_batches <= 0:
        problems.append(("max_enqueued_batches", "max_enqueued_batches must be positive;"
                         f" was {options.max_enqueued_batches}"))
    if options.num_batch_threads < 0:
        problems.append(("num_batch_threads",
                         f"num_batch_threads must be >= 1; was {options.num_batch_threads}"))
    sizes = options.allowed_batch_sizes
    if sizes:
        if any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)) or sizes[0] <= 0:
            problems.append(("allowed_batch_sizes",
                             "allowed_batch_sizes entries must be monotonically increasing"))
        if sizes[-1] != options.max_batch_size:
            problems.append(("allowed_batch_sizes",
                             "Last entry in allowed_batch_sizes must match max_batch_size;"
                             f" last entry was {sizes[-1]}; expected {options.max_batch_size}"))
    return problems


def parse_batching_parameters(path: str, text: str, *, queue_only: bool = False
                              ) -> BatchingOptions:
    """Text-format BatchingParameters -> options; BatchingConfigError names file:line.
    `queue_only`: a version's own file, whose thread fields TF Serving never
    reads (no scheduler is made from it), so they are not checked either."""
    message: Any = _MESSAGE()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        line = exc.GetLine() or 0
        column = exc.GetColumn() or 0
        reason = str(exc).split(" : ", 1)[-1]
        raise BatchingConfigError(
            f"{path}:{line}:{column}: Error parsing text-format"
            f" tensorflow.serving.BatchingParameters: {reason}") from exc
    defaults = BatchingOptions()

    def wrapped(name: str) -> Any:
        return getattr(message, name).value if message.HasField(name) else getattr(defaults, name)

    # num_batch_threads set to 0 is an error in TF Serving, not "one per CPU".
    threads = message.num_batch_threads.value if message.HasField("num_batch_threads") else 0
    if message.HasField("num_batch_threads") and threads <= 0 and not queue_only:
        raise BatchingConfigError(
            f"{path}:{_line_of(text, 'num_batch_threads')}:"
            f" num_batch_threads must be >= 1; was {threads}")
    options = BatchingOptions(
        max_batch_size=int(wrapped("max_batch_size")),
        batch_timeout_micros=int(wrapped("batch_timeout_micros")),
        max_enqueued_batches=int(wrapped("max_enqueued_batches")),
        num_batch_threads=int(threads),
        thread_pool_name=str(wrapped("thread_pool_name")),
        allowed_batch_sizes=tuple(int(s) for s in message.allowed_batch_sizes),
        pad_variable_length_inputs=bool(message.pad_variable_length_inputs),
    )
    problems = check(options)
    if problems:
        field, reason = problems[0]
        raise BatchingConfigError(f"{path}:{_line_of(text, field)}: {reason}")
    return options


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise BatchingConfigError(
            f"{path}: cannot read batching parameters file: {exc.strerror or exc}") from exc


def read_batching_parameters(path: str) -> BatchingOptions:
    return parse_batching_parameters(path, _read(path))


def options_from_flags(enable_batching: bool, parameters_file: str) -> BatchingOptions | None:
    """--enable_batching / --batching_parameters_file -> options (None: batching off)."""
    if not enable_batching:
        return None
    if not parameters_file:
        return default_options()
    return read_batching_parameters(parameters_file)


def version_options(common: BatchingOptions, own: BatchingOptions) -> BatchingOptions:
    """A version batching with its own file: the file's queue options (sizes,
    timeout, queue depth, padding) on the server's batch threads. TF Serving
    shares one scheduler, so one thread pool, across every model; the file's
    num_batch_threads and thread_pool_name are ignored."""
    return replace(own, num_batch_threads=common.num_batch_threads,
                   thread_pool_name=common.thread_pool_name)


def read_version_parameters(version_dir: str) -> BatchingOptions | None:
    """The version's `batching_params.pbtxt`, or None if it has none."""
    path = os.path.join(version_dir, PER_MODEL_FILE)
    if not os.path.exists(path):
        return None
    return parse_batching_parameters(path, _read(path), queue_only=True)


def version_batching(common: BatchingOptions | None, per_model: bool, version_dir: str
                     ) -> BatchingOptions | None:
    """How the version at `version_dir` batches (None: it does not), as
    GetPerModelBatchingParams decides: batching off, nothing batches; per-model
    parameters off, the server's; on, the version's own file, and a version
    without one is not batched at all (TF Serving does not fall back on the
    server's parameters)."""
    if common is None:
        return None
    if not per_model:
        return common
    own = read_version_parameters(version_dir)
    return None if own is None else version_options(common, own)
