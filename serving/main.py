"""The server process: flags -> ServerCore -> gRPC and REST listeners -> signals.

Owns process lifetime and wiring: load the startup config and wait for its
models before opening any listener; wire one Metrics object, the DataPlane,
the hash-split router, PredictionService and the REST inference routes; run
gRPC and (optionally) uvicorn for REST in this process; re-read the config
file when asked to poll it; on SIGTERM or SIGINT stop accepting, let
in-flight requests finish, unload, exit 0.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import FrameType
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TF Serving's standard CPU build runs without oneDNN's custom ops; TensorFlow's
# pip wheel turns them on, and then an unloaded model's weights stay in
# oneDNN's allocator instead of being freed: a resource-preserving swap of a
# 100 MB model peaked at 1.84x one model's RSS, and at 1.00x with them off
# (benchmarks/bench_memory.py), at the same requests per second. Set it to 1
# to opt in.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import grpc  # noqa: E402
import uvicorn  # noqa: E402
from starlette.types import ASGIApp  # noqa: E402
from tensorflow_serving.config.model_server_config_pb2 import ModelServerConfig  # noqa: E402

from serving import limits, routing  # noqa: E402
from serving.admin_auth import (  # noqa: E402
    AdminInterceptor,
    AdminRestGuard,
    read_token_file,
)
from serving.batching import Batcher  # noqa: E402
from serving.config.batching import (  # noqa: E402
    BatchingOptions,
    options_from_flags,
)
from serving.config.compat import unsupported_notes  # noqa: E402
from serving.config.errors import StartupError  # noqa: E402
from serving.config.files import (  # noqa: E402
    ConfigFileError,
    MonitoringSettings,
    parse_model_server_config,
    read_model_server_config,
    read_monitoring_config,
    single_model_config,
)
from serving.config.flags import (  # noqa: E402
    USAGE_HINT,
    FlagError,
    ServerFlags,
    channel_arguments,
    parse_flags,
    saved_model_tags,
)
from serving.config.platform import read_platform_config  # noqa: E402
from serving.config.session import session_config  # noqa: E402
from serving.config.tls import SSLSettings, read_ssl_config  # noqa: E402
from serving.core.status import Code, ServingError  # noqa: E402
from serving.dataplane import DataPlane  # noqa: E402
from serving.generated import rollouts_serving_pb2  # noqa: E402
from serving.grpc import health, profiler_service  # noqa: E402
from serving.grpc import prediction_service as grpc_prediction_service
from serving.grpc.rollout_service import model_info  # noqa: E402
from serving.grpc.server import (  # noqa: E402
    alts_credentials,
    build_grpc_server,
    server_credentials,
)
from serving.grpc.tensor_limit import TensorLimitInterceptor  # noqa: E402
from serving.loaders.options import SavedModelOptions  # noqa: E402
from serving.loaders.registry import default_registry  # noqa: E402
from serving.metrics import LoadedVersions, Metrics, timed_loads  # noqa: E402
from serving.opportunistic import OpportunisticBatcher, planned_loads  # noqa: E402
from serving.rest.app import build_rest_app  # noqa: E402
from serving.rest.cors import Cors  # noqa: E402
from serving.rest.inference import DEFAULT_MAX_BODY_BYTES, RestInference  # noqa: E402
from serving.server_core import CoreOptions, ServableHandle, ServerCore  # noqa: E402
from serving.shadow import ShadowScorer  # noqa: E402
from serving.version_batching import VersionBatching  # noqa: E402

log = logging.getLogger("serving")

# How long shutdown waits for in-flight requests before cutting them off.
DRAIN_SECONDS = 30.0
REST_START_TIMEOUT_S = 30.0
# Admin calls are few (a controller or a person), but a reload can hold one
# thread for its whole deadline.
ADMIN_WORKERS = 8


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


@dataclass(frozen=True)
class DataPlaneCore:
    """ServerCore as the data plane sees it: the listing carries each model's
    versions, labels and split (what GET /v1/models prints), not just names."""

    core: ServerCore

    def handle(
        self,
        model: str,
        version: int | None = None,
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
        wait_s: float | None = None,
    ) -> AbstractContextManager[ServableHandle]:
        return self.core.handle(model, version, label, headers, wait_s)

    async def wait_for_version(
        self,
        model: str,
        version: int | None = None,
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
        wait_s: float | None = None,
    ) -> None:
        await self.core.wait_for_version(model, version, label, headers, wait_s)

    def list_models(self) -> Sequence[rollouts_serving_pb2.ModelInfo]:
        return [model_info(self.core, name) for name in self.core.list_models()]


@dataclass(frozen=True)
class Wiring:
    """The process's data plane: what serve() registers on gRPC and REST."""

    metrics: Metrics
    dataplane: DataPlane
    batcher: Batcher | OpportunisticBatcher | None = None
    shadow: ShadowScorer | None = None


