"""The server's command line: every tensorflow_model_server flag, plus ours.

Owns flag names, types, defaults and one-line descriptions (one table: the
`ServerFlags` fields and their metadata), parsing argv into a frozen
`ServerFlags`, the checks TF Serving makes on flag combinations, `--help`
text and the value syntax of list-valued flags (`--grpc_channel_arguments`,
`--saved_model_tags`). Accepts the forms TF Serving's flag parser does:
`--flag=value`, `--flag value`, and for booleans a bare `--flag`,
`--flag=true` or `--flag=false` (one leading dash works too). Pure: argv in,
flags or `FlagError` out; imports nothing heavy, so `--help` is instant.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from serving.config.errors import StartupError
from serving.core.policies import TransitionPolicy


class FlagError(StartupError):
    """A bad command line; the message says which flag and why."""


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _flag(default: Any, help: str, *, tf_serving: bool = True) -> Any:
    """A field with its --help line; `tf_serving=False` marks our own flags."""
    return dataclasses.field(default=default, metadata={"help": help, "tf_serving": tf_serving})


@dataclass(frozen=True)
class ServerFlags:
    # --- tensorflow_model_server's flags (model_servers/main.cc), same names,
    # types and defaults; server.h's Options for the defaults.
    port: int = _flag(8500, "gRPC port (0: no TCP gRPC listener)")
    grpc_socket_path: str = _flag("", "also serve gRPC on this UNIX socket path")
    rest_api_port: int = _flag(0, "HTTP/REST port (0: no REST listener)")
    # TF Serving defaults the two thread counts to 4 x cores; ours are fixed
    # (the limits in serving/limits.py are counted from them).
    rest_api_num_threads: int = _flag(32, "REST worker threads (TF Serving: 4 x CPUs)")
    rest_api_timeout_in_ms: int = _flag(30000, "deadline of one REST call, ms")
    rest_api_enable_cors_support: bool = _flag(
        False, "CORS headers on REST responses (preflights are answered either way)")
    enable_batching: bool = _flag(False, "merge concurrent calls into batches")
    allow_version_labels_for_unavailable_models: bool = _flag(
        False, "allow a new label to name a version that is not AVAILABLE yet")
    batching_parameters_file: str = _flag("", "BatchingParameters text file")
    enable_per_model_batching_parameters: bool = _flag(
        False, "read batching_params.pbtxt from each SavedModel dir (needs --enable_batching)")
    model_config_file: str = _flag("", "ModelServerConfig text file (overrides --model_name/"
                                       "--model_base_path)")
    model_config_file_poll_wait_seconds: float = _flag(
        0.0, "re-read --model_config_file every N s (0: read once)")
    model_name: str = _flag("default", "the model's name without --model_config_file")
    model_base_path: str = _flag("", "the model's base path without --model_config_file")
    num_load_threads: int = _flag(0, "threads loading versions (0: one at a time)")
    num_unload_threads: int = _flag(0, "threads unloading versions (0: one at a time)")
    max_num_load_retries: int = _flag(5, "retries of a failed load before giving up")
    load_retry_interval_micros: int = _flag(60 * 1000 * 1000, "wait between load retries, us")
    file_system_poll_wait_seconds: float = _flag(
        1.0, "poll base paths for versions every N s (0: once)")
    flush_filesystem_caches: bool = _flag(
        True, "flush TensorFlow's file system caches after loads (no cache locally: no-op)")
    tensorflow_session_parallelism: int = _flag(
        0, "intra- and inter-op threads (0: auto; ignored with --platform_config_file)")
    tensorflow_session_config_file: str = _flag("", "a ConfigProto text file for TensorFlow")
    tensorflow_intra_op_parallelism: int = _flag(0, "threads inside one op (0: auto)")
    tensorflow_inter_op_parallelism: int = _flag(0, "ops run at once (0: auto)")
    use_alts_credentials: bool = _flag(False, "Google ALTS credentials on the gRPC port")
    ssl_config_file: str = _flag("", "SSLConfig text file: TLS on the gRPC port")
    platform_config_file: str = _flag(
        "", "PlatformConfigMap text file (replaces the session and batching flags)")
    per_process_gpu_memory_fraction: float = _flag(0.0, "GPU memory share (no GPU here)")
    saved_model_tags: str = _flag("serve", "comma-separated tags of the MetaGraph to load")
    grpc_channel_arguments: str = _flag(
        "", "comma-separated key=value gRPC server arguments (ints as ints)")
    grpc_max_threads: int = _flag(32, "gRPC worker threads (TF Serving: 4 x CPUs)")
    enable_model_warmup: bool = _flag(
        True, "replay assets.extra/tf_serving_warmup_requests before serving a version")
    num_request_iterations_for_warmup: int = _flag(
        0, "replay each warmup record N times (0: once)")
    version: bool = _flag(False, "print the server's and TensorFlow's versions and exit")
    monitoring_config_file: str = _flag("", "MonitoringConfig text file (Prometheus)")
    remove_unused_fields_from_bundle_metagraph: bool = _flag(
        True, "keep only the SignatureDefs of a loaded MetaGraphDef in memory")
    prefer_tflite_model: bool = _flag(
        False, "serve model.tflite (no TF Lite here: saved_model.pb is served)")
    num_tflite_pools: int = _flag(_cpus(), "TF Lite interpreter pools (no TF Lite here)")
    num_tflite_interpreters_per_pool: int = _flag(1, "TF Lite interpreters per pool "
                                                     "(no TF Lite here)")
    enable_signature_method_name_check: bool = _flag(
        False, "require predict/classify/regress method_names on SignatureDefs")
    xla_cpu_compilation_enabled: bool = _flag(
        False, "XLA:CPU JIT (jit_compile functions always compile here)")
    xla_gpu_compilation_enabled: bool = _flag(False, "XLA:GPU JIT (no GPU here)")
    enable_profiler: bool = _flag(True, "TensorFlow's profiler service on the gRPC port")
    thread_pool_factory_config_file: str = _flag(
        "", "ThreadPoolFactoryConfig text file (checked; TensorFlow's own pools are used)")
    mixed_precision: str = _flag("", "mixed precision mode, e.g. bfloat16 (not applied here)")
    skip_initialize_tpu: bool = _flag(False, "skip TPU initialisation (no TPU here)")
    enable_grpc_healthcheck_service: bool = _flag(
        False, "grpc.health.v1.Health: SERVING once up, NOT_SERVING while draining")
    enable_serialization_as_tensor_content: bool = _flag(
        False, "Predict outputs as tensor_content bytes instead of typed fields")
    # --- ours.
    bind_address: str = _flag("0.0.0.0", "address the gRPC and REST ports listen on",
                              tf_serving=False)
    version_transition_policy: TransitionPolicy = _flag(
        TransitionPolicy.AVAILABILITY_PRESERVING,
        "availability_preserving | resource_preserving: how a version replaces another",
        tf_serving=False)
    servable_versions_always_present: bool = _flag(
        False, "a poll that lists no versions unloads nothing", tf_serving=False)
    reload_config_timeout_seconds: float = _flag(
        300.0, "deadline of one config reload", tf_serving=False)
    max_wait_for_version_ms: int = _flag(
        30000, "a request for a model with a version loading and none available waits this"
               " long, ms", tf_serving=False)
    # Opportunistic batching (serving/opportunistic.py): never waits, so on by
    # default; --enable_batching (TF Serving's timed batching) takes precedence.
    opportunistic_batching: bool = _flag(
        True, "extension: a call to an idle signature runs at once; calls arriving while one"
              " runs join the next call (signatures with an unknown leading dim only;"
              " off while --enable_batching is on)", tf_serving=False)
    opportunistic_batching_max_batch_size: int = _flag(
        64, "extension: the most rows one opportunistically batched call runs",
        tf_serving=False)
    # Security and limits (serving/admin_auth.py, serving/config/tls.py, serving/limits.py).
    admin_token_file: str = _flag("", "bearer token file the admin calls need",
                                  tf_serving=False)
    admin_port: int = _flag(0, "admin gRPC services on their own port (0: main port)",
                            tf_serving=False)
    admin_rest_port: int = _flag(0, "admin REST paths on their own port (0: main REST port)",
                                 tf_serving=False)
    admin_bind_address: str = _flag("", "address of the admin ports (empty: --bind_address)",
                                    tf_serving=False)
    model_root: str = _flag("", "base paths must resolve inside this directory",
                            tf_serving=False)
    max_request_bytes: int = _flag(0, "largest request body (0: REST 64 MiB, gRPC 2 GiB)",
                                   tf_serving=False)
    max_tensor_elements: int = _flag(0, "largest input tensor in elements (0: no cap)",
                                     tf_serving=False)
    max_pending_requests: int = _flag(128, "requests waiting beyond the worker threads "
                                           "(-1: unbounded)", tf_serving=False)


_FIELDS = {f.name: f for f in dataclasses.fields(ServerFlags)}
_DEFAULTS = ServerFlags()
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
HELP_FLAGS = ("help", "helpfull", "h")

# The flags tensorflow_model_server defines, in its own order.
TF_SERVING_FLAGS = tuple(name for name, f in _FIELDS.items() if f.metadata["tf_serving"])


def _default_text(name: str) -> str:
    value = getattr(_DEFAULTS, name)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, TransitionPolicy):
        return value.value
    return f'"{value}"' if isinstance(value, str) else str(value)


def _kind(name: str) -> str:
    value = getattr(_DEFAULTS, name)
    if isinstance(value, TransitionPolicy):
        return "|".join(policy.value for policy in TransitionPolicy)
    return {bool: "bool", int: "int", float: "float", str: "string"}[type(value)]


# After a bad command line: the error, then this (the full list is --help's).
USAGE_HINT = "usage: rollouts serve [--flag=value ...]; --help lists every flag"


def usage() -> str:
    """Every flag with its type, default and description (`--help`)."""
    lines = ["usage: rollouts serve [--flag=value ...]  (or python -m serving)", "",
             "tensorflow_model_server flags:"]
    for name in TF_SERVING_FLAGS:
        lines.append(_usage_line(name))
    lines += ["", "model-rollouts flags:"]
    lines += [_usage_line(name) for name in _FIELDS if name not in TF_SERVING_FLAGS]
    return "\n".join(lines) + "\n"


def _usage_line(name: str) -> str:
    head = f"  --{name}={_default_text(name)}  {_kind(name)}"
    return f"{head}\n      {_FIELDS[name].metadata['help']}"


def wants_help(argv: Sequence[str]) -> bool:
    return any(arg.lstrip("-") in HELP_FLAGS for arg in argv if arg.startswith("-"))


def _convert(name: str, raw: str) -> object:
    kind = type(getattr(_DEFAULTS, name))
    try:
        if kind is bool:
            lowered = raw.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(raw)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is TransitionPolicy:
            return TransitionPolicy(raw)
    except ValueError:
        raise FlagError(f"Illegal value '{raw}' specified for flag '{name}'"
                        f" (--{name} takes {_kind(name)})") from None
    return raw


# ------------------------------------------------------ list-valued flags

ChannelArgument = tuple[str, int | str]
_INT32 = re.compile(r"\s*[+-]?\d+\s*")


def channel_arguments(text: str) -> tuple[ChannelArgument, ...]:
    """`--grpc_channel_arguments`: "k=v,k2=v2" as gRPC server options. A value
    that is a 32-bit integer is passed as an int, anything else as a string
    (server.cc's rule; gRPC itself ignores keys it does not know)."""
    result: list[ChannelArgument] = []
    for item in text.split(",") if text else ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FlagError(f"--grpc_channel_arguments: '{item}' is not key=value")
        if _INT32.fullmatch(value) and -(2**31) <= int(value) < 2**31:
            result.append((key.strip(), int(value)))
        else:
            result.append((key.strip(), value))
    return tuple(result)


def saved_model_tags(text: str) -> frozenset[str]:
    """`--saved_model_tags`: the tag set a MetaGraphDef must carry exactly."""
    tags = frozenset(tag.strip() for tag in text.split(",") if tag.strip())
    if not tags:
        raise FlagError("--saved_model_tags must name at least one tag")
    return tags


def _check(flags: ServerFlags) -> None:
    for name in ("port", "rest_api_port", "admin_port", "admin_rest_port"):
        value = getattr(flags, name)
        if not 0 <= value <= 65535:
            raise FlagError(f"--{name} must be between 0 and 65535, got {value}")
    for name in ("model_config_file_poll_wait_seconds", "reload_config_timeout_seconds"):
        if getattr(flags, name) < 0:
            raise FlagError(f"--{name} must not be negative")
    if flags.batching_parameters_file and not flags.enable_batching:
        # server.cc's refusal, so a forgotten --enable_batching is not silent.
        raise FlagError("--batching_parameters_file is set without setting --enable_batching"
                        " to true.")
    for name in ("grpc_max_threads", "rest_api_num_threads",
                 "opportunistic_batching_max_batch_size"):
        if getattr(flags, name) < 1:
            raise FlagError(f"--{name} must be at least 1")
    for name in ("max_request_bytes", "max_tensor_elements", "max_wait_for_version_ms"):
        if getattr(flags, name) < 0:
            raise FlagError(f"--{name} must not be negative")
    if flags.use_alts_credentials and flags.ssl_config_file:
        raise FlagError("Either --use_alts_credentials must be false or --ssl_config_file"
                        " must be empty.")
    if (flags.tensorflow_session_parallelism > 0 and flags.tensorflow_intra_op_parallelism > 0
            and flags.tensorflow_inter_op_parallelism > 0):
        # server.cc refuses the three together: which one wins would be a guess.
        raise FlagError("Either configure --tensorflow_session_parallelism or"
                        " (--tensorflow_intra_op_parallelism,"
                        " --tensorflow_inter_op_parallelism) separately, not all three.")
    for name in ("tensorflow_session_parallelism", "tensorflow_intra_op_parallelism",
                 "tensorflow_inter_op_parallelism"):
        if getattr(flags, name) < 0:
            raise FlagError(f"--{name} must not be negative")
    if not 0.0 <= flags.per_process_gpu_memory_fraction <= 1.0:
        raise FlagError("--per_process_gpu_memory_fraction must be between 0.0 and 1.0")
    channel_arguments(flags.grpc_channel_arguments)
    saved_model_tags(flags.saved_model_tags)


def _unknown(name: str) -> FlagError:
    close = difflib.get_close_matches(name, list(_FIELDS), n=1, cutoff=0.6)
    hint = f"; did you mean '--{close[0]}'?" if close else "; --help lists every flag"
    return FlagError(f"Unknown command line flag '{name}'{hint}")


def parse_flags(argv: Sequence[str]) -> ServerFlags:
    """Parse argv (without the program name) into ServerFlags."""
    values: dict[str, object] = {}
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            raise FlagError(f"Unexpected argument '{arg}'")
        body = arg.lstrip("-")
        name, has_value, raw = body.partition("=")
        if name not in _FIELDS:
            raise _unknown(name)
        is_bool = isinstance(getattr(_DEFAULTS, name), bool)
        if not has_value:
            if is_bool and (i >= len(args) or args[i].lower() not in _TRUE | _FALSE):
                raw = "true"  # a bare boolean flag
            elif i < len(args):
                raw = args[i]
                i += 1
            else:
                raise FlagError(f"Missing value for flag '{name}'")
        values[name] = _convert(name, raw)
    flags = dataclasses.replace(_DEFAULTS, **values)  # type: ignore[arg-type]
    _check(flags)
    return flags
