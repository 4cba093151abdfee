"""ServerCore: applies a ModelServerConfig to the manager and resolves requests.

Owns what TF Serving's model_servers/server_core.cc owns: config validation
(the pure rules are in `config_rules`, with TF Serving's codes and messages),
the file-system source's model list, waiting for
new models with a deadline (`model_wait`), version labels with TF Serving's rules, and
turning (model, version | label | nothing) into a servable handle. On top of
TF Serving: a per-model traffic split between two labels, a per-model
transition policy, and a reload that never waits forever (TF Serving #1519).

Deliberate differences, all documented in ARCHITECTURE.md:
- A request with no version and no label follows the model's split if one is
  set, else the `stable` label, else the highest AVAILABLE version.
- A request that finds no servable version waits (bounded by its own
  deadline and --max_wait_for_version_ms) while one that would serve it is
  loading, e.g. through the gap of a resource-preserving swap; TF Serving
  fails it at once. A request nothing is about to serve still fails at once.
- A model's labels are exactly its ModelConfig's version_labels (TF Serving's
  rule: a config without labels clears them). Splits, set through our extension
  service, survive a reload that keeps the model and both of the split's labels.
"""

from __future__ import annotations

import copy
import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from tensorflow_serving.config.model_server_config_pb2 import ModelConfig, ModelServerConfig

from serving import routing
from serving.config.rules import (
    STABLE,
    check_labels,
    check_split,
    source_changed,
    split_labels_present,
    validate_config,
    version_policy,
)
from serving.core.clock import MONOTONIC, Clock
from serving.core.loader import Loader
from serving.core.manager import AspiredVersion, Manager, VersionStatus
from serving.core.policies import TransitionPolicy
from serving.core.source import FileSystemSource, ModelSource
from serving.core.status import Code, ServingError
from serving.generated import rollouts_serving_pb2
from serving.limits import check_model_root
from serving.loaders.base import Servable
from serving.loaders.registry import LoaderFactory, PlatformRegistry, default_registry
from serving.model_wait import wait_for_models

log = logging.getLogger(__name__)

Split = rollouts_serving_pb2.Split
Router = Callable[[Split, Mapping[str, str], Mapping[str, int]], str | None]
Listener = Callable[[VersionStatus], None]

DEFAULT_THREADS = 4
# Tries to take a handle per request: the version can be lost to a concurrent
# swap between being seen servable and being taken.
_MAX_TAKES = 8


@dataclass(frozen=True)
class CoreOptions:
    """ServerCore's knobs; main.py fills them from the flags."""

    file_system_poll_wait_seconds: float = 1.0
    allow_version_labels_for_unavailable_models: bool = False
    servable_versions_always_present: bool = False
    reload_config_timeout_s: float = 300.0
    default_transition_policy: TransitionPolicy = TransitionPolicy.AVAILABILITY_PRESERVING
    max_num_load_retries: int = 5
    load_retry_interval_s: float = 60.0
    num_load_threads: int = 4
    num_unload_threads: int = 4
    max_end_entries: int = 16
    # --max_wait_for_version_ms: how long a request may wait for a version on its way in.
    max_wait_for_version_s: float = 30.0
    # --model_root: every base path must resolve inside it ("" : anywhere).
    model_root: str = ""


@dataclass
class ServableHandle:
    """What one request holds: the resolved version and its servable."""

    model: str
    version: int
    label: str | None
    servable: Servable


@dataclass(frozen=True)
class ShadowPeer:
    """Where one sampled request is also scored, and how it is compared."""

    version: int
    tolerance: float
    outputs: tuple[str, ...]


@dataclass
class _State:
    """What the last applied config established, guarded by ServerCore._lock."""

    config: ModelServerConfig = field(default_factory=ModelServerConfig)
    platforms: dict[str, str] = field(default_factory=dict)
    labels: dict[str, dict[str, int]] = field(default_factory=dict)
    splits: dict[str, Split] = field(default_factory=dict)


