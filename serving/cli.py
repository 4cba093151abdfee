"""The model server's command-line entry point (`rollouts serve`, `python -m serving`).

Answers `--help` and `--version` from the flag table alone, without importing
TensorFlow (seconds, and its start-up banners), then hands everything else to
`serving.main`. Versions come from the installed packages' metadata.
"""

from __future__ import annotations

import signal
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from serving.config.flags import USAGE_HINT, FlagError, parse_flags, usage, wants_help

SERVER_PACKAGE = "model-rollouts"


def _version_of(package: str) -> str:
    try:
        return package_version(package)
    except PackageNotFoundError:
        return "unknown"


def version_text() -> str:
    """tensorflow_model_server's two --version lines, with our server's version."""
    return (f"TensorFlow ModelServer: {_version_of(SERVER_PACKAGE)} ({SERVER_PACKAGE})\n"
            f"TensorFlow Library: {_version_of('tensorflow')}\n")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if wants_help(args):
        sys.stdout.write(usage())
        return 0
    try:
        flags = parse_flags(args)
    except FlagError as exc:
        print(f"{exc}\n{USAGE_HINT}", file=sys.stderr)
        return 2
    if flags.version:
        sys.stdout.write(version_text())
        return 0
    try:
        # TensorFlow only now; importing it takes seconds, and a Ctrl-C then is
        # an ordinary stop.
        from serving.main import run
    except KeyboardInterrupt:
        print("Start-up stopped by SIGINT while loading the server", file=sys.stderr)
        return 128 + signal.SIGINT
    return run(flags)
