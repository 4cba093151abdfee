"""`rollouts promote | abort | retry` in a real checkout of a real bare remote."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gitops import Person, git, rollouts, spec

pytestmark = pytest.mark.integration

CANARY = "    split: {hashKey: x-user-id}  # sticky per user\n    steps: [{weight: 50, hold: 1h}]\n"


@pytest.fixture
def person(tmp_path: Path) -> Person:
    person = Person(tmp_path)
    person.write("rollouts/hp2.yaml", spec(stable=1, canary=2, canary_block=CANARY),
                 "canary hp2 v2")
    return person


def test_promote_commits_with_trailers_and_pushes(person: Person) -> None:
    result = rollouts(person.clone, "promote", "hp2", "--reason", "metrics look fine",
                      "--push")
    assert result.returncode == 0, result.stderr
    assert "rollouts promote: rollouts: promote hp2 to 2 (by hand)" in result.stdout
    assert "pushed to main" in result.stdout
    assert person.remote_file("rollouts/hp2.yaml") == spec(stable=2).rstrip("\n")
    message = git(person.remote, "log", "-1", "--format=%B", "main")
    parsed = git(person.remote, "log", "-1", "--format=%(trailers:only,unfold)", "main")
    assert "Rollouts-Action: promote" in parsed
    assert "Rollouts-Requested-By: Pat Person <pat@example.test>" in parsed
    assert "Rollouts-Reason: metrics look fine" in parsed, message
    # Once promoted, there is no canary left: a second promote is refused, exit 1.
    again = rollouts(person.clone, "promote", "hp2")
    assert again.returncode == 1
    assert "rollouts promote: hp2: no canary in the spec" in again.stderr


def test_dry_run_prints_the_diff_and_writes_nothing(person: Person) -> None:
    head = person.remote_head()
    result = rollouts(person.clone, "abort", "hp2", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "--- a/rollouts/hp2.yaml" in result.stdout
    assert "-  canary:" in result.stdout and "-    split: {hashKey: x-user-id}  # sticky per user" \
        in result.stdout
    assert "Rollouts-Verdict: abort" in result.stdout
    assert person.remote_head() == head
    assert git(person.clone, "status", "--porcelain") == ""


def test_abort_on_a_new_branch_for_a_pull_request(person: Person) -> None:
    head = person.remote_head()
    result = rollouts(person.clone, "abort", "hp2", "--branch", "abort-hp2-v2")
    assert result.returncode == 0, result.stderr
    assert "pushed to new branch abort-hp2-v2" in result.stdout
    assert person.remote_head() == head  # main untouched
    text = git(person.remote, "show", "abort-hp2-v2:rollouts/hp2.yaml")
    assert text == spec(stable=1).rstrip("\n")
    parsed = git(person.remote, "log", "-1", "--format=%(trailers:only,unfold)",
                 "abort-hp2-v2")
    assert "Rollouts-Verdict: abort" in parsed and "Rollouts-Reverted-Version" not in parsed


def test_retry_needs_a_version_the_controller_reverted(person: Person) -> None:
    refused = rollouts(person.clone, "retry", "hp2", "--push")
    assert refused.returncode == 1
    assert "canary version 2 was never reverted by the controller" in refused.stderr
    # The controller's revert commit carries these trailers (tests/unit/test_trailers.py).
    git(person.clone, "commit", "-q", "--allow-empty", "-m",
        "rollouts: revert hp2 canary 2\n\nRollouts-Model: hp2\nRollouts-Verdict: fail\n"
        "Rollouts-Reverted-Version: 2")
    person.push()
    result = rollouts(person.clone, "retry", "hp2", "--push")
    assert result.returncode == 0, result.stderr
    assert "    version: 2\n    retry: true\n" in person.remote_file("rollouts/hp2.yaml")


def test_repo_url_mode_clones_and_pushes(person: Person, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    usage = rollouts(elsewhere, "abort", "hp2", "--repo", person.url)
    assert usage.returncode == 2 and "add --push, --branch NAME or --dry-run" in usage.stderr
    result = rollouts(elsewhere, "abort", "hp2", "--repo", person.url, "--push")
    assert result.returncode == 0, result.stderr
    assert person.remote_file("rollouts/hp2.yaml") == spec(stable=1).rstrip("\n")


def test_outside_a_checkout_or_without_the_model(person: Person, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    result = rollouts(outside, "promote", "hp2")
    assert result.returncode == 2 and "not a git repository" in result.stderr
    result = rollouts(person.clone, "promote", "nope")
    assert result.returncode == 2 and "no spec for model 'nope'" in result.stderr
