"""free_port: each process draws from a block of its own, whatever else runs on the machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import free_port

_REPORT_BLOCK = (
    "import sys\n"
    "from tests.helpers import free_port\n"
    "port = free_port()\n"
    "print(port, flush=True)\n"
    "sys.stdin.readline()\n"  # hold the claim until the parent has read every port
)


def test_concurrent_processes_never_share_a_block() -> None:
    root = Path(__file__).resolve().parents[2]
    children = [subprocess.Popen([sys.executable, "-c", _REPORT_BLOCK], cwd=root,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for _ in range(4)]
    try:
        ports = [int(child.stdout.readline()) for child in children if child.stdout]
        mine = free_port()  # while every child still holds its claim
    finally:
        for child in children:
            child.communicate("\n", timeout=600)
    blocks = {port // 1000 for port in [*ports, mine]}
    assert len(blocks) == 5, ports + [mine]


def test_successive_ports_differ_and_are_bindable() -> None:
    import socket

    first, second = free_port(), free_port()
    assert first != second
    for port in (first, second):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))
