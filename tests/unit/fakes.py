"""Fakes shared by unit tests: the one fake clock (with its sleep) and scripted loaders."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from serving.core.manager import AspiredVersion

DEADLINE_S = 30.0  # bound on any condition a test waits on; reached only when one fails


class FakeClock:
    """A clock that moves only when told, for every seam that takes one: the
    serving core's `Clock` (`now()`), the controller's clock callables
    (`clock()`), and a `sleep` that advances it instead of blocking (each
    sleep is recorded in `sleeps`)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def __call__(self) -> float:
        return self.now()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds


@dataclass
class Script:
    """How loads of one (version, fingerprint) behave.

    `failures` loads fail before one succeeds (-1: always fail); `gate`, when
    set, makes load() wait for it (bounded by DEADLINE_S) so a test can hold a
    load in flight.
    """

    failures: int = 0
    gate: threading.Event | None = None
    error: Exception = field(default_factory=lambda: RuntimeError("boom"))


@dataclass(frozen=True)
class Servable:
    model: str
    version: int
    fingerprint: str


class FakeLoader:
    def __init__(self, owner: FakeLoaders, aspired: AspiredVersion) -> None:
        self._owner = owner
        self._aspired = aspired

    def load(self) -> object:
        key = (self._aspired.version, self._aspired.fingerprint)
        script = self._owner.scripts.get(key, Script())
        self._owner.record(("load", self._aspired.version))
        if script.gate is not None:
            self._owner.started(self._aspired.version)
            if not script.gate.wait(DEADLINE_S):
                raise TimeoutError("test gate never opened")
        with self._owner.lock:
            attempts = self._owner.attempts.get(key, 0) + 1
            self._owner.attempts[key] = attempts
        if script.failures < 0 or attempts <= script.failures:
            raise script.error
        return Servable(self._owner.model, self._aspired.version, self._aspired.fingerprint)

    def unload(self) -> None:
        self._owner.record(("unload", self._aspired.version))


class FakeLoaders:
    """A loader factory for one model whose loaders follow per-version scripts."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.lock = threading.Lock()
        self.scripts: dict[tuple[int, str], Script] = {}
        self.attempts: dict[tuple[int, str], int] = {}
        self.events: list[tuple[str, int]] = []
        self._started: dict[int, threading.Event] = {}

    def __call__(self, aspired: AspiredVersion) -> FakeLoader:
        return FakeLoader(self, aspired)

    def script(self, version: int, fingerprint: str = "", **kwargs: object) -> Script:
        script = Script(**kwargs)  # type: ignore[arg-type]
        self.scripts[(version, fingerprint)] = script
        return script

    def record(self, event: tuple[str, int]) -> None:
        with self.lock:
            self.events.append(event)

    def started(self, version: int) -> None:
        self.load_started(version).set()

    def load_started(self, version: int) -> threading.Event:
        with self.lock:
            return self._started.setdefault(version, threading.Event())


def aspire(*versions: int, fingerprint: str = "") -> list[AspiredVersion]:
    return [AspiredVersion(v, f"/models/m/{v}", fingerprint) for v in versions]
