"""Bounded client traffic for the demo: REST predicts from a pool of hashed user ids.

A few worker threads share one request budget (`max_requests`, `max_seconds`) and
a target rate, so the load stays gentle on a small machine and always ends. Each
request carries `x-user-id` (a hash of a user number, so the server's hash split
keeps every user on one side) and an input drawn from [0, 10). Replies are counted
per served version and label (the X-Model-Version / X-Model-Label headers), per
HTTP status, and timed.

Error replies carry no version header, so client-side errors are counted per
status only; per-version error rates come from the server's metrics, as the
controller sees them.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

RECENT_S = 5.0  # the window of the "recent" rate and p99 columns
_RECENT_MAX = 20_000  # latency samples kept (bounded memory)


def user_id(number: int) -> str:
    """A stable, anonymous-looking id for user `number`."""
    return hashlib.sha256(f"demo-user-{number}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class VersionStats:
    requests: int
    recent_rps: float
    recent_p99_ms: float | None


@dataclass(frozen=True)
class TrafficSnapshot:
    sent: int
    ok: int
    errors: int
    unreachable: int
    statuses: dict[int, int]
    versions: dict[str, VersionStats]
    labels: dict[str, int]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))
    return ordered[rank]


@dataclass
class _Tally:
    """Counters shared by the workers; every access holds `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0
    unreachable: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    recent: deque[tuple[float, str, float]] = field(
        default_factory=lambda: deque(maxlen=_RECENT_MAX)
    )


class TrafficGenerator:
    """Start with `start()`, read with `snapshot()`, end with `stop()` (idempotent)."""

    def __init__(
        self,
        rest_url: str,
        model: str,
        *,
        workers: int = 4,
        rate_per_s: float = 120.0,
        max_requests: int = 100_000,
        max_seconds: float = 600.0,
        users: int = 5_000,
        seed: int = 7,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = f"{rest_url.rstrip('/')}/v1/models/{model}:predict"
        self.workers = workers
        self.interval_s = workers / rate_per_s  # per worker, between request starts
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.users = [user_id(n) for n in range(users)]
        self.seed = seed
        self.clock = clock
        self._tally = _Tally()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> TrafficGenerator:
        deadline = self.clock() + self.max_seconds
        for index in range(self.workers):
            thread = threading.Thread(
                target=self._work, args=(index, deadline), name=f"demo-traffic-{index}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stop.set()
        end = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, end - time.monotonic()))

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def _take_budget(self) -> bool:
        with self._tally.lock:
            if self._tally.sent >= self.max_requests:
                return False
            self._tally.sent += 1
            return True

    def _work(self, index: int, deadline: float) -> None:
        rng = random.Random(self.seed * 1000 + index)
        next_at = self.clock()
        with httpx.Client(timeout=10.0) as client:
            while not self._stop.is_set() and self.clock() < deadline and self._take_budget():
                self._one(client, rng)
                next_at += self.interval_s
                # Pace to the target rate; Event.wait returns early on stop().
                self._stop.wait(max(0.0, next_at - self.clock()))
                next_at = max(next_at, self.clock() - self.interval_s)  # no burst catch-up

    def _one(self, client: httpx.Client, rng: random.Random) -> None:
        user = rng.choice(self.users)
        x = round(rng.uniform(0.0, 10.0), 3)
        began = self.clock()
        try:
            reply = client.post(url=self.url, json={"instances": [x]},
                                headers={"x-user-id": user})
        except httpx.HTTPError:
            with self._tally.lock:
                self._tally.unreachable += 1
            self._stop.wait(0.1)  # the server is gone or restarting: do not spin
            return
        elapsed = self.clock() - began
        version = reply.headers.get("x-model-version", "")
        label = reply.headers.get("x-model-label", "")
        with self._tally.lock:
            self._tally.statuses[reply.status_code] += 1
            if reply.status_code == 200 and version:
                self._tally.versions[version] += 1
                self._tally.labels[label or "-"] += 1
                self._tally.recent.append((began, version, elapsed))

    def snapshot(self) -> TrafficSnapshot:
        now = self.clock()
        with self._tally.lock:
            statuses = dict(self._tally.statuses)
            totals = dict(self._tally.versions)
            labels = dict(self._tally.labels)
            recent = [(v, s) for t, v, s in self._tally.recent if t >= now - RECENT_S]
            sent, unreachable = self._tally.sent, self._tally.unreachable
        versions = {}
        for version, count in sorted(totals.items()):
            mine = [s for v, s in recent if v == version]
            p99 = percentile(mine, 0.99)
            versions[version] = VersionStats(
                count, len(mine) / RECENT_S, None if p99 is None else p99 * 1000
            )
        ok = statuses.get(200, 0)
        return TrafficSnapshot(
            sent=sent,
            ok=ok,
            errors=sum(statuses.values()) - ok,
            unreachable=unreachable,
            statuses=statuses,
            versions=versions,
            labels=labels,
        )
