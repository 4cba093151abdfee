"""No controller command loads TensorFlow: each runs in a fresh interpreter, for real.

`tensorflow_serving.apis` imports all of TensorFlow (seconds, hundreds of MB);
the controller speaks TF Serving's protos through the copies generated into
serving/generated/. Each command runs through `controller.cli.main.main` in its
own interpreter against a real git repo (and, for plan/run/status, addresses
nothing listens on), and then reports which modules it loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.gitops import Person, spec
from tests.helpers import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("tensorflow", "tensorflow_serving", "keras", "xla")
PROBE = (
    "import json, sys\n"
    "from controller.cli.main import main\n"
    "rc = main(json.loads(sys.argv[1]))\n"
    "sys.stdout.flush()\n"
    f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
    "print('\\nPROBE ' + json.dumps({'rc': rc, 'heavy': heavy}))\n"
)


def run_command(argv: list[str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert "PROBE " in done.stdout, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.rsplit("PROBE ", 1)[1])
    return result


def test_no_controller_command_imports_tensorflow(tmp_path: Path) -> None:
    person = Person(tmp_path)
    person.write("rollouts/hp2.yaml", spec(stable=1, canary=2), "hp2 canary")
    nowhere = f"127.0.0.1:{free_port()}"
    common = ["--repo", person.url, "--model-root", str(tmp_path / "models"),
              "--target", nowhere]
    commands = {
        "validate": ["validate", str(REPO / "rollouts")],
        "render": ["render", str(REPO / "rollouts"), "--model-root", "/models",
                   "--format", "json"],
        "schema": ["schema"],
        "plan": ["plan", *common, "--state-dir", str(tmp_path / "plan")],
        "run --once": ["run", *common, "--once", "--state-dir", str(tmp_path / "run"),
                       "--reconcile-deadline", "2s"],
        "status": ["status", "--controller", f"http://{nowhere}"],
        "completion": ["completion", "bash"],
    }
    expected_rc = {"validate": 0, "render": 0, "schema": 0, "plan": 3, "run --once": 1,
                   "status": 2, "completion": 0}
    for name, argv in commands.items():
        result = run_command(argv)
        assert result["heavy"] == [], f"rollouts {name} imported {result['heavy'][:5]}"
        assert result["rc"] == expected_rc[name], (name, result)
