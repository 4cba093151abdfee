"""`python -m serving --help` / `--version`: answered without importing TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

from tests.conftest import REPO

PROBE = """
import sys
from serving.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("tensorflow", "tensorflow_serving", "grpc") if m in sys.modules)
print("HEAVY:", heavy, file=sys.stderr)
sys.exit(code)
"""


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_help_prints_every_flag_without_tensorflow() -> None:
    done = _run("--help")
    assert done.returncode == 0
    assert "--grpc_channel_arguments=\"\"  string" in done.stdout
    assert "--enable_profiler=true  bool" in done.stdout
    assert "HEAVY: []" in done.stderr


def test_version_prints_both_versions_and_exits_zero() -> None:
    done = _run("--version")
    assert done.returncode == 0
    assert done.stdout == (f"TensorFlow ModelServer: {version('model-rollouts')} (model-rollouts)\n"
                           f"TensorFlow Library: {version('tensorflow')}\n")
    assert "HEAVY: []" in done.stderr


def test_unknown_flag_exits_2_naming_it_and_the_closest() -> None:
    done = _run("--rest_api_enable_cors=true")
    assert done.returncode == 2
    assert ("Unknown command line flag 'rest_api_enable_cors'; did you mean"
            " '--rest_api_enable_cors_support'?") in done.stderr
    assert "HEAVY: []" in done.stderr