def choose_batcher(batching: BatchingOptions | None, opportunistic: int, metrics: Metrics,
                   options_for: Callable[[Any], BatchingOptions | None] | None = None,
                   ) -> Batcher | OpportunisticBatcher | None:
    """--enable_batching (TF Serving's timed batching, one pool of batch threads
    for all models; `options_for`: per-model parameters) wins over
    opportunistic batching, whose `opportunistic` is its row bound (0: off): a
    deployment that asked for batch timeouts and allowed sizes gets exactly those."""
    if batching is not None:
        if opportunistic:
            log.info("--enable_batching is on: opportunistic batching is off")
        return Batcher(batching, metrics, options_for=options_for)
    if opportunistic:
        return OpportunisticBatcher(opportunistic, metrics)
    return None


def wire_data_plane(core: ServerCore, batching: BatchingOptions | None = None,
                    method_name_check: bool = False, per_model_batching: bool = False,
                    opportunistic: int = 0) -> Wiring:
    """One Metrics object fed by requests, loads and version states; the
    hash-split router; the data plane over the core. Call before the first
    reload so the startup loads are measured too. `per_model_batching`
    (with `batching`): each version batches as its batching_params.pbtxt says."""
    metrics = Metrics()
    versions = (VersionBatching(batching) if batching is not None and per_model_batching
                else None)
    for platform in core.registry.platforms():
        factory = timed_loads(core.registry.factory("", platform), metrics)
        core.registry.register(platform, versions.loads(factory) if versions else factory)
    core.add_listener(LoadedVersions(metrics))
    core.router = routing.route
    batcher = choose_batcher(batching, opportunistic, metrics,
                             versions.options_for if versions else None)
    if isinstance(batcher, OpportunisticBatcher):
        # Each version's batch plan is decided, and logged, as it loads.
        for platform in core.registry.platforms():
            core.registry.register(
                platform, planned_loads(core.registry.factory("", platform), batcher))
    # Shadow scoring is idle until a split sets a shadow rate.
    shadow = ShadowScorer(core, metrics)
    dataplane = DataPlane(DataPlaneCore(core), metrics, batcher=batcher, shadow=shadow,
                          method_name_check=method_name_check)
    return Wiring(metrics, dataplane, batcher, shadow)


def _rest_app(core: ServerCore, wiring: Wiring, flags: ServerFlags,
              monitoring: MonitoringSettings) -> ASGIApp:
    """Inference POSTs answered in front, the rest by Starlette."""
    inference = RestInference(
        wiring.dataplane,
        timeout_s=flags.rest_api_timeout_in_ms / 1000,
        max_concurrency=flags.rest_api_num_threads,
        metrics=wiring.metrics,
        max_body_bytes=flags.max_request_bytes or DEFAULT_MAX_BODY_BYTES,
        max_pending=flags.max_pending_requests,
        max_tensor_elements=flags.max_tensor_elements,
    )
    return inference.wrap(build_rest_app(core, extra_routes=inference.routes(),
                                         monitoring=monitoring, metrics=wiring.metrics))


