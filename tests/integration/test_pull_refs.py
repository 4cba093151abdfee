"""PullRequestRefs against real git: a bare remote holding refs/pull/N/head refs."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.adapters.gitrepo import GitRepo
from controller.adapters.pulls import PullHead, PullRequestRefs
from tests.gitops import Person, git, spec

pytestmark = pytest.mark.integration


def test_heads_merge_bases_merges_and_closed_pull_requests(tmp_path: Path) -> None:
    person = Person(tmp_path)
    base = person.write("rollouts/hp2.yaml", spec(stable=1), "hp2 at v1")
    first = person.push_pull(1, "rollouts/hp2.yaml", spec(stable=1, canary=2), "canary v2")
    second = person.push_pull(12, "rollouts/hp2.yaml", spec(stable=1, canary=3), "canary v3")
    person.write("README.md", "hello\n", "unrelated change on main")
    repo = GitRepo(person.url, tmp_path / "clone")
    refs = PullRequestRefs(repo, "+refs/pull/*/head")
    repo.sync()
    assert sorted(refs.heads(), key=lambda h: h.pull) == [
        PullHead("1", first, False, base), PullHead("12", second, False, base)]
    assert repo.read_file(first, "rollouts/hp2.yaml") == spec(stable=1, canary=2)

    merge = person.merge_pull(1)
    person.close_pull(12)
    repo.sync()
    assert refs.heads() == [PullHead("1", first, True, None)]  # GitHub keeps merged refs
    assert refs.brought_by(merge) == [PullHead("1", first, True, None)]
    # A fast-forward merge: the pull request's own commits land on main.
    third = person.push_pull(4, "rollouts/hp2.yaml", spec(stable=1, canary=4), "canary v4")
    git(person.clone, "merge", "-q", "--ff-only", "pr4")
    assert person.push() == third
    repo.sync()
    assert refs.brought_by(third) == [PullHead("4", third, True, None)]
    assert refs.brought_by(merge) == [PullHead("1", first, True, None)]
