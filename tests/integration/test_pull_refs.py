"""PullRequestRefs against real git: a bare remote holding refs/pull/N/head refs."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.adapters.gitrepo import GitRepo
from controller.adapters.pulls import PullHead, PullRequestRefs
from tests.gitops import Person, git, spec

pytestmark = pytest.mark.integration


def open_pull(person: Person, number: int, text: str, message: str) -> str:
    """Commit `text` on a branch off the person's HEAD and push it as pull request N."""
    git(person.clone, "checkout", "-q", "-b", f"pr{number}")
    path = person.clone / "rollouts/hp2.yaml"
    path.write_text(text)
    git(person.clone, "commit", "-qam", message)
    git(person.clone, "push", "-q", "origin", f"HEAD:refs/pull/{number}/head")
    head = git(person.clone, "rev-parse", "HEAD")
    git(person.clone, "checkout", "-q", "main")
    return head


def test_heads_merge_bases_merges_and_closed_pull_requests(tmp_path: Path) -> None:
    person = Person(tmp_path)
    base = person.write("rollouts/hp2.yaml", spec(stable=1), "hp2 at v1")
    first = open_pull(person, 1, spec(stable=1, canary=2), "canary v2")
    second = open_pull(person, 12, spec(stable=1, canary=3), "canary v3")
    person.write("README.md", "hello\n", "unrelated change on main")
    repo = GitRepo(person.url, tmp_path / "clone")
    refs = PullRequestRefs(repo, "+refs/pull/*/head")
    repo.sync()
    assert sorted(refs.heads(), key=lambda h: h.pull) == [
        PullHead("1", first, False, base), PullHead("12", second, False, base)]
    assert repo.read_file(first, "rollouts/hp2.yaml") == spec(stable=1, canary=2)

    git(person.clone, "merge", "-q", "--no-ff", "-m", "Merge pull request #1", "pr1")
    merge = person.push()
    git(person.clone, "push", "-q", "origin", ":refs/pull/12/head")  # #12 closed
    repo.sync()
    assert refs.heads() == [PullHead("1", first, True, None)]  # GitHub keeps merged refs
    assert refs.brought_by(merge) == [PullHead("1", first, True, None)]
    assert refs.brought_by(base) == []  # not a merge
