"""tests.helpers.interrupt: Ctrl-C's exit code, or where a stuck process was."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import FAULTHANDLER_ENV, interrupt

STUCK = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
print("ready", flush=True)
def stuck_here():
    while True:
        time.sleep(1)
stuck_here()
"""

# "ready" inside the try: a SIGINT sent as soon as it is read may arrive
# before the next statement runs (it did, twice, on a loaded machine: -2).
POLITE = """
import time
try:
    print("ready", flush=True)
    time.sleep(600)
except KeyboardInterrupt:
    raise SystemExit(0)
"""


def started(code: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env=os.environ | FAULTHANDLER_ENV)
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"  # its SIGINT handling is in place
    return process


def test_a_process_that_stops_on_ctrl_c_gives_its_exit_code() -> None:
    assert interrupt(started(POLITE)) == 0


def test_a_process_that_ignores_ctrl_c_is_shown_where_it_was_stuck() -> None:
    process = started(STUCK)
    with pytest.raises(AssertionError) as err:
        interrupt(process, timeout=1)
    assert "still running 1 s after SIGINT" in str(err.value)
    assert "stuck_here" in str(err.value)  # faulthandler's stack of the main thread
    assert process.poll() is not None
