"""Command-line parsing: TF Serving's flag names, defaults and forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.config.compat import unsupported_notes
from serving.config.flags import (
    TF_SERVING_FLAGS,
    FlagError,
    ServerFlags,
    channel_arguments,
    parse_flags,
    saved_model_tags,
    usage,
    wants_help,
)
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


# Every flag tensorflow_model_server's main.cc defines, with server.h's default
# (grpc_max_threads, rest_api_num_threads and num_tflite_pools depend on the CPU
# count there; ours are fixed or counted here).
TF_SERVING_DEFAULTS: dict[str, object] = {
    "port": 8500, "grpc_socket_path": "", "rest_api_port": 0, "rest_api_timeout_in_ms": 30000,
    "rest_api_enable_cors_support": False, "enable_batching": False,
    "allow_version_labels_for_unavailable_models": False, "batching_parameters_file": "",
    "enable_per_model_batching_parameters": False, "model_config_file": "",
    "model_config_file_poll_wait_seconds": 0, "model_name": "default", "model_base_path": "",
    "num_load_threads": 0, "num_unload_threads": 0, "max_num_load_retries": 5,
    "load_retry_interval_micros": 60_000_000, "file_system_poll_wait_seconds": 1,
    "flush_filesystem_caches": True, "tensorflow_session_parallelism": 0,
    "tensorflow_session_config_file": "", "tensorflow_intra_op_parallelism": 0,
    "tensorflow_inter_op_parallelism": 0, "use_alts_credentials": False,
    "ssl_config_file": "", "platform_config_file": "", "per_process_gpu_memory_fraction": 0,
    "saved_model_tags": "serve", "grpc_channel_arguments": "", "enable_model_warmup": True,
    "num_request_iterations_for_warmup": 0, "version": False, "monitoring_config_file": "",
    "remove_unused_fields_from_bundle_metagraph": True, "prefer_tflite_model": False,
    "num_tflite_interpreters_per_pool": 1, "enable_signature_method_name_check": False,
    "xla_cpu_compilation_enabled": False, "xla_gpu_compilation_enabled": False,
    "enable_profiler": True, "thread_pool_factory_config_file": "", "mixed_precision": "",
    "skip_initialize_tpu": False, "enable_grpc_healthcheck_service": False,
    "enable_serialization_as_tensor_content": False,
}
CPU_DEPENDENT = {"grpc_max_threads", "rest_api_num_threads", "num_tflite_pools"}


def test_every_tensorflow_model_server_flag_with_its_default() -> None:
    assert set(TF_SERVING_FLAGS) == set(TF_SERVING_DEFAULTS) | CPU_DEPENDENT
    assert len(TF_SERVING_FLAGS) == 48
    flags = parse_flags([])
    for name, default in TF_SERVING_DEFAULTS.items():
        assert getattr(flags, name) == default, name


@pytest.mark.parametrize(
    ("arg", "name", "value"),
    [
        ("--rest_api_enable_cors_support", "rest_api_enable_cors_support", True),
        ("--enable_model_warmup=false", "enable_model_warmup", False),
        ("--num_request_iterations_for_warmup=3", "num_request_iterations_for_warmup", 3),
        ("--per_process_gpu_memory_fraction=0.25", "per_process_gpu_memory_fraction", 0.25),
        ("--mixed_precision=bfloat16", "mixed_precision", "bfloat16"),
        ("--enable_profiler=false", "enable_profiler", False),
        ("--saved_model_tags=serve,tpu", "saved_model_tags", "serve,tpu"),
        ("--tensorflow_intra_op_parallelism=2", "tensorflow_intra_op_parallelism", 2),
    ],
)
def test_tf_serving_flags_take_their_values(arg: str, name: str, value: object) -> None:
    assert getattr(parse_flags([arg]), name) == value


def test_unknown_flag_suggests_the_closest_one() -> None:
    with pytest.raises(FlagError, match="Unknown command line flag 'grpc_chanel_arguments';"
                       " did you mean '--grpc_channel_arguments'"):
        parse_flags(["--grpc_chanel_arguments=a=1"])
    with pytest.raises(FlagError, match="Unknown command line flag 'zzz'; --help lists"):
        parse_flags(["--zzz"])


def test_channel_arguments_ints_as_ints() -> None:
    assert channel_arguments("grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb") == (
        ("grpc.max_connection_age_ms", 2000), ("grpc.lb_policy_name", "grpclb"))
    assert channel_arguments("") == ()
    # Beyond int32 gRPC cannot take it as an int: passed as the string, as server.cc does.
    assert channel_arguments("a=4294967296,b=-5") == (("a", "4294967296"), ("b", -5))
    with pytest.raises(FlagError, match="'oops' is not key=value"):
        channel_arguments("a=1,oops")


def test_saved_model_tags_are_a_set() -> None:
    assert saved_model_tags("serve, tpu,") == frozenset({"serve", "tpu"})
    with pytest.raises(FlagError, match="at least one tag"):
        parse_flags(["--saved_model_tags=,"])


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--use_alts_credentials", "--ssl_config_file=/s"], "Either --use_alts_credentials"),
        (["--tensorflow_session_parallelism=2", "--tensorflow_intra_op_parallelism=2",
          "--tensorflow_inter_op_parallelism=2"], "not all three"),
        (["--per_process_gpu_memory_fraction=1.5"], "between 0.0 and 1.0"),
        (["--grpc_channel_arguments=novalue"], "not key=value"),
    ],
)
def test_tf_serving_combination_checks(argv: list[str], fragment: str) -> None:
    with pytest.raises(FlagError, match=fragment):
        parse_flags(argv)


def test_help_lists_every_flag_with_default_and_description() -> None:
    text = usage()
    for name in ServerFlags.__dataclass_fields__:
        assert f"  --{name}=" in text, name
    assert "  --enable_model_warmup=true  bool\n      replay" in text
    assert '  --saved_model_tags="serve"  string' in text
    assert wants_help(["--port=1", "--help"]) and wants_help(["-helpfull"])
    assert not wants_help(["--port=1"])


def test_unsupported_hardware_values_get_one_line_each() -> None:
    assert unsupported_notes(parse_flags([])) == []
    notes = unsupported_notes(parse_flags([
        "--per_process_gpu_memory_fraction=0.5", "--xla_gpu_compilation_enabled",
        "--mixed_precision=bfloat16", "--prefer_tflite_model=true",
        "--thread_pool_factory_config_file=/t"]))
    assert len(notes) == 5
    assert all("\n" not in note for note in notes)
    assert notes[0] == "--per_process_gpu_memory_fraction=0.5: this build has no GPU; ignored"
    # Per-model batching parameters mean nothing without batching, as in TF Serving.
    assert unsupported_notes(parse_flags(["--enable_per_model_batching_parameters"])) == [
        "--enable_per_model_batching_parameters without --enable_batching: nothing is batched"
        " and no batching_params.pbtxt is read (as in TF Serving)"]
    assert unsupported_notes(parse_flags(["--enable_per_model_batching_parameters",
                                          "--enable_batching"])) == []
    # Accepted without a word: they change nothing a CPU build does.
    assert unsupported_notes(parse_flags(["--skip_initialize_tpu", "--num_tflite_pools=3",
                                          "--xla_cpu_compilation_enabled"])) == []


def test_readme_migration_section_names_every_tf_serving_flag() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Migrating from TF Serving", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in TF_SERVING_FLAGS if f"`--{name}" not in section]
    assert missing == []