def build_rest(core: ServerCore, wiring: Wiring, flags: ServerFlags,
               monitoring: MonitoringSettings, token: str = "") -> ASGIApp:
    """The main REST app; with `token` its admin paths are behind a bearer-token
    guard, and with --admin_rest_port they are refused (served there instead).
    Outermost, CORS: preflights, and the headers with --rest_api_enable_cors_support."""
    app = _rest_app(core, wiring, flags, monitoring)
    if token or flags.admin_rest_port:
        app = AdminRestGuard(app, token, serve_admin=not flags.admin_rest_port)
    return Cors(app, flags.rest_api_enable_cors_support)


def build_admin_rest(core: ServerCore, wiring: Wiring, flags: ServerFlags,
                     monitoring: MonitoringSettings, token: str = "") -> ASGIApp:
    """--admin_rest_port's app: the admin REST paths only, behind the token."""
    return Cors(AdminRestGuard(_rest_app(core, wiring, flags, monitoring), token,
                               admin_only=True), flags.rest_api_enable_cors_support)


class ConfigFilePoller:
    """Re-reads --model_config_file every N seconds and applies it when its text changed."""

    def __init__(self, core: ServerCore, path: str, interval_s: float, text: str) -> None:
        self._core = core
        self._path = path
        self._interval = interval_s
        self._last_text = text
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="config-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def poll_once(self) -> None:
        try:
            with open(self._path) as handle:
                text = handle.read()
        except OSError as exc:
            log.error("%s: cannot read config file: %s", self._path, exc)
            return
        if text == self._last_text:
            return
        # Remember the text even if it is bad, so one bad edit logs once.
        self._last_text = text
        try:
            config = parse_model_server_config(self._path, text)
            self._core.reload_config(config)
        except ConfigFileError as exc:
            log.error("%s; keeping the previous config", exc)
        except ServingError as exc:
            log.error("%s: reload failed: %s: %s", self._path, exc.code.name, exc.message)
        else:
            log.info("%s: applied the changed config", self._path)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.poll_once()


def _run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop when installed: it cut the REST path's CPU per request (see
    benchmarks/RESULTS.md); uvicorn.Server.serve() alone would not pick it."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


class RestServer:
    """uvicorn on its own thread with its own event loop."""

    def __init__(self, app: object, host: str, port: int, timeout_s: float) -> None:
        config = uvicorn.Config(
            app,  # type: ignore[arg-type]
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=int(max(timeout_s, 1)),
        )
        self.server = uvicorn.Server(config)
        # uvicorn installs signal handlers only on the main thread, so the
        # process-wide SIGTERM/SIGINT handling in main() stays ours.
        self._thread = threading.Thread(target=self._run, name="rest", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            _run_event_loop(self.server.serve())
        except BaseException as exc:  # reported by start()
            self.error = exc

    def start(self, timeout_s: float) -> None:
        self._thread.start()
        self._thread.join(0)
        deadline = threading.Event()
        waited = 0.0
        while not self.server.started and self._thread.is_alive() and waited < timeout_s:
            deadline.wait(0.05)
            waited += 0.05
        if not self.server.started:
            raise RuntimeError(f"REST server failed to start: {self.error or 'timeout'}")

    def stop(self, timeout_s: float) -> None:
        self.server.should_exit = True
        self._thread.join(timeout_s)


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname).1s %(name)s] %(message)s",
    )


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def main(argv: list[str] | None = None) -> int:
    """Parse argv and run; `serving.cli.main` answers --help and --version first."""
    try:
        flags = parse_flags(sys.argv[1:] if argv is None else argv)
    except FlagError as exc:
        print(f"{exc}\n{USAGE_HINT}", file=sys.stderr)
        return 2
    return run(flags)


