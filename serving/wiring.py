"""The process's data plane wired over the core: one Metrics object fed by
requests, loads and version states, the hash-split router, the batcher the
flags choose, the shadow scorer and the DataPlane; and the REST apps built
on it (the main one and --admin_rest_port's)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp

from serving import routing
from serving.admin_auth import AdminRestGuard
from serving.batching import Batcher
from serving.config.batching import BatchingOptions
from serving.config.files import MonitoringSettings
from serving.config.flags import ServerFlags
from serving.dataplane import DataPlane
from serving.generated import rollouts_serving_pb2
from serving.grpc.rollout_service import model_info
from serving.metrics import LoadedVersions, Metrics, timed_loads
from serving.opportunistic import OpportunisticBatcher, planned_loads
from serving.rest.app import build_rest_app
from serving.rest.cors import Cors
from serving.rest.inference import DEFAULT_MAX_BODY_BYTES, RestInference
from serving.server_core import ServableHandle, ServerCore
from serving.shadow import ShadowScorer
from serving.version_batching import VersionBatching

# The server process's one logger (serving.main logs there too).
log = logging.getLogger("serving")


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
