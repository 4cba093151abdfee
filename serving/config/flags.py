"""The server's command line: tensorflow_model_server's flags plus ours.

Owns flag names, defaults and parsing into a frozen `ServerFlags`. Accepts the
forms TF Serving's flag parser does: `--flag=value`, `--flag value`, and for
booleans a bare `--flag`, `--flag=true` or `--flag=false` (one leading dash
works too). Pure: argv in, flags or `FlagError` out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from serving.config.errors import StartupError
from serving.core.policies import TransitionPolicy


class FlagError(StartupError):
    """A bad command line; the message says which flag and why."""


@dataclass(frozen=True)
class ServerFlags:
    # tensorflow_model_server flags, same names and defaults (model_servers/main.cc).
    port: int = 8500
    grpc_socket_path: str = ""
    rest_api_port: int = 0
    rest_api_timeout_in_ms: int = 30000
    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: float = 0.0
    file_system_poll_wait_seconds: float = 1.0
    allow_version_labels_for_unavailable_models: bool = False
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60 * 1000 * 1000
    num_load_threads: int = 0
    num_unload_threads: int = 0
    monitoring_config_file: str = ""
    ssl_config_file: str = ""
    enable_batching: bool = False
    batching_parameters_file: str = ""
    # TF Serving defaults these to 4 x cores; ours is fixed (tests share 2 cores).
    grpc_max_threads: int = 32
    rest_api_num_threads: int = 32
    # Ours.
    bind_address: str = "0.0.0.0"
    version_transition_policy: TransitionPolicy = TransitionPolicy.AVAILABILITY_PRESERVING
    servable_versions_always_present: bool = False
    reload_config_timeout_seconds: float = 300.0
    # A request for a model with a version loading and none available waits this long.
    max_wait_for_version_ms: int = 30000
    # Security and limits (serving/admin_auth.py, serving/config/tls.py, serving/limits.py).
    admin_token_file: str = ""
    admin_port: int = 0  # 0: admin services on the main port
    admin_rest_port: int = 0  # 0: admin REST paths on the main REST port
    admin_bind_address: str = ""  # empty: --bind_address
    model_root: str = ""  # empty: base paths anywhere
    max_request_bytes: int = 0  # 0: REST 64 MiB, gRPC 2^31-1 (TF Serving's)
    max_tensor_elements: int = 0  # 0: only the codec's own ceiling
    max_pending_requests: int = 128  # beyond the worker threads; -1: unbounded


_FIELDS = {f.name: f for f in dataclasses.fields(ServerFlags)}
_DEFAULTS = ServerFlags()
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}

USAGE = "usage: python -m serving [--flag=value ...]\nflags:\n" + "\n".join(
    f"  --{name} (default: {getattr(_DEFAULTS, name)!s})" for name in _FIELDS
)


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
        raise FlagError(f"Illegal value '{raw}' specified for flag '{name}'") from None
    return raw


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
    for name in ("grpc_max_threads", "rest_api_num_threads"):
        if getattr(flags, name) < 1:
            raise FlagError(f"--{name} must be at least 1")
    for name in ("max_request_bytes", "max_tensor_elements", "max_wait_for_version_ms"):
        if getattr(flags, name) < 0:
            raise FlagError(f"--{name} must not be negative")


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
            raise FlagError(f"Unknown command line flag '{name}'")
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
