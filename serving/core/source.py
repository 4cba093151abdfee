"""The file-system polling source: version directories in, aspired versions out.

A thin I/O layer around `versions.py`: every poll lists each model's base
path, fingerprints every version directory by (relative path, size, mtime_ns)
of its files, and tells the manager which versions to aspire.

Rules, and why:
- A version is aspired only once complete: a SavedModel file present and the
  fingerprint unchanged since the previous poll (`ready_versions`). A freshly
  configured model therefore takes two polls: the first one only records what
  it saw. We do not trust a single observation, because at the moment a
  server starts or a model is added an upload into it may still be running,
  and a single listing cannot tell a finished copy from a paused one.
- A version that was aspired stays eligible while its directory exists, even
  if it changes meanwhile (the manager keeps serving it; its new fingerprint
  is sent once it is stable again, which retries it if it had failed).
- An error on one model (e.g. a missing base path) is recorded, keeps that
  model's aspired versions and never stops the other models' polls (TF
  Serving aborts the whole poll).
- With `servable_versions_always_present`, a poll that finds zero version
  directories leaves the aspired set untouched (TF Serving #1480, #2273);
  otherwise it unloads every version, as TF Serving does.
- `poll_interval_s <= 0` is TF Serving's "poll once", except that "once" must
  be two polls here: the thread polls until each model is past its first
  observation (`ONE_SHOT_SETTLE_S` apart), then again only after `set_models`.
- The thread spaces passes at least one interval apart, counting passes made
  by direct `poll_once()` calls, so the two observations behind "complete"
  are never a moment apart.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from serving.core.loader import Loader
from serving.core.manager import AspiredVersion, Manager
from serving.core.versions import (
    SAVED_MODEL_FILES,
    DirSnapshot,
    VersionPolicy,
    index_children,
    ready_versions,
    select_versions,
)

log = logging.getLogger(__name__)

ONE_SHOT_SETTLE_S = 1.0


@dataclass(frozen=True)
class ModelSource:
    name: str
    base_path: str
    policy: VersionPolicy
    loader_factory: Callable[[AspiredVersion], Loader]


@dataclass
class _ModelState:
    source: ModelSource
    seen: dict[int, DirSnapshot] | None = None  # None until the first poll
    aspired: dict[int, AspiredVersion] = field(default_factory=dict)
    warnings: frozenset[str] = frozenset()
    polls: int = 0  # successful polls so far


def fingerprint_dir(path: str) -> DirSnapshot:
    """Fingerprint a version directory by (relative path, size, mtime_ns) of its files."""
    digest = hashlib.sha256()
    rows: list[tuple[str, int, int]] = []
    # os.walk ignores errors: a directory vanishing mid-scan simply looks
    # empty (incomplete), which is what it is.
    for dirpath, _dirnames, filenames in os.walk(path):
        for filename in filenames:
            full = os.path.join(dirpath, filename)
            try:
                st = os.stat(full)
            except OSError:
                continue
            rows.append((os.path.relpath(full, path), st.st_size, st.st_mtime_ns))
    for rel, size, mtime_ns in sorted(rows):
        digest.update(f"{rel}\0{size}\0{mtime_ns}\n".encode())
    has_saved_model = any(os.path.isfile(os.path.join(path, f)) for f in SAVED_MODEL_FILES)
    return DirSnapshot(fingerprint=digest.hexdigest()[:32], has_saved_model=has_saved_model)


def _scan(source: ModelSource) -> tuple[dict[int, DirSnapshot], dict[int, str], list[str]]:
    """Snapshot every version directory under the base path; raise OSError if it is unreadable."""
    if not os.path.isdir(source.base_path):
        # TF Serving's wording (PollFileSystemForServable).
        raise FileNotFoundError(
            f"Could not find base path {source.base_path} for servable {source.name}"
        )
    by_version, warnings = index_children(os.listdir(source.base_path))
    snapshots: dict[int, DirSnapshot] = {}
    paths: dict[int, str] = {}
    for version, child in by_version.items():
        path = os.path.join(source.base_path, child)
        if os.path.isdir(path):  # a plain file named "3" can never hold a model
            snapshots[version] = fingerprint_dir(path)
            paths[version] = path
    return snapshots, paths, warnings


class FileSystemSource:
    def __init__(
        self,
        manager: Manager,
        *,
        poll_interval_s: float = 1.0,
        servable_versions_always_present: bool = False,
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        self._manager = manager
        self._interval = poll_interval_s
        self._always_present = servable_versions_always_present
        self._on_error = on_error
        self._lock = threading.Lock()  # guards _models and _errors
        self._poll_lock = threading.Lock()  # one poll pass at a time
        self._models: dict[str, _ModelState] = {}
        self._errors: dict[str, str] = {}
        self._wake = threading.Condition()
        self._stopping = False
        self._dirty = False
        self._last_poll = float("-inf")  # time.monotonic() after the last pass
        self._thread: threading.Thread | None = None

    def set_models(self, models: Sequence[ModelSource]) -> None:
        """Monitor exactly `models`; models no longer listed are removed from the manager.

        No I/O here: a new model is observed by the next poll (call
        `poll_once()` to hurry it).
        """
        wanted = {m.name: m for m in models}
        with self._lock:
            removed = [name for name in self._models if name not in wanted]
            for name in removed:
                del self._models[name]
                self._errors.pop(name, None)
            for name, source in wanted.items():
                state = self._models.get(name)
                if state is None or state.source.base_path != source.base_path:
                    # A new base path is a new directory: observe it afresh.
                    self._models[name] = _ModelState(source=source)
                else:
                    state.source = source
        for name in removed:
            self._manager.remove_model(name)
        with self._wake:
            self._dirty = True
            self._wake.notify_all()

    def errors(self) -> dict[str, str]:
        """The last poll's error per model, for models whose last poll failed."""
        with self._lock:
            return dict(self._errors)

    def poll_once(self, names: Collection[str] | None = None) -> None:
        """One pass over all models (or just `names`); an error on one model never
        stops the others. A config reload polls only the models it changed, so its
        cost does not grow with the number of untouched models."""
        with self._poll_lock:
            with self._lock:
                states = [
                    state
                    for name, state in self._models.items()
                    if names is None or name in names
                ]
            for state in states:
                self._poll_model(state)
            # Even a partial pass resets the spacing: the next observation of
            # these models comes a full interval later (completeness rule).
            with self._wake:
                self._last_poll = time.monotonic()

    def _poll_model(self, state: _ModelState) -> None:
        source = state.source
        try:
            current, paths, warnings = _scan(source)
        except OSError as exc:
            self._record_error(source.name, str(exc))
            return
        self._record_error(source.name, None)
        new_warnings = frozenset(warnings) - state.warnings
        for warning in sorted(new_warnings):
            log.warning("%s: %s", source.name, warning)
        state.warnings = frozenset(warnings)

        previous, state.seen = state.seen, current
        state.polls += 1
        if previous is None:
            return  # first observation: nothing can be known to be stable yet
        if not current and self._always_present:
            log.warning(
                "no versions of %s under %s; keeping what is aspired", source.name, source.base_path
            )
            return
        eligible = {
            v: AspiredVersion(v, paths[v], current[v].fingerprint)
            for v in ready_versions(previous, current)
        }
        for v, aspired in state.aspired.items():
            if v in current and v not in eligible:
                eligible[v] = aspired  # still there, changing: keep serving it as it was
        chosen = select_versions(source.policy, eligible)
        state.aspired = {v: eligible[v] for v in chosen}
        with self._lock:
            if self._models.get(source.name) is not state:
                return  # removed or re-pointed while we were scanning
        self._manager.set_aspired_versions(
            source.name,
            [state.aspired[v] for v in sorted(state.aspired, reverse=True)],
            source.loader_factory,
        )

    def _record_error(self, name: str, message: str | None) -> None:
        with self._lock:
            before = self._errors.get(name)
            if message is None:
                self._errors.pop(name, None)
                return
            self._errors[name] = message
        if message != before:  # report changes, not every failing poll
            log.error("file system poll for %s failed: %s", name, message)
            if self._on_error is not None:
                self._on_error(name, message)

    # ----- the polling thread -----

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="fs-source", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            with self._wake:
                if self._interval <= 0 and not self._awaiting_second_poll():
                    self._wake.wait_for(lambda: self._stopping or self._dirty)
                # Space polls at least `gap` apart, counting passes made by
                # poll_once() callers too: two observations a moment apart
                # would prove nothing about a directory being complete.
                gap = self._interval if self._interval > 0 else ONE_SHOT_SETTLE_S
                wait = max(0.0, self._last_poll + gap - time.monotonic())
                self._wake.wait_for(lambda: self._stopping, wait)
                if self._stopping:
                    return
                self._dirty = False
            try:
                self.poll_once()
            except Exception:  # keep polling; one bad pass must not end the source
                log.exception("file system poll failed")

    def _awaiting_second_poll(self) -> bool:
        with self._lock:
            return any(s.polls < 2 for s in self._models.values())
