"""Helpers shared by every test and benchmark: bounded waits, loopback ports,
and calls started together on threads.

Fakes of the code under test live in tests/unit/fakes.py; fixtures that start
real processes in tests/conftest.py.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

WAIT_S = 60.0  # default bound on a condition; reached only when a test fails


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


# Ports handed out below the kernel's ephemeral range, a block per pytest process:
# a port from bind(0) could be given, between our check and the server's bind, to
# some client's outgoing connection; a port from a block no other process draws
# from cannot be given to another test either. Each process claims the first free
# block with an exclusive lock on a file that it holds until it exits, so xdist
# workers, the soak beside them and another suite running on the same machine
# (CI and a developer's run) never share a block.
_PORT_BLOCK = 1000
_PORT_FIRST = 15000
_LOCK_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / "rollouts-test-ports"
_next_port: list[int] = []
_claimed: list[tuple[int, int, IO[bytes]]] = []  # (first, end, the held lock file)


def _ephemeral_min() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _claim_block() -> tuple[int, int] | None:
    end_all = _ephemeral_min()
    _LOCK_DIR.mkdir(parents=True, exist_ok=True)
    for first in range(_PORT_FIRST, end_all - _PORT_BLOCK + 1, _PORT_BLOCK):
        handle = (_LOCK_DIR / f"{first}.lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()  # another live process holds it
            continue
        _claimed.append((first, first + _PORT_BLOCK, handle))  # kept open: the claim
        return first, first + _PORT_BLOCK
    return None


def _port_block() -> tuple[int, int] | None:
    if not _claimed:
        return _claim_block()
    first, end, _ = _claimed[0]
    return first, end


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the caller binds it next), from this
    process's own block below the ephemeral range, never the same one twice in a row."""
    block = _port_block()
    if block is None:
        return _any_free_port()  # every block is claimed by other processes
    first, end = block
    if not _next_port:
        _next_port.append(first)
    for _ in range(end - first):
        port = _next_port[0]
        _next_port[0] = port + 1 if port + 1 < end else first
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or in TIME_WAIT): try the next one
            return port
    return _any_free_port()  # the whole block is busy


def _any_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_concurrently(calls: Sequence[Callable[[], Any]], timeout: float = 30.0,
                     ) -> list[tuple[Any, float]]:
    """Run every call on its own thread, all released together; (result or the
    exception it raised, time.monotonic() when it finished) per call, in order."""
    out: list[tuple[Any, float]] = [(None, 0.0)] * len(calls)
    start = threading.Barrier(len(calls))

    def worker(i: int) -> None:
        start.wait(timeout)
        try:
            result: Any = calls[i]()
        except Exception as exc:  # the caller asserts on what each call gave
            result = exc
        out[i] = (result, time.monotonic())

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout * 2)
        assert not t.is_alive()
    return out


def interrupt(process: subprocess.Popen[str], timeout: float = WAIT_S * 2) -> int:
    """Ctrl-C `process` and return its exit code. A process still running after
    `timeout` is sent SIGABRT first: started with PYTHONFAULTHANDLER=1
    (`FAULTHANDLER_ENV`), it prints every thread's stack, and the assertion
    says where it was stuck."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        raise AssertionError(f"still running {timeout:g} s after SIGINT; stacks:\n{err}"
                             ) from None


FAULTHANDLER_ENV = {"PYTHONFAULTHANDLER": "1"}
"""For processes the tests interrupt: a stuck one can be asked where it is."""
