"""The canary journal in real git notes: two writers' entries both survive, and a note
written by an older controller (snake_case keys) still reads back as the same events."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.adapters.gitrepo import GitRepo
from controller.adapters.journal import NOTES_REF, GitNotes, parse_journal
from tests.integration.test_gitrepo import SPEC, Person, git

pytestmark = pytest.mark.integration


@pytest.fixture()
def remote(tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    path.mkdir()
    git(path, "init", "-q", "--bare", "-b", "main")
    return path


@pytest.fixture()
def person(remote: Path, tmp_path: Path) -> Person:
    who = Person(remote, tmp_path / "person")
    git(who.path, "checkout", "-q", "-b", "main")
    who.write("rollouts/hpt.yaml", SPEC)
    who.commit("add half_plus_two rollout")
    return who


def test_notes_from_two_writers_both_survive(remote: Path, tmp_path: Path, person: Person) -> None:
    repo, other = GitRepo(str(remote), tmp_path / "c1"), GitRepo(str(remote), tmp_path / "c2")
    notes, other_notes = GitNotes(repo), GitNotes(other)
    commit = repo.sync()
    other.sync()
    notes.add_note(commit, "2024-01-01T00:00:00Z half_plus_two interval 1: pass")
    other_notes.add_note(commit, "2024-01-01T00:00:30Z half_plus_two interval 2: fail")
    assert notes.push_notes().ok
    assert other_notes.push_notes().ok  # rejected once, merged, pushed

    reader = GitRepo(str(remote), tmp_path / "reader")
    reader_notes = GitNotes(reader)
    reader.sync()
    assert reader_notes.notes(commit) == [
        "2024-01-01T00:00:00Z half_plus_two interval 1: pass",
        "2024-01-01T00:00:30Z half_plus_two interval 2: fail",
    ]
    repo.sync()  # the first writer merges the second's entry on its next fetch
    notes.add_note(commit, "2024-01-01T00:01:00Z half_plus_two promoted")
    assert notes.push_notes().ok
    published = git(remote, "notes", "--ref=rollouts", "show", commit).splitlines()
    assert [line for line in published if line] == [
        "2024-01-01T00:00:00Z half_plus_two interval 1: pass",
        "2024-01-01T00:00:30Z half_plus_two interval 2: fail",
        "2024-01-01T00:01:00Z half_plus_two promoted",
    ]
    with pytest.raises(ValueError):
        notes.add_note(commit, "two\nlines")


def test_a_note_written_with_the_old_keys_reads_as_camel_case(
    remote: Path, tmp_path: Path, person: Person
) -> None:
    # Exactly what a controller before the camelCase status document journaled.
    old = (
        '2024-01-01T00:00:30Z hp2 v2 interval: pass at 10%: canary 100 req 0.00% err '
        '{"at":1704067230.0,"detail":{"canary":{"errorRate":0.0,"errors":0.0,'
        '"latencyBuckets":[],"latencyP99Seconds":null,"requests":100.0},"outcome":"pass",'
        '"reasons":["error rate 0.00% <= max 5.00%"],"stable":{"errorRate":0.0,"errors":0.0,'
        '"latencyBuckets":[],"latencyP99Seconds":null,"requests":900.0},'
        '"summary":"pass at 10%: canary 100 req 0.00% err","weight_bp":1000},'
        '"kind":"interval","model":"hp2","outcome":"pass","step":0,"version":2}'
    )
    git(person.path, "notes", f"--ref={NOTES_REF}", "add", "-m", old, person.head())
    git(person.path, "push", "-q", "origin", f"{NOTES_REF}:{NOTES_REF}")
    repo = GitRepo(str(remote), tmp_path / "controller")
    notes = GitNotes(repo)
    commit = repo.sync()
    [event] = parse_journal(notes.notes(commit))
    assert (event.kind, event.model, event.version, event.outcome) == ("interval", "hp2", 2, "pass")
    assert event.detail["weightBp"] == 1000 and "weight_bp" not in event.detail
    assert event.detail["canary"]["requests"] == 100.0
    assert event.detail["summary"] == "pass at 10%: canary 100 req 0.00% err"
