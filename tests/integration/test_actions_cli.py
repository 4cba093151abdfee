"""`rollouts promote | abort | retry | pause | resume` in a real checkout of a real bare
remote, as a person runs them: what each writes and pushes, and how each refuses."""

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
    # The checkout stays on main, so the next `--push` goes where it says.
    assert "this checkout stays on main" in result.stdout
    assert git(person.clone, "branch", "--show-current") == "main"
    assert git(person.clone, "rev-parse", "HEAD") == head
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
    head = person.remote_head()
    dry = rollouts(elsewhere, "pause", "hp2", "--repo", person.url, "--dry-run")
    assert dry.returncode == 0 and "+    paused: true" in dry.stdout
    assert person.remote_head() == head and list(elsewhere.iterdir()) == []
    result = rollouts(elsewhere, "abort", "hp2", "--repo", person.url, "--push")
    assert result.returncode == 0, result.stderr
    assert person.remote_file("rollouts/hp2.yaml") == spec(stable=1).rstrip("\n")
    missing = rollouts(elsewhere, "abort", "hp2", "--repo", person.url, "--push",
                       "--base", "nope")
    assert missing.returncode == 2 and "Remote branch nope not found" in missing.stderr


def test_outside_a_checkout_or_without_the_model(person: Person, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    result = rollouts(outside, "promote", "hp2")
    assert result.returncode == 2 and "not a git repository" in result.stderr
    result = rollouts(person.clone, "promote", "nope")
    assert result.returncode == 2 and "no spec for model 'nope'" in result.stderr
    assert "the models there: hp2" in result.stderr
    # metadata.name is not the model's name: say which one is meant.
    person.write("rollouts/other.yaml", spec(name="m", canary=2).replace(
        "metadata: {name: m}", "metadata: {name: my-model}"), "another model")
    result = rollouts(person.clone, "pause", "my-model")
    assert result.returncode == 2
    assert ("'my-model' is the metadata.name of the spec of model 'm': MODEL is "
            "spec.model.name") in result.stderr


def test_pause_and_resume_refuse_what_is_already_so(person: Person) -> None:
    refused = rollouts(person.clone, "resume", "hp2", "--push")
    assert refused.returncode == 1
    assert refused.stderr == "rollouts resume: hp2: canary version 2 is not paused\n"
    paused = rollouts(person.clone, "pause", "hp2", "--reason", "weekend", "--push")
    assert paused.returncode == 0, paused.stderr
    assert "    version: 2\n    paused: true\n" in person.remote_file("rollouts/hp2.yaml")
    again = rollouts(person.clone, "pause", "hp2", "--push")
    assert again.returncode == 1
    assert again.stderr == "rollouts pause: hp2: canary version 2 is already paused\n"
    resumed = rollouts(person.clone, "resume", "hp2", "--push")
    assert resumed.returncode == 0, resumed.stderr
    assert "    paused: false\n" in person.remote_file("rollouts/hp2.yaml")


def test_a_stale_checkout_is_refused_before_anything_is_written(
    person: Person, tmp_path: Path,
) -> None:
    # Someone else promoted meanwhile: acting on this checkout's old spec would abort
    # a canary that is gone, so the command says to pull first and commits nothing.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", person.url, str(other))
    assert rollouts(other, "promote", "hp2", "--push").returncode == 0
    mine = git(person.clone, "rev-parse", "HEAD")
    result = rollouts(person.clone, "abort", "hp2", "--push")
    assert result.returncode == 2
    assert ("main is 1 commit(s) behind origin/main, whose spec may differ: run "
            "`git pull`, then this again") in result.stderr
    assert git(person.clone, "rev-parse", "HEAD") == mine
    person.pull()
    result = rollouts(person.clone, "abort", "hp2", "--push")
    assert result.returncode == 1 and "no canary in the spec" in result.stderr


def test_a_rejected_push_says_why_and_where_the_commit_is(person: Person) -> None:
    hook = person.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected: open a pull request' >&2\nexit 1\n")
    hook.chmod(0o755)
    head = person.remote_head()
    result = rollouts(person.clone, "abort", "hp2", "--push")
    assert result.returncode == 2
    sha = git(person.clone, "rev-parse", "HEAD")
    assert sha != head and person.remote_head() == head
    assert f"commit {sha[:12]} is in this checkout but not on origin/main" in result.stderr
    # git's own reason, the remote's words included, not its closing hint.
    assert "remote: main is protected: open a pull request" in result.stderr
    assert "hint:" not in result.stderr
