"""`--platform_config_file`: TF Serving's PlatformConfigMap text for the tensorflow platform.

The file replaces what the session, batching, tag and warmup flags would say
(server.cc builds the same SessionBundleConfig from them when there is no
file): `platform_configs { key: "tensorflow" value { source_adapter_config {
[type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig]
{ legacy_config { session_config {...} batching_parameters {...}
saved_model_tags: "serve" enable_model_warmup: true ... } } } } }`.

The tensorflow-serving-api wheel ships platform_config.proto but not the
SessionBundleConfig messages inside the Any, so those are declared here in a
private pool (their real field names and numbers; the fields for TF Lite,
in-graph batching and fixed input tensors are left out, so a file that sets
one is refused naming it). The pool also needs TensorFlow's config.proto for
`session_config`: the caller passes its file descriptor, so this module
imports no TensorFlow. Every error names the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)
from google.protobuf.descriptor import FileDescriptor
from tensorflow_serving.config import platform_config_pb2

from serving.config.batching import BatchingConfigError, BatchingOptions, parse_batching_parameters
from serving.config.errors import StartupError

TENSORFLOW_PLATFORM = "tensorflow"
ADAPTER = "tensorflow.serving.SavedModelBundleSourceAdapterConfig"
SERVE_TAG = "serve"

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED


class PlatformConfigError(StartupError):
    """A platform config file that cannot be read, parsed or used."""


@dataclass(frozen=True)
class PlatformSettings:
    """The tensorflow platform's SessionBundleConfig, as the server uses it."""

    session_config: bytes | None  # a serialized tensorflow.ConfigProto; None: defaults
    batching: BatchingOptions | None  # None: no batching
    saved_model_tags: frozenset[str]
    enable_model_warmup: bool  # proto3: false unless the file says true (as in TF Serving)
    warmup_iterations: int
    # proto3 as well: a platform config file keeps the whole MetaGraphDef unless it says true.
    remove_unused_meta_graph_fields: bool = False
    # enable_per_model_batching_params: each version's batching_params.pbtxt;
    # only meaningful with batching_parameters, so false without them.
    per_model_batching: bool = False


def _add(pool: descriptor_pool.DescriptorPool, file: FileDescriptor, seen: set[str]) -> None:
    if file.name in seen:
        return
    for dependency in file.dependencies:
        _add(pool, dependency, seen)
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    pool.Add(proto)
    seen.add(file.name)


def _message(file: descriptor_pb2.FileDescriptorProto, name: str,
             fields: list[tuple[int, str, int, int, str]]) -> None:
    message = file.message_type.add(name=name)
    for number, field, kind, label, type_name in fields:
        message.field.add(name=field, number=number, type=kind, label=label,
                          type_name=type_name or None)


def _session_bundle_file(config_proto: str) -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="rollouts_session_bundle_config.proto", package="tensorflow.serving",
        syntax="proto3", dependency=["google/protobuf/wrappers.proto", config_proto])
    msg, i64, i32, s, b, u64 = (_F.TYPE_MESSAGE, _F.TYPE_INT64, _F.TYPE_INT32, _F.TYPE_STRING,
                                _F.TYPE_BOOL, _F.TYPE_UINT64)
    wrapped = ".google.protobuf."
    _message(file, "BatchingParameters", [
        (1, "max_batch_size", msg, _OPTIONAL, wrapped + "Int64Value"),
        (2, "batch_timeout_micros", msg, _OPTIONAL, wrapped + "Int64Value"),
        (3, "max_enqueued_batches", msg, _OPTIONAL, wrapped + "Int64Value"),
        (4, "num_batch_threads", msg, _OPTIONAL, wrapped + "Int64Value"),
        (5, "thread_pool_name", msg, _OPTIONAL, wrapped + "StringValue"),
        (6, "allowed_batch_sizes", i64, _REPEATED, ""),
        (7, "pad_variable_length_inputs", b, _OPTIONAL, ""),
    ])
    _message(file, "ModelWarmupOptions", [
        (1, "num_request_iterations", msg, _OPTIONAL, wrapped + "Int32Value"),
        (2, "num_model_warmup_threads", msg, _OPTIONAL, wrapped + "Int32Value"),
        (3, "model_name", s, _OPTIONAL, ""),
        (4, "model_version", i64, _OPTIONAL, ""),
        (5, "enable_all_batch_sizes_warmup", b, _OPTIONAL, ""),
    ])
    _message(file, "SessionBundleConfig", [
        (1, "session_target", s, _OPTIONAL, ""),
        (2, "session_config", msg, _OPTIONAL, ".tensorflow.ConfigProto"),
        (3, "batching_parameters", msg, _OPTIONAL, ".tensorflow.serving.BatchingParameters"),
        (4, "session_run_load_threadpool_index", msg, _OPTIONAL, wrapped + "Int32Value"),
        (5, "experimental_transient_ram_bytes_during_load", u64, _OPTIONAL, ""),
        (6, "saved_model_tags", s, _REPEATED, ""),
        (779, "enable_model_warmup", b, _OPTIONAL, ""),
        (780, "model_warmup_options", msg, _OPTIONAL, ".tensorflow.serving.ModelWarmupOptions"),
        (781, "enable_session_metadata", b, _OPTIONAL, ""),
        (782, "remove_unused_fields_from_bundle_metagraph", b, _OPTIONAL, ""),
        (788, "wrap_session_with_no_threading_params", b, _OPTIONAL, ""),
        (789, "enable_per_model_batching_params", b, _OPTIONAL, ""),
        (790, "enable_saved_model_config", b, _OPTIONAL, ""),
        (791, "mixed_precision", s, _OPTIONAL, ""),
        (786, "num_tflite_interpreters_per_pool", i32, _OPTIONAL, ""),
        (787, "num_tflite_pools", i32, _OPTIONAL, ""),
        (783, "prefer_tflite_model", b, _OPTIONAL, ""),
    ])
    _message(file, "SavedModelBundleSourceAdapterConfig", [
        (1000, "legacy_config", msg, _OPTIONAL, ".tensorflow.serving.SessionBundleConfig"),
    ])
    return file


