"""Helpers shared by every test and benchmark: bounded waits and loopback ports.

Fakes of the code under test live in tests/unit/fakes.py; fixtures that start
real processes in tests/conftest.py.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

WAIT_S = 10.0  # default bound on a condition; reached only when a test fails


def wait_for(predicate: Callable[[], bool], timeout: float = WAIT_S,
             interval: float = 0.05) -> bool:
    """Poll `predicate` every `interval` s until it holds or `timeout` s pass.

    Returns whether it held (checked once more at the deadline), so callers
    `assert wait_for(...)`: for conditions nothing signals, never a bare sleep.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the caller binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
