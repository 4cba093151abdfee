"""Every command the README shows is run here (or, for make targets, by CI or the demo test)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from controller.cli.main import main as cli_main

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
SH_BLOCKS = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
COMMANDS = [line.strip() for block in SH_BLOCKS for line in block.splitlines() if line.strip()]
# `make test` is what CI runs; `make demo` runs `rollouts demo`, run by
# tests/integration/test_demo.py in fast mode.
ELSEWHERE = {"make test": ".ci/run", "make demo": "tests/integration/test_demo.py"}


def test_readme_shows_the_two_quickstart_commands() -> None:
    assert COMMANDS[:2] == ["make demo", "make test"]


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in ELSEWHERE])
def test_readme_command_runs(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = shlex.split(command)
    assert argv[0] == "rollouts", f"unexpected command in README: {command}"
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        assert cli_main(argv[1:]) == 0, capsys.readouterr()
    finally:
        os.chdir(cwd)


def test_commands_run_elsewhere_exist() -> None:
    for command, where in ELSEWHERE.items():
        assert command in COMMANDS
        assert (ROOT / where).exists()
    assert "make test" in (ROOT / ".ci/run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:.*\n\t.*rollouts demo", makefile, flags=re.M)


def test_every_run_option_is_in_the_readme_table() -> None:
    """The README's `rollouts run` table names every option `--help` lists."""
    import argparse

    from controller.cli.main import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run = subparsers.choices["run"]
    options = {s for a in run._actions for s in a.option_strings
               if s.startswith("--") and s not in ("--help", "--verbose", "--config")}
    table = [line for line in README.splitlines() if line.startswith("| `--")]
    missing = sorted(o for o in options if not any(f"`{o}" in row for row in table))
    assert not missing, f"rollouts run options missing from the README table: {missing}"
