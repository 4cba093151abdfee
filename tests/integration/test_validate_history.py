"""`rollouts validate` inside a git checkout flags a re-proposed auto-reverted version."""

from __future__ import annotations

import shutil
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


def shallow_clone(person: Person, where: Path) -> Path:
    """What actions/checkout makes by default: one commit, no history behind it."""
    git(where.parent, "clone", "-q", "--depth", "1", f"file://{person.remote}", str(where))
    assert git(where, "rev-parse", "--is-shallow-repository") == "true"
    assert git(where, "rev-list", "--count", "HEAD") == "1"
    return where


def history_with_a_revert(tmp_path: Path) -> Person:
    person = Person(tmp_path)
    person.write("rollouts/hp2.yaml", spec(stable=1, canary=3), "try v3")
    git(person.clone, "commit", "-q", "--allow-empty", "-m", REVERT_MESSAGE)
    person.write("rollouts/hp2.yaml", spec(stable=1), "(the revert's content)")
    # The pull request: proposes the reverted version again.
    person.write("rollouts/hp2.yaml", spec(stable=1, canary=3), "try v3 again")
    return person


def test_a_shallow_clone_fetches_the_history_the_guard_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    person = history_with_a_revert(tmp_path)
    checkout = shallow_clone(person, tmp_path / "ci")
    assert cli_main(["validate", str(checkout / "rollouts")]) == 1
    assert "was automatically reverted before" in capsys.readouterr().out
    assert git(checkout, "rev-parse", "--is-shallow-repository") == "false"


def test_a_shallow_clone_whose_history_cannot_be_fetched_fails_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    person = history_with_a_revert(tmp_path)
    checkout = shallow_clone(person, tmp_path / "ci")
    shutil.rmtree(person.remote)  # the remote is gone: the history cannot come
    assert cli_main(["validate", str(checkout / "rollouts")]) == 2
    out = capsys.readouterr().out
    assert "is a shallow clone and fetching its history from 'origin' failed" in out
    assert "git fetch --unshallow" in out and "fetch-depth: 0" in out


def test_the_documented_workflows_checkout_keeps_the_guard_working(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # docs/ci.md's checkout step asks for the whole history (fetch-depth: 0):
    # with it, the clone CI makes has the revert commit and the guard needs no fetch.
    from tests.unit.test_ci_examples import workflow_steps

    checkout_step = workflow_steps()[0]
    assert checkout_step["with"]["fetch-depth"] == 0
    person = history_with_a_revert(tmp_path)
    ci = tmp_path / "ci"
    git(tmp_path, "clone", "-q", f"file://{person.remote}", str(ci))  # fetch-depth: 0
    shutil.rmtree(person.remote)  # nothing more is fetched
    assert cli_main(["validate", str(ci / "rollouts")]) == 1
    assert "was automatically reverted before" in capsys.readouterr().out
