"""Platform name -> loader factory (TF Serving's platform_config_map).

A factory turns a version directory into a `Loader`. Only `tensorflow` is
built in (loading with the server's SavedModelOptions: tags, session config,
warmup); other platforms (or test fakes) plug in with `register`. Importing
this module does not import TensorFlow: the TF loader is imported on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from serving.core.loader import Loader
from serving.core.status import Code, ServingError
from serving.loaders.options import DEFAULT_OPTIONS, SavedModelOptions

# A version directory path -> a loader for it.
LoaderFactory = Callable[[str], Loader]

TENSORFLOW = "tensorflow"


def tensorflow_factory(options: SavedModelOptions = DEFAULT_OPTIONS) -> LoaderFactory:
    def factory(path: str) -> Loader:
        from serving.loaders.tensorflow_loader import TensorFlowLoader

        return TensorFlowLoader(path, options)

    return factory


class PlatformRegistry:
    """The set of platforms this server can load, by name."""

    def __init__(self, factories: dict[str, LoaderFactory] | None = None) -> None:
        self._lock = threading.Lock()
        self._factories: dict[str, LoaderFactory] = dict(
            factories if factories is not None else {TENSORFLOW: tensorflow_factory()}
        )

    def register(self, platform: str, factory: LoaderFactory) -> None:
        with self._lock:
            self._factories[platform] = factory

    def platforms(self) -> list[str]:
        with self._lock:
            return sorted(self._factories)

    def factory(self, model_name: str, platform: str) -> LoaderFactory:
        """The factory for `platform`, or TF Serving's unsupported-platform error."""
        with self._lock:
            found = self._factories.get(platform)
        if found is None:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"Model {model_name} requests unsupported platform {platform}",
            )
        return found


def default_registry(options: SavedModelOptions | None = None) -> PlatformRegistry:
    return PlatformRegistry({TENSORFLOW: tensorflow_factory(options or DEFAULT_OPTIONS)})
