"""Delivering notices to people's HTTP endpoints, off the reconcile path.

`Notifier.send` never blocks and never raises: it puts one delivery on the bounded
queue of each interested target (full: dropped and logged), and that target's own
worker thread POSTs them in order, each retried with exponential backoff, so a
receiver that hangs or is down delays no other receiver. A receiver that is down
is logged at WARNING, never fatal. With a secret, each request carries
`X-Hub-Signature-256: sha256=<HMAC of the body>`, the header the controller's own
webhook endpoint checks, so one verifier serves both directions.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx

from controller.adapters.redact import redact
from controller.decide.notices import EVENTS, Notice, render
from controller.runtime.webhook import signature

__all__ = ["NotificationTarget", "Notifier"]

log = logging.getLogger(__name__)

# (url, body, headers) -> HTTP status; raises OSError/httpx.HTTPError when unreachable.
Post = Callable[[str, bytes, dict[str, str]], int]


@dataclass(frozen=True)
class NotificationTarget:
    url: str
    format: str = "json"
    events: frozenset[str] = frozenset(EVENTS)
    secret: bytes = field(default=b"", repr=False)


def _httpx_post(timeout_s: float) -> Post:
    client = httpx.Client(timeout=timeout_s, follow_redirects=False)

    def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        return client.post(url, content=body, headers=headers).status_code

    return post


class _Lane:
    """One target's queue and the worker thread that delivers it, in order."""

    def __init__(self, target: NotificationTarget, max_queued: int,
                 deliver: Callable[[NotificationTarget, Notice], None]) -> None:
        self.target = target
        self.queue: queue.Queue[Notice | None] = queue.Queue(max_queued)
        self._deliver = deliver
        self.worker = threading.Thread(target=self._run, name="notify", daemon=True)
        self.worker.start()

    def _run(self) -> None:
        while True:
            notice = self.queue.get()
            if notice is None:
                return
            self._deliver(self.target, notice)


class Notifier:
    """Delivers each notice to every target that wants it, a worker per target: a
    receiver that is slow, hangs or is down delays only its own deliveries."""

    def __init__(
        self,
        targets: Sequence[NotificationTarget],
        *,
        post: Post | None = None,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = 5,
        first_backoff_s: float = 0.5,
        max_queued: int = 1000,
        timeout_s: float = 10.0,
    ) -> None:
        self.targets = tuple(targets)
        self._post = post or _httpx_post(timeout_s)
        self._sleep = sleep
        self._attempts = attempts
        self._first_backoff_s = first_backoff_s
        self._counts = threading.Lock()
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._lanes = [_Lane(t, max_queued, self._deliver) for t in self.targets]

    def send(self, notice: Notice) -> None:
        for lane in self._lanes:
            if notice.event not in lane.target.events:
                continue
            try:
                lane.queue.put_nowait(notice)
            except queue.Full:
                self._count("dropped")
                log.warning("notification %s for %s to %s dropped: %d already queued",
                            notice.event, notice.model, redact(lane.target.url),
                            lane.queue.maxsize)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop after what is queued now, waiting at most `timeout_s` in all."""
        deadline = time.monotonic() + timeout_s
        for lane in self._lanes:
            try:
                lane.queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
            except queue.Full:
                continue
        for lane in self._lanes:
            lane.worker.join(max(0.0, deadline - time.monotonic()))

    def _count(self, name: str) -> None:
        with self._counts:
            setattr(self, name, getattr(self, name) + 1)

    def _deliver(self, target: NotificationTarget, notice: Notice) -> None:
        body = render(notice, target.format)
        headers = {"content-type": "application/json",
                   "user-agent": "rollouts-controller", "x-rollouts-event": notice.event}
        if target.secret:
            headers["x-hub-signature-256"] = signature(target.secret, body)
        problem = ""
        delay = self._first_backoff_s
        for attempt in range(1, self._attempts + 1):
            try:
                status = self._post(target.url, body, headers)
            except (OSError, httpx.HTTPError) as err:
                problem = str(err) or type(err).__name__
            else:
                if 200 <= status < 300:
                    self._count("delivered")
                    return
                problem = f"HTTP {status}"
                if 400 <= status < 500 and status not in (408, 429):
                    break  # the receiver refuses this request: retrying repeats it
            if attempt < self._attempts:
                self._sleep(delay)
                delay *= 2
        self._count("failed")
        log.warning("notification %s for %s to %s failed after %d attempt(s): %s",
                    notice.event, notice.model, redact(target.url), attempt, redact(problem))
