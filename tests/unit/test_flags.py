"""Command-line parsing: TF Serving's flag names, defaults and forms."""

from __future__ import annotations

import pytest

from serving.config.flags import FlagError, ServerFlags, parse_flags
from serving.core.policies import TransitionPolicy


def test_defaults_match_tensorflow_model_server() -> None:
    flags = parse_flags([])
    assert (flags.port, flags.rest_api_port, flags.model_name) == (8500, 0, "default")
    assert flags.file_system_poll_wait_seconds == 1
    assert flags.model_config_file_poll_wait_seconds == 0
    assert flags.max_num_load_retries == 5
    assert flags.load_retry_interval_micros == 60_000_000
    assert flags.rest_api_timeout_in_ms == 30000
    assert flags.bind_address == "0.0.0.0"
    assert flags.allow_version_labels_for_unavailable_models is False
    assert flags.version_transition_policy is TransitionPolicy.AVAILABILITY_PRESERVING
    assert flags.max_wait_for_version_ms == 30000


def test_equals_and_space_forms() -> None:
    flags = parse_flags(["--port=9000", "--rest_api_port", "9001", "-model_name", "m",
                         "--file_system_poll_wait_seconds=0.2"])
    assert (flags.port, flags.rest_api_port, flags.model_name) == (9000, 9001, "m")
    assert flags.file_system_poll_wait_seconds == 0.2


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--servable_versions_always_present"], True),
        (["--servable_versions_always_present=true"], True),
        (["--servable_versions_always_present=false"], False),
        (["--servable_versions_always_present", "--port=1"], True),
    ],
)
def test_boolean_forms(argv: list[str], expected: bool) -> None:
    assert parse_flags(argv).servable_versions_always_present is expected


def test_transition_policy_flag() -> None:
    flags = parse_flags(["--version_transition_policy=resource_preserving"])
    assert flags.version_transition_policy is TransitionPolicy.RESOURCE_PRESERVING


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--nope=1"], "Unknown command line flag 'nope'"),
        (["--port=abc"], "Illegal value 'abc' specified for flag 'port'"),
        (["--port"], "Missing value for flag 'port'"),
        (["--allow_version_labels_for_unavailable_models=maybe"], "Illegal value 'maybe'"),
        (["--version_transition_policy=eager"], "Illegal value 'eager'"),
        (["--rest_api_port=70000"], "between 0 and 65535"),
        (["--max_wait_for_version_ms=-1"], "--max_wait_for_version_ms must not be negative"),
        (["stray"], "Unexpected argument 'stray'"),
    ],
)
def test_errors_name_the_flag(argv: list[str], fragment: str) -> None:
    with pytest.raises(FlagError, match=fragment):
        parse_flags(argv)


def test_every_field_is_a_flag() -> None:
    flags = parse_flags([f"--{name}={value}" for name, value in [
        ("grpc_socket_path", "/tmp/s"), ("monitoring_config_file", "/m"),
        ("num_load_threads", "3"), ("num_unload_threads", "2"),
        ("reload_config_timeout_seconds", "1.5"),
    ]])
    assert flags == ServerFlags(grpc_socket_path="/tmp/s", monitoring_config_file="/m",
                                num_load_threads=3, num_unload_threads=2,
                                reload_config_timeout_seconds=1.5)
