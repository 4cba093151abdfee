"""The clock seam: everything in the core that measures time asks a `Clock`.

Production code uses `MONOTONIC`; unit tests inject a fake clock so retry and
ordering logic is tested without sleeping.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds; only differences are meaningful."""
        ...


class _Monotonic:
    def now(self) -> float:
        return time.monotonic()


MONOTONIC: Clock = _Monotonic()
