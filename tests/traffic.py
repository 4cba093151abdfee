"""Bounded background traffic for integration tests: REST predicts with hashed user ids."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class Traffic:
    """Sends predicts to every URL until stopped, at most `max_requests` or `max_seconds`."""

    urls: list[str]
    model: str = "hp2"
    max_requests: int = 200_000
    max_seconds: float = 300.0
    low: float = 0.0
    high: float = 10.0
    seed: int = 7
    statuses: Counter[int] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        rng = random.Random(self.seed)
        end = time.monotonic() + self.max_seconds
        with httpx.Client(timeout=60) as client:  # failure-only bound
            for sent in range(self.max_requests):
                if self._stop.is_set() or time.monotonic() > end:
                    return
                url = self.urls[sent % len(self.urls)]
                x = rng.uniform(self.low, self.high)
                try:
                    reply = client.post(
                        f"{url}/v1/models/{self.model}:predict",
                        json={"instances": [x]},
                        headers={"x-user-id": f"user-{rng.randrange(100_000)}"},
                    )
                except httpx.HTTPError:
                    self.statuses[0] += 1
                    time.sleep(0.05)  # the server is restarting: back off briefly
                    continue
                self.statuses[reply.status_code] += 1
                self.versions[reply.headers.get("x-model-version", "?")] += 1