def _default_router(split: Split, headers: Mapping[str, str], labels: Mapping[str, int]) -> None:
    return None


class ServerCore:
    """The model server's brain; gRPC and REST adapters call only this."""

    def __init__(
        self,
        options: CoreOptions | None = None,
        *,
        registry: PlatformRegistry | None = None,
        clock: Clock = MONOTONIC,
    ) -> None:
        self.options = options or CoreOptions()
        self.registry = registry or default_registry()
        self.router: Router = _default_router
        self._clock = clock
        self.manager = Manager(
            default_policy=self.options.default_transition_policy,
            # TF Serving's 0 means "load serially in the manager thread"; we
            # always use pools so one slow load never blocks another model.
            num_load_threads=self.options.num_load_threads or DEFAULT_THREADS,
            num_unload_threads=self.options.num_unload_threads or DEFAULT_THREADS,
            max_num_load_retries=self.options.max_num_load_retries,
            load_retry_interval_s=self.options.load_retry_interval_s,
            max_end_entries=self.options.max_end_entries,
            clock=clock,
        )
        self.source = FileSystemSource(
            self.manager,
            poll_interval_s=self.options.file_system_poll_wait_seconds,
            servable_versions_always_present=self.options.servable_versions_always_present,
            on_error=None,  # the source logs its own errors; reload reads errors()
        )
        self._reload_lock = threading.Lock()  # one reload at a time
        self._lock = threading.Lock()  # guards _state for fast reads
        self._state = _State()
        self._started = False

    # ----- config -----

    def reload_config(
        self,
        config: ModelServerConfig,
        timeout_s: float | None = None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        """Validate and apply `config`; wait (bounded) for new models; apply labels.

        Raises ServingError with TF Serving's code and message on invalid
        input, and naming the model and version when a new model fails to
        load or does not become available within the deadline; CANCELLED as
        soon as `cancelled()` holds while waiting (a signal during start-up).
        """
        timeout = self.options.reload_config_timeout_s if timeout_s is None else timeout_s
        with self._reload_lock:
            if config.WhichOneof("config") is None:
                log.info("Taking no action for empty config.")
                return
            with self._lock:
                old = copy.deepcopy(self._state)
            platforms = validate_config(config, old.platforms, self.registry)
            check_model_root(config, self.options.model_root)
            models = list(config.model_config_list.config)
            new_names = [m.name for m in models if m.name not in old.platforms]
            # Kept models' labels are checked before anything changes, so a
            # bad label leaves the last good config fully in place.
            wanted = self._wanted_labels(models, old.labels)
            for name in (m.name for m in models if m.name in old.platforms):
                self._check_model_labels(name, wanted.get(name, {}), old.labels.get(name, {}))
            self._apply_models(models, platforms, old)
            self._wait_for_models(new_names, timeout, cancelled)
            for name in new_names:
                self._check_model_labels(name, wanted.get(name, {}), {})
            with self._lock:
                self._state = _State(
                    config=copy.deepcopy(config),
                    platforms=platforms,
                    labels=wanted,
                    splits={
                        k: v
                        for k, v in old.splits.items()
                        if k in platforms and split_labels_present(v, wanted.get(k, {}))
                    },
                )
        log.info("Finished reloading config")

    def _wanted_labels(
        self, models: list[ModelConfig], current: Mapping[str, dict[str, int]]
    ) -> dict[str, dict[str, int]]:
        wanted: dict[str, dict[str, int]] = {}
        for model in models:
            if model.version_labels:
                wanted[model.name] = dict(model.version_labels)
        return wanted

    def _check_model_labels(
        self, model: str, wanted: Mapping[str, int], current: Mapping[str, int]
    ) -> None:
        check_labels(
            model,
            wanted,
            current,
            set(self.manager.available_versions(model)),
            self.options.allow_version_labels_for_unavailable_models,
        )

    def _apply_models(
        self, models: list[ModelConfig], platforms: Mapping[str, str], old: _State
    ) -> None:
        sources = []
        for model in models:
            factory = self.registry.factory(model.name, platforms[model.name])
            sources.append(
                ModelSource(
                    name=model.name,
                    base_path=model.base_path,
                    policy=version_policy(model),
                    loader_factory=_loader_factory(factory),
                )
            )
        # set_models also removes dropped models from the manager (unloading them).
        self.source.set_models(sources)
        # Observe new and changed models now rather than a poll interval later;
        # untouched models are left to the regular poll (a one-model change in a
        # config of hundreds costs one model's directory scan).
        previous = {m.name: m for m in old.config.model_config_list.config}
        changed = [m.name for m in models if source_changed(m, previous.get(m.name))]
        if changed:
            self.source.poll_once(changed)
        if not self._started:
            self.source.start()
            self._started = True

    def _wait_for_models(
        self, names: list[str], timeout: float, cancelled: Callable[[], bool] = lambda: False
    ) -> None:
        """Until each model serves, one fails, or the deadline (model_wait)."""
        wait_for_models(self.manager, self.source.errors, self._clock, names, timeout,
                        cancelled)

    def current_config(self) -> ModelServerConfig:
        """The applied config, with the labels currently in force."""
        with self._lock:
            config = copy.deepcopy(self._state.config)
            labels = copy.deepcopy(self._state.labels)
        for model in config.model_config_list.config:
            model.version_labels.clear()
            model.version_labels.update(labels.get(model.name, {}))
        return config

    def platform(self, model: str) -> str | None:
        with self._lock:
            return self._state.platforms.get(model)

    def base_path(self, model: str) -> str | None:
        with self._lock:
            for config in self._state.config.model_config_list.config:
                if config.name == model:
                    return str(config.base_path)
        return None

    # ----- labels, splits, policies -----

    def labels(self, model: str) -> dict[str, int]:
        with self._lock:
            return dict(self._state.labels.get(model, {}))

    def list_models(self) -> list[str]:
        with self._lock:
            return sorted(self._state.platforms)

    def set_split(self, split: Split) -> None:
        with self._lock:
            check_split(
                split,
                self._state.labels.get(split.model_name, {}),
                split.model_name in self._state.platforms,
            )
            stored = Split()
            stored.CopyFrom(split)
            self._state.splits[split.model_name] = stored

    def clear_split(self, model: str) -> None:
        with self._lock:
            self._state.splits.pop(model, None)

    def get_split(self, model: str) -> Split | None:
        with self._lock:
            found = self._state.splits.get(model)
        if found is None:
            return None
        result = Split()
        result.CopyFrom(found)
        return result

    def shadow_peer(self, model: str, served_label: str | None,
                    rand: Callable[[], float] = random.random) -> ShadowPeer | None:
        """Whether a request the `served_label` side answered is also scored on
        the other side of the model's split, and on which version (sampled per
        call; None also when both labels point at one version)."""
        with self._lock:
            split = self._state.splits.get(model)
            if split is None:
                return None
            peer = routing.shadow_peer(split, served_label, rand)
            labels = self._state.labels.get(model, {})
            version = labels.get(peer) if peer is not None else None
            if version is None or served_label is None or labels.get(served_label) == version:
                return None
            shadow = split.shadow
            return ShadowPeer(version, shadow.tolerance, tuple(shadow.outputs))

    def set_transition_policy(self, model: str, policy: TransitionPolicy | None) -> None:
        self.manager.set_policy(model, policy)

    def transition_policy(self, model: str) -> TransitionPolicy:
        return self.manager.policy(model)

    def add_listener(self, callback: Listener) -> None:
        self.manager.add_listener(callback)

    # ----- requests -----

    def resolve_label(self, model: str, label: str) -> int:
        version = self.labels(model).get(label)
        if version is None:
            raise ServingError(
                Code.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}"
            )
        return version

    def _default_label(self, model: str, headers: Mapping[str, str] | None) -> str | None:
        labels = self.labels(model)
        split = self.get_split(model)
        if split is not None:
            chosen = self.router(split, headers or {}, labels)
            if chosen is not None and chosen in labels:
                return chosen
        return STABLE if STABLE in labels else None

    def _target(
        self, model: str, version: int | None, label: str | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[int | None, str | None]:
        """The (version, label) a request resolves to; version None means the latest."""
        if not model:
            # server_core.cc ServableRequestFromModelSpec.
            raise ServingError(Code.INVALID_ARGUMENT, "ModelSpec has no name specified.")
        if version is None and label is None:
            label = self._default_label(model, headers)
        if label is not None:
            version = self.resolve_label(model, label)
        return version, label

    def _wait_budget(self, wait_s: float | None) -> float:
        limit = self.options.max_wait_for_version_s
        return limit if wait_s is None else max(min(limit, wait_s), 0.0)

    @contextmanager
    def handle(
        self,
        model: str,
        version: int | None = None,
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
        wait_s: float | None = None,
    ) -> Iterator[ServableHandle]:
        """A handle on the version a request resolves to, held for that request.

        If nothing can serve it now but a version that would is loading, waits
        for that version (at most `wait_s`, None: --max_wait_for_version_ms;
        never longer than that flag); a failed load or the end of the wait
        gets TF Serving's NOT_FOUND.
        """
        version, label = self._target(model, version, label, headers)
        deadline = self._clock.now() + self._wait_budget(wait_s)
        held = ExitStack()
        # Bounded: each pass either holds a handle, fails, or saw the version
        # become servable and lost it again to a concurrent swap.
        for attempt in range(_MAX_TAKES):
            try:
                served, servable = self._take(held, model, version)
                break
            except ServingError as exc:
                remaining = deadline - self._clock.now()
                if (exc.code is not Code.NOT_FOUND or attempt == _MAX_TAKES - 1
                        or not self.manager.wait_for_load(model, version, remaining)):
                    raise
        with held:
            yield ServableHandle(model, served, label, _as_servable(servable))

    async def wait_for_version(
        self,
        model: str,
        version: int | None = None,
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
        wait_s: float | None = None,
    ) -> None:
        """On an event loop: await (never block) until the request is servable, or
        nothing is about to serve it, or the wait (as in `handle`) ends. Errors
        are left to the `handle` call that follows."""
        try:
            version, _ = self._target(model, version, label, headers)
        except ServingError:
            return
        await self.manager.wait_for_load_async(model, version, self._wait_budget(wait_s))

    def _take(self, held: ExitStack, model: str, version: int | None) -> tuple[int, object]:
        """A handle on `version` (None: the highest AVAILABLE one), entered into `held`."""
        if version is not None:
            return version, held.enter_context(self.manager.handle(model, version))
        available = self.manager.available_versions(model)
        if available:
            try:
                return available[0], held.enter_context(self.manager.handle(model, available[0]))
            except ServingError as exc:
                if exc.code is not Code.NOT_FOUND:
                    raise
                # Unloaded between the listing and the handle: the caller looks again.
        raise ServingError(Code.NOT_FOUND, f"Servable not found for request: Latest({model})")

    def model_status(
        self, model: str, version: int | None = None, label: str | None = None
    ) -> list[VersionStatus]:
        """GetModelStatus: statuses highest version first, with TF Serving's errors."""
        if label is not None:
            version = self.resolve_label(model, label)
        statuses = self.manager.statuses(model)
        if version is not None:
            matching = [s for s in statuses if s.version == version]
            if not matching:
                raise ServingError(
                    Code.NOT_FOUND, f"Could not find version {version} of model {model}"
                )
            return matching
        if not statuses:
            raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {model}")
        return statuses

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling, then unload every version (waiting for in-flight handles)."""
        self.source.stop()
        self.manager.stop(timeout)


def _as_servable(obj: object) -> Servable:
    return obj  # type: ignore[return-value]


def _loader_factory(factory: LoaderFactory) -> Callable[[AspiredVersion], Loader]:
    def make(aspired: AspiredVersion) -> Loader:
        return factory(aspired.path)

    return make
