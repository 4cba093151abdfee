"""Start-up settings from parsed flags: the ModelServerConfig to load, the
core's options, how versions load (SavedModel options, the session config)
and batch, the monitoring, TLS and admin-token settings. Reads the files the
flags name; raises FlagError or a StartupError, which `main` reports once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tensorflow_serving.config.model_server_config_pb2 import ModelServerConfig

from serving.admin_auth import read_token_file
from serving.config.batching import BatchingOptions, options_from_flags
from serving.config.files import (
    MonitoringSettings,
    read_model_server_config,
    read_monitoring_config,
    single_model_config,
)
from serving.config.flags import FlagError, ServerFlags, saved_model_tags
from serving.config.platform import read_platform_config
from serving.config.session import session_config
from serving.config.tls import SSLSettings, read_ssl_config
from serving.loaders.options import SavedModelOptions
from serving.server_core import CoreOptions


@dataclass(frozen=True)
class StartupSettings:
    """Everything start-up reads from the flags and the files they name."""

    config: ModelServerConfig
    monitoring: MonitoringSettings
    batching: BatchingOptions | None
    token: str
    ssl: SSLSettings | None
    per_model_batching: bool
    session: Any
    loading: SavedModelOptions


def read_startup_settings(flags: ServerFlags) -> StartupSettings:
    """The settings for `flags`, every file they name read and checked."""
    config = startup_config(flags)
    monitoring = (
        read_monitoring_config(flags.monitoring_config_file)
        if flags.monitoring_config_file
        else MonitoringSettings()
    )
    batching = options_from_flags(flags.enable_batching, flags.batching_parameters_file)
    token = read_token_file(flags.admin_token_file) if flags.admin_token_file else ""
    ssl = read_ssl_config(flags.ssl_config_file) if flags.ssl_config_file else None
    per_model_batching = flags.enable_per_model_batching_parameters
    session = tensorflow_session_config(flags)
    loading = saved_model_options(flags, session)
    if flags.platform_config_file:
        # The file replaces the session, batching, tag and warmup flags (server.cc).
        session, loading, batching, per_model_batching = platform_options(
            flags.platform_config_file)
    return StartupSettings(config, monitoring, batching, token, ssl, per_model_batching,
                           session, loading)


def core_options(flags: ServerFlags) -> CoreOptions:
    return CoreOptions(
        file_system_poll_wait_seconds=flags.file_system_poll_wait_seconds,
        allow_version_labels_for_unavailable_models=flags.allow_version_labels_for_unavailable_models,
        servable_versions_always_present=flags.servable_versions_always_present,
        reload_config_timeout_s=flags.reload_config_timeout_seconds,
        default_transition_policy=flags.version_transition_policy,
        max_num_load_retries=flags.max_num_load_retries,
        load_retry_interval_s=flags.load_retry_interval_micros / 1e6,
        num_load_threads=flags.num_load_threads,
        num_unload_threads=flags.num_unload_threads,
        model_root=flags.model_root,
        max_wait_for_version_s=flags.max_wait_for_version_ms / 1000,
    )


def saved_model_options(flags: ServerFlags, session: Any = None) -> SavedModelOptions:
    """How the tensorflow platform loads versions: --saved_model_tags,
    --enable_model_warmup, --num_request_iterations_for_warmup (TF Serving
    uses it only if > 0: each record once otherwise),
    --remove_unused_fields_from_bundle_metagraph, and the session config
    built from the session flags (`tensorflow_session_config`)."""
    return SavedModelOptions(
        tags=saved_model_tags(flags.saved_model_tags),
        session_config=session,
        enable_warmup=flags.enable_model_warmup,
        warmup_iterations=max(1, flags.num_request_iterations_for_warmup),
        remove_unused_meta_graph_fields=flags.remove_unused_fields_from_bundle_metagraph,
    )


def platform_options(path: str) -> tuple[Any, SavedModelOptions, BatchingOptions | None, bool]:
    """--platform_config_file: the session ConfigProto, the loading options,
    the batching options of its tensorflow platform and whether versions
    batch with their own batching_params.pbtxt."""
    from tensorflow.core.protobuf import config_pb2

    settings = read_platform_config(path, config_pb2.DESCRIPTOR)
    session = (config_pb2.ConfigProto.FromString(settings.session_config)
               if settings.session_config is not None else None)
    loading = SavedModelOptions(
        tags=settings.saved_model_tags, session_config=session,
        enable_warmup=settings.enable_model_warmup,
        warmup_iterations=settings.warmup_iterations,
        remove_unused_meta_graph_fields=settings.remove_unused_meta_graph_fields)
    return session, loading, settings.batching, settings.per_model_batching


def startup_config(flags: ServerFlags) -> ModelServerConfig:
    if flags.model_config_file:
        return read_model_server_config(flags.model_config_file)
    if not flags.model_base_path:
        raise FlagError("Either --model_config_file or --model_base_path must be set")
    return single_model_config(flags.model_name, flags.model_base_path)


def tensorflow_session_config(flags: ServerFlags) -> Any:
    """The session flags as a tensorflow ConfigProto (None: TensorFlow's defaults);
    the loaders' Session path takes it whole."""
    from tensorflow.core.protobuf import config_pb2

    return session_config(flags, config_pb2.ConfigProto())
