"""The server process: flags -> ServerCore -> gRPC and REST listeners -> signals.

Owns process lifetime: read the start-up settings (startup_settings), load
the startup config and wait for its models before opening any listener; wire
the data plane (wiring); run gRPC and (optionally) uvicorn for REST
(rest.server) in this process; re-read the config file when asked to poll it
(config_poller); on SIGTERM or SIGINT stop accepting, let in-flight requests
finish, unload, exit 0.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
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


from serving import listeners  # noqa: E402
from serving.config.compat import unsupported_notes  # noqa: E402
from serving.config.errors import StartupError  # noqa: E402
from serving.config.files import MonitoringSettings  # noqa: E402
from serving.config.flags import (  # noqa: E402
    USAGE_HINT,
    FlagError,
    ServerFlags,
    parse_flags,
)
from serving.config.tls import SSLSettings  # noqa: E402
from serving.config_poller import ConfigFilePoller  # noqa: E402
from serving.core.status import Code, ServingError  # noqa: E402
from serving.loaders.registry import default_registry  # noqa: E402
from serving.rest.server import RestServer  # noqa: E402
from serving.server_core import ServerCore  # noqa: E402
from serving.startup_settings import core_options, read_startup_settings  # noqa: E402
from serving.wiring import Wiring, wire_data_plane  # noqa: E402

log = logging.getLogger("serving")


# How long shutdown waits for in-flight requests before cutting them off.
DRAIN_SECONDS = 30.0
REST_START_TIMEOUT_S = 30.0


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname).1s %(name)s] %(message)s",
    )
    # TensorFlow gives its logger a stderr handler of its own when it is
    # imported before logging is set up (it is, by the loaders); through the
    # root's handler only, its lines are not printed twice.
    logging.getLogger("tensorflow").handlers.clear()


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
        settings = read_startup_settings(flags)
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

    apply_session_threads(settings.session)
    core = ServerCore(core_options(flags),
                      registry=default_registry(settings.loading))
    wiring = wire_data_plane(core, settings.batching, flags.enable_signature_method_name_check,
                             settings.per_model_batching,
                             flags.opportunistic_batching_max_batch_size
                             if flags.opportunistic_batching else 0)
    freeze_startup_heap()
    try:
        # A signal while the start-up models load stops the wait at once.
        log.info("Loading the start-up models: %d (a signal stops the wait)",
                 len(settings.config.model_config_list.config))
        core.reload_config(settings.config, cancelled=stop.is_set)
    except ServingError as exc:
        core.stop(timeout=10)
        if exc.code is Code.CANCELLED:
            name = signal.Signals(received[0]).name if received else "a signal"
            print(f"Start-up stopped by {name}: {exc.message}", file=sys.stderr)
            return 128 + (received[0] if received else signal.SIGINT)
        print(f"Failed to start server. Error: {exc.code.name}: {exc.message}", file=sys.stderr)
        return 1
    return serve(core, wiring, flags, settings.monitoring, stop, token=settings.token,
                 ssl=settings.ssl)


def apply_session_threads(config: Any) -> None:
    """A TF2 version served through its object graph (a Session refused it)
    runs on the process's own inter- and intra-op pools, so the session
    config's thread counts are set there too, once, before the first op
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
    credentials = listeners.grpc_credentials(flags, ssl)
    try:
        grpcs = listeners.build_grpc_listeners(core, wiring, flags, token, credentials)
    except RuntimeError as exc:
        why = (" (--use_alts_credentials: grpc creates ALTS credentials only on Google Cloud)"
               if flags.use_alts_credentials else "")
        print(f"Failed to start server. Error: {exc}{why}", file=sys.stderr)
        core.stop(timeout=10)
        return 1
    grpc_server, admin_server = grpcs.server, grpcs.admin
    grpc_server.start()
    print(f"Running gRPC ModelServer at {listeners.host(flags.bind_address)}:"
          f"{grpc_server.bound_port} ...",  # type: ignore[attr-defined]
          file=sys.stderr, flush=True)
    if admin_server is not None:
        admin_server.start()
        print(f"Running admin gRPC services at {admin_server.address} ...",  # type: ignore[attr-defined]
              file=sys.stderr, flush=True)

    rest_servers: list[RestServer] = []
    for app, bind, port, banner in listeners.rest_listeners(core, wiring, flags, monitoring,
                                                            token):
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
    if grpcs.health_service is not None:
        grpcs.health_service.drain()
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