def run(flags: ServerFlags) -> int:
    """The server process for parsed flags: exit code 0 after a clean shutdown."""
    _setup_logging()
    for note in unsupported_notes(flags):
        log.warning("%s", note)
    try:
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
    except FlagError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except StartupError as exc:
        print(str(exc), file=sys.stderr)
        return 1

    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    apply_session_threads(session)
    core = ServerCore(core_options(flags),
                      registry=default_registry(loading))
    wiring = wire_data_plane(core, batching, flags.enable_signature_method_name_check,
                             per_model_batching,
                             flags.opportunistic_batching_max_batch_size
                             if flags.opportunistic_batching else 0)
    freeze_startup_heap()
    try:
        # A signal while the start-up models load stops the wait at once.
        log.info("Loading the start-up models: %d (a signal stops the wait)",
                 len(config.model_config_list.config))
        core.reload_config(config, cancelled=stop.is_set)
    except ServingError as exc:
        core.stop(timeout=10)
        if exc.code is Code.CANCELLED:
            name = signal.Signals(received[0]).name if received else "a signal"
            print(f"Start-up stopped by {name}: {exc.message}", file=sys.stderr)
            return 128 + (received[0] if received else signal.SIGINT)
        print(f"Failed to start server. Error: {exc.code.name}: {exc.message}", file=sys.stderr)
        return 1
    return serve(core, wiring, flags, monitoring, stop, token=token, ssl=ssl)


def tensorflow_session_config(flags: ServerFlags) -> Any:
    """The session flags as a tensorflow ConfigProto (None: TensorFlow's defaults);
    the loaders' Session path takes it whole."""
    from tensorflow.core.protobuf import config_pb2

    return session_config(flags, config_pb2.ConfigProto())


def apply_session_threads(config: Any) -> None:
    """TF2 functions run on the process's own inter- and intra-op pools, so the
    session config's thread counts are set there, once, before the first op
    creates them (TensorFlow refuses a change afterwards)."""
    if config is None:
        return
    import tensorflow as tf

    if config.intra_op_parallelism_threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(config.intra_op_parallelism_threads)
    if config.inter_op_parallelism_threads > 0:
        tf.config.threading.set_inter_op_parallelism_threads(config.inter_op_parallelism_threads)


def freeze_startup_heap() -> None:
    """Move every object alive now (TensorFlow's modules, ours) out of the
    cycle collector's reach, before any model loads.

    Importing TensorFlow leaves about 280,000 tracked objects, and each full
    collection walks them all while holding the GIL: 110 ms on this machine,
    whether it is the explicit one that frees an unloaded model or one the
    allocations of a load trigger. Requests to other models stall for that
    long (TF Serving #1866). Frozen, a full collection walks only what came
    later and takes 1-2 ms. Models load after this, so their own cycles are
    still collected when they unload.
    """
    gc.collect()
    gc.freeze()


def build_admin_server(core: ServerCore, flags: ServerFlags, token: str,
                       credentials: grpc.ServerCredentials | None) -> grpc.Server | None:
    """With --admin_port: ModelService and RolloutService on their own listener
    (the main port then refuses the admin methods); else None."""
    if not flags.admin_port:
        return None
    address = f"{_host(flags.admin_bind_address or flags.bind_address)}:{flags.admin_port}"
    server = build_grpc_server(
        core, address=address, max_workers=ADMIN_WORKERS,
        interceptors=[AdminInterceptor(token)], credentials=credentials,
        max_receive_bytes=flags.max_request_bytes,
        maximum_concurrent_rpcs=limits.max_concurrent_rpcs(
            ADMIN_WORKERS, flags.max_pending_requests),
    )
    server.address = address  # type: ignore[attr-defined]
    return server


