"""`--enable_per_model_batching_parameters`: which batching each loaded version gets.

TF Serving decides when it loads a version (bundle_factory_util's
GetPerModelBatchingParams): with batching on and per-model parameters on, a
version whose directory holds `batching_params.pbtxt` batches with that
file's queue options on the server's shared batch threads, and a version
without one is not batched. A file that does not parse, or asks for
something the batcher refuses, fails that version's load with the file and
line; other models and versions are untouched.

`VersionBatching.loads` wraps a platform's loader factory so the decision
is made as each version loads (before the model itself, so a bad file costs
no load) and forgotten as it unloads; the Batcher asks `options_for` which
options a servable's requests batch with. The decision is
serving.config.batching.version_batching; this module only keeps it.
"""

from __future__ import annotations

import threading

from serving.config.batching import BatchingConfigError, BatchingOptions, version_batching
from serving.core.loader import Loader
from serving.core.status import invalid_argument
from serving.loaders.registry import LoaderFactory


class VersionBatching:
    """Each loaded version's batching options (None: not batched)."""

    def __init__(self, common: BatchingOptions) -> None:
        self.common = common
        self._lock = threading.Lock()
        # id(servable) of every version loaded through `loads`; an entry
        # lives from its load to its unload, which waits for every handle.
        self._loaded: dict[int, BatchingOptions | None] = {}

    def loads(self, factory: LoaderFactory) -> LoaderFactory:
        def make(path: str) -> Loader:
            return _Loader(factory(path), path, self)

        return make

    def options_for(self, servable: object) -> BatchingOptions | None:
        """A version loaded by another factory batches as the server says."""
        with self._lock:
            return self._loaded.get(id(servable), self.common)

    def remember(self, servable: object, options: BatchingOptions | None) -> None:
        with self._lock:
            self._loaded[id(servable)] = options

    def forget(self, servable: object) -> None:
        with self._lock:
            self._loaded.pop(id(servable), None)


class _Loader:
    def __init__(self, loader: Loader, path: str, versions: VersionBatching) -> None:
        self._loader = loader
        self._path = path
        self._versions = versions
        self._servable: object | None = None

    def load(self) -> object:
        try:
            options = version_batching(self._versions.common, True, self._path)
        except BatchingConfigError as exc:
            raise invalid_argument(str(exc)) from exc
        servable = self._loader.load()
        self._versions.remember(servable, options)
        self._servable = servable
        return servable

    def unload(self) -> None:
        if self._servable is not None:
            self._versions.forget(self._servable)
            self._servable = None
        self._loader.unload()
