"""`rollouts --version` and the bash and zsh completion scripts, run by the real shells."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli.main import main, package_version

REPO = Path(__file__).resolve().parents[2]


def test_version_prints_the_installed_distributions_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"rollouts {version('model-rollouts')}"
    assert package_version() == version("model-rollouts")


def completion_script(shell: str, tmp_path: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "controller", "completion", shell],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=True,
    )
    path = tmp_path / f"rollouts.{shell}"
    path.write_text(done.stdout)
    return path


def bash_complete(script: Path, words: list[str]) -> list[str]:
    """COMPREPLY for the last word of `words`, as bash's completion machinery asks."""
    line = " ".join(words)
    program = (
        f"source {script}\n"
        f"COMP_WORDS=({' '.join(words)}); COMP_CWORD={len(words) - 1}\n"
        f"COMP_LINE='{line}'; COMP_POINT={len(line)}\n"
        "_shtab_rollouts\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=600,
                          check=True)
    return done.stdout.split()


def test_bash_completes_commands_and_each_commands_options(tmp_path: Path) -> None:
    script = completion_script("bash", tmp_path)
    assert bash_complete(script, ["rollouts", "pl"]) == ["plan"]
    assert "status" in bash_complete(script, ["rollouts", "st"])
    assert bash_complete(script, ["rollouts", "run", "--poll"]) == ["--poll-interval"]
    assert bash_complete(script, ["rollouts", "validate", "--form"]) == ["--format"]
    assert set(bash_complete(script, ["rollouts", "validate", "--format", ""])) == {
        "text", "json", "github"}


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed (.ci/run installs it)")
def test_zsh_script_is_valid_zsh_naming_every_command(tmp_path: Path) -> None:
    script = completion_script("zsh", tmp_path)
    text = script.read_text()
    assert text.startswith("#compdef rollouts")
    for command in ("validate", "render", "schema", "run", "plan", "status", "demo"):
        assert f"    {command}:'" in text, command
    assert "--poll-interval" in text and "--reconcile-deadline" in text
    subprocess.run(["zsh", "-n", str(script)], check=True, timeout=600)
    # Loaded by zsh's completion system, the function is defined.
    program = (f"autoload -U compinit && compinit -u -D; source {script}; "
               "whence -w _shtab_rollouts")
    done = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True,
                          timeout=600)
    assert "_shtab_rollouts: function" in done.stdout, done.stderr


def test_an_unknown_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "fish"]) == 2
    assert "invalid choice: 'fish'" in capsys.readouterr().err
