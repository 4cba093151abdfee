"""`rollouts validate` inside a git checkout flags a re-proposed auto-reverted version."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli.main import main as cli_main
from tests.gitops import Person, git, spec

pytestmark = pytest.mark.integration

REVERT_MESSAGE = """rollouts: revert hp2 canary 3

Analysis failed: 0 interval(s) passed, 2 failed.

Rollouts-Model: hp2
Rollouts-Verdict: fail
Rollouts-Reverted-Version: 3
"""


def test_reproposed_reverted_version_is_flagged_unless_retry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    person = Person(tmp_path)
    person.write("rollouts/hp2.yaml", spec(stable=1, canary=3), "try v3")
    git(person.clone, "commit", "-q", "--allow-empty", "-m", REVERT_MESSAGE)
    person.write("rollouts/hp2.yaml", spec(stable=1), "(the revert's content)")
    # A person's plain revert of another version does not count as an auto-revert.
    git(person.clone, "commit", "-q", "--allow-empty", "-m", "Revert v4\n\nRollouts-Model: hp2")

    specs = person.clone / "rollouts"
    assert cli_main(["validate", str(specs)]) == 0
    capsys.readouterr()

    (specs / "hp2.yaml").write_text(spec(stable=1, canary=3))
    assert cli_main(["validate", str(specs)]) == 1
    out = capsys.readouterr().out
    assert f"{specs / 'hp2.yaml'}:9:14: error: canary.version 3 of model 'hp2' was " in out
    assert "set canary.retry: true" in out

    (specs / "hp2.yaml").write_text(spec(stable=1, canary=4))
    assert cli_main(["validate", str(specs)]) == 0

    retry = spec(stable=1, canary=3).replace(
        "    version: 3\n", "    version: 3\n    retry: true\n"
    )
    (specs / "hp2.yaml").write_text(retry)
    assert cli_main(["validate", str(specs)]) == 0


def test_outside_git_no_history_check(tmp_path: Path) -> None:
    (tmp_path / "hp2.yaml").write_text(spec(stable=1, canary=3))
    assert cli_main(["validate", str(tmp_path)]) == 0