def serve(
    core: ServerCore,
    wiring: Wiring,
    flags: ServerFlags,
    monitoring: MonitoringSettings,
    stop: threading.Event,
    *,
    token: str = "",
    ssl: SSLSettings | None = None,
) -> int:
    host = _host(flags.bind_address)
    credentials = server_credentials(ssl) if ssl is not None else None
    if flags.use_alts_credentials:
        credentials = alts_credentials()
    interceptors: list[grpc.ServerInterceptor] = [
        AdminInterceptor(token, serve_admin=not flags.admin_port)
    ]
    if flags.max_tensor_elements:
        interceptors.append(TensorLimitInterceptor(flags.max_tensor_elements))

    health_service: health.HealthService | None = None

    def add_prediction_service(server: grpc.Server) -> None:
        grpc_prediction_service.add_to_server(
            wiring.dataplane, server, flags.enable_serialization_as_tensor_content)

    def add_health_service(server: grpc.Server) -> None:
        nonlocal health_service
        health_service = health.add_to_server(server)

    def add_profiler_service(server: grpc.Server) -> None:
        profiler_service.add_to_server(server)

    extra = [add_prediction_service]
    if flags.enable_grpc_healthcheck_service:
        extra.append(add_health_service)
    if flags.enable_profiler:
        extra.append(add_profiler_service)

    try:
        grpc_server = build_grpc_server(
            core,
            address=f"{host}:{flags.port}",
            extra_servicers=extra,
            max_workers=flags.grpc_max_threads,
            interceptors=interceptors,
            credentials=credentials,
            max_receive_bytes=flags.max_request_bytes,
            maximum_concurrent_rpcs=limits.max_concurrent_rpcs(
                flags.grpc_max_threads, flags.max_pending_requests),
            channel_arguments=channel_arguments(flags.grpc_channel_arguments),
        )
        if flags.grpc_socket_path:
            grpc_server.add_insecure_port(f"unix:{flags.grpc_socket_path}")
        admin_server = build_admin_server(core, flags, token, credentials)
    except RuntimeError as exc:
        why = (" (--use_alts_credentials: grpc creates ALTS credentials only on Google Cloud)"
               if flags.use_alts_credentials else "")
        print(f"Failed to start server. Error: {exc}{why}", file=sys.stderr)
        core.stop(timeout=10)
        return 1
    grpc_server.start()
    print(f"Running gRPC ModelServer at {host}:{grpc_server.bound_port} ...",  # type: ignore[attr-defined]
          file=sys.stderr, flush=True)
    if admin_server is not None:
        admin_server.start()
        print(f"Running admin gRPC services at {admin_server.address} ...",  # type: ignore[attr-defined]
              file=sys.stderr, flush=True)

    listeners: list[tuple[ASGIApp, str, int, str]] = []
    if flags.rest_api_port > 0:
        listeners.append((build_rest(core, wiring, flags, monitoring, token), flags.bind_address,
                          flags.rest_api_port,
                          f"Exporting HTTP/REST API at:{host}:{flags.rest_api_port} ..."))
        if flags.admin_rest_port > 0:
            admin_bind = flags.admin_bind_address or flags.bind_address
            listeners.append((build_admin_rest(core, wiring, flags, monitoring, token),
                              admin_bind, flags.admin_rest_port,
                              f"Exporting admin HTTP/REST API at:{_host(admin_bind)}:"
                              f"{flags.admin_rest_port} ..."))
    rest_servers: list[RestServer] = []
    for app, bind, port, banner in listeners:
        rest = RestServer(app, bind, port, DRAIN_SECONDS)
        try:
            rest.start(REST_START_TIMEOUT_S)
        except RuntimeError as exc:
            print(f"Failed to start server. Error: {exc}", file=sys.stderr)
            for started in rest_servers:
                started.stop(0)
            grpc_server.stop(grace=0)
            if admin_server is not None:
                admin_server.stop(grace=0)
            core.stop(timeout=10)
            return 1
        rest_servers.append(rest)
        print(banner, file=sys.stderr, flush=True)

    poller: ConfigFilePoller | None = None
    if flags.model_config_file and flags.model_config_file_poll_wait_seconds > 0:
        with open(flags.model_config_file) as handle:
            text = handle.read()
        poller = ConfigFilePoller(
            core, flags.model_config_file, flags.model_config_file_poll_wait_seconds, text
        )
        poller.start()

    stop.wait()
    log.info("Shutting down: draining in-flight requests")
    if health_service is not None:
        health_service.drain()
    if poller is not None:
        poller.stop()
    # Both stop accepting at once, then wait for what is in flight.
    drained = grpc_server.stop(grace=DRAIN_SECONDS)
    if admin_server is not None:
        admin_server.stop(grace=DRAIN_SECONDS)
    for rest in rest_servers:
        rest.stop(DRAIN_SECONDS)
    drained.wait(DRAIN_SECONDS)
    if wiring.batcher is not None:
        wiring.batcher.stop(DRAIN_SECONDS)
    if wiring.shadow is not None:
        wiring.shadow.stop(DRAIN_SECONDS)
    core.stop(timeout=DRAIN_SECONDS)
    log.info("Server stopped")
    return 0