def _pool(config_proto: FileDescriptor) -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    seen: set[str] = set()
    _add(pool, wrappers_pb2.DESCRIPTOR, seen)
    _add(pool, config_proto, seen)
    _add(pool, platform_config_pb2.DESCRIPTOR, seen)
    pool.Add(_session_bundle_file(config_proto.name))
    return pool


def _class(pool: descriptor_pool.DescriptorPool, name: str) -> Any:
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


def parse_platform_config(path: str, text: str, config_proto: FileDescriptor) -> PlatformSettings:
    """PlatformConfigMap text -> the tensorflow platform's settings.
    `config_proto`: tensorflow/core/protobuf/config.proto's file descriptor."""
    pool = _pool(config_proto)
    platforms: Any = _class(pool, "tensorflow.serving.PlatformConfigMap")()
    try:
        text_format.Parse(text, platforms, descriptor_pool=pool)
    except text_format.ParseError as exc:
        reason = str(exc).split(" : ", 1)[-1]
        raise PlatformConfigError(
            f"{path}:{exc.GetLine() or 0}:{exc.GetColumn() or 0}: Error parsing text-format"
            f" tensorflow.serving.PlatformConfigMap: {reason}") from exc
    others = sorted(set(platforms.platform_configs) - {TENSORFLOW_PLATFORM})
    if others:
        raise PlatformConfigError(f"{path}: platform {others[0]!r} is not supported here; only"
                                  f" {TENSORFLOW_PLATFORM!r} is")
    if TENSORFLOW_PLATFORM not in platforms.platform_configs:
        raise PlatformConfigError(f"{path}: no platform_configs entry for"
                                  f" {TENSORFLOW_PLATFORM!r}")
    packed = platforms.platform_configs[TENSORFLOW_PLATFORM].source_adapter_config
    if packed.type_url.rsplit("/", 1)[-1] != ADAPTER:
        raise PlatformConfigError(f"{path}: the tensorflow platform's source_adapter_config must"
                                  f" be a {ADAPTER}, not {packed.type_url or 'empty'}")
    adapter = _class(pool, ADAPTER).FromString(packed.value)
    legacy = adapter.legacy_config
    batching = None
    if legacy.HasField("batching_parameters"):
        try:
            batching = parse_batching_parameters(
                f"{path} (legacy_config.batching_parameters)",
                text_format.MessageToString(legacy.batching_parameters))
        except BatchingConfigError as exc:
            raise PlatformConfigError(str(exc)) from exc
    options = legacy.model_warmup_options
    iterations = (options.num_request_iterations.value
                  if options.HasField("num_request_iterations") else 0)
    return PlatformSettings(
        session_config=(legacy.session_config.SerializeToString()
                        if legacy.HasField("session_config") else None),
        batching=batching,
        saved_model_tags=frozenset(legacy.saved_model_tags) or frozenset({SERVE_TAG}),
        enable_model_warmup=bool(legacy.enable_model_warmup),
        warmup_iterations=max(1, iterations),
        remove_unused_meta_graph_fields=bool(legacy.remove_unused_fields_from_bundle_metagraph),
        per_model_batching=batching is not None and bool(legacy.enable_per_model_batching_params),
    )


def read_platform_config(path: str, config_proto: FileDescriptor) -> PlatformSettings:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise PlatformConfigError(
            f"{path}: cannot read platform config file: {exc.strerror or exc}") from exc
    return parse_platform_config(path, text, config_proto)
