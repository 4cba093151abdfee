"""The server runs TensorFlow without oneDNN's custom ops unless asked (memory on unload)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# As `rollouts serve` imports things: the CLI first, then the server.
PROBE = ("import controller.cli.main, serving.main\n"
         "from tensorflow.python.util import _pywrap_util_port as port\n"
         "print(port.IsMklEnabled())\n")


@pytest.mark.parametrize("setting, enabled", [(None, "False"), ("1", "True")])
def test_onednn_is_off_by_default_and_can_be_turned_on(setting: str | None, enabled: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         timeout=900, check=True)  # a TF import on a busy machine
    assert out.stdout.strip().splitlines()[-1] == enabled
