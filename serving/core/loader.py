"""The loader seam between the framework-neutral manager and a platform.

A loader turns one version directory into a servable object. The manager calls
`load()` on a load worker (it may be slow) and `unload()` on an unload worker
once no request holds a handle on the version any more. Platform loaders (for
example TensorFlow SavedModels) live in `serving/loaders/`, outside the core.
"""

from __future__ import annotations

from typing import Protocol


class Loader(Protocol):
    def load(self) -> object:
        """Return the servable; raise on failure.

        A `ServingError` keeps its code and message; any other exception
        becomes the version's error with code UNKNOWN.
        """
        ...

    def unload(self) -> None:
        """Release what `load()` acquired. Called at most once, after a successful load."""
        ...
