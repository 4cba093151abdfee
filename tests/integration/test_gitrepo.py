"""GitRepo against real git: a bare remote, a person's clone pushing commits, the controller.

No mocks: every assertion is about what landed in the bare remote, read back with git.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import git as gitlib
import pytest

from controller.adapters.gitclone import _redacted_error
from controller.adapters.gitrepo import GitRepo
from controller.adapters.gitresults import (
    GitError,
    NothingToCommit,
    PathNotFound,
    RevertConflict,
    WriteResult,
    WriteStatus,
)
from controller.decide import trailers
from controller.spec import yamledit

pytestmark = pytest.mark.integration

SPEC = """\
# Rollout of half_plus_two; owned by the ML platform team.
apiVersion: rollouts/v1
kind: ModelRollout
metadata: {name: half-plus-two}
spec:
  model: {name: half_plus_two, basePath: half_plus_two, platform: tensorflow}
  transition: availability   # load new, then unload old
  stable: 1                  # what everyone gets
  # --- next section: the canary (PR #7) ---
  extra: {owner: "ml-platform"}
"""

_ENV = {
    "GIT_AUTHOR_NAME": "Pat Person",
    "GIT_AUTHOR_EMAIL": "pat@example.invalid",
    "GIT_COMMITTER_NAME": "Pat Person",
    "GIT_COMMITTER_EMAIL": "pat@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "LC_ALL": "C",
}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **_ENV, "HOME": str(cwd)}
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


class Person:
    """A person's clone of the remote: edits, commits and pushes like a human would."""

    def __init__(self, remote: Path, path: Path) -> None:
        git(path.parent, "clone", "-q", str(remote), str(path))
        self.path = path

    def write(self, rel: str, text: str) -> None:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text()

    def commit(self, message: str, push: bool = True) -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        if push:
            self.push()
        return self.head()

    def push(self) -> None:
        git(self.path, "push", "-q", "origin", "HEAD:main")

    def pull(self) -> None:
        git(self.path, "pull", "-q", "--rebase", "origin", "main")

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD")


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
    who.write("rollouts/README.md", "not a spec\n")
    who.write("other/ignored.yaml", "kind: not-ours\n")
    who.commit("add half_plus_two rollout")
    return who


@pytest.fixture()
def repo(remote: Path, tmp_path: Path, person: Person) -> GitRepo:
    return GitRepo(str(remote), tmp_path / "controller")


def remote_log(remote: Path, rev: str = "main") -> list[str]:
    return git(remote, "log", "--format=%H", rev).split()


def start_canary(person: Person, version: int = 2) -> str:
    person.pull()
    text = yamledit.set_canary(person.read("rollouts/hpt.yaml"), "half_plus_two", version)
    person.write("rollouts/hpt.yaml", text)
    return person.commit(f"canary half_plus_two {version}")


def test_sync_clones_then_fetches_new_heads(repo: GitRepo, person: Person) -> None:
    assert repo.sync() == person.head()
    person.write("rollouts/hpt.yaml", SPEC.replace("stable: 1 ", "stable: 3 "))
    newer = person.commit("bump stable")
    assert repo.sync() == newer
    assert repo.head() == newer


def test_read_tree_reads_commits_not_the_dirty_working_tree(
    repo: GitRepo, person: Person
) -> None:
    first = repo.sync()
    person.write("rollouts/team/b.yml", "b: 1\n")
    second = person.commit("add b")
    repo.sync()
    # A dirty working tree in the controller's clone must not matter.
    (repo.workdir / "rollouts").mkdir(exist_ok=True)
    (repo.workdir / "rollouts" / "hpt.yaml").write_text("garbage: [\n")
    (repo.workdir / "rollouts" / "stray.yaml").write_text("stray: 1\n")

    assert repo.read_tree(second, "rollouts/") == [
        ("rollouts/hpt.yaml", SPEC),
        ("rollouts/team/b.yml", "b: 1\n"),
    ]
    assert repo.read_tree(first, "rollouts") == [("rollouts/hpt.yaml", SPEC)]
    with pytest.raises(PathNotFound):
        repo.read_tree(second, "missing")


def test_promotion_commit_keeps_formatting_and_lands_on_remote(
    repo: GitRepo, person: Person, remote: Path
) -> None:
    canary_commit = start_canary(person, 2)
    head = repo.sync()
    original = repo.read_file(head, "rollouts/hpt.yaml")
    assert original is not None
    summary = trailers.RolloutTrailers(
        model="half_plus_two", verdict="pass", canary_version=2, promoted_version=2,
        canary_commit=canary_commit,
    )

    def make_change(base: str) -> WriteResult:
        text = repo.read_file(base, "rollouts/hpt.yaml")
        assert text is not None
        return WriteResult(
            repo.commit_file_edit(
                base, "rollouts/hpt.yaml", yamledit.promote(text, "half_plus_two"),
                "rollouts: promote half_plus_two to 2", summary.to_pairs(),
            )
        )

    outcome = repo.write_with_retry(make_change)
    assert outcome.status is WriteStatus.WRITTEN and outcome.attempts == 1
    assert remote_log(remote)[0] == outcome.sha
    promoted = git(remote, "show", "main:rollouts/hpt.yaml") + "\n"
    # Byte-for-byte the original spec, except the one changed line.
    assert promoted == SPEC.replace("stable: 1 ", "stable: 2 ")
    message = git(remote, "log", "-1", "--format=%B", "main")
    assert trailers.RolloutTrailers.from_message(message) == summary
    assert git(remote, "log", "-1", "--format=%an <%ae>", "main") == (
        "rollouts-controller <rollouts@localhost>"
    )


def test_revert_of_a_normal_commit(repo: GitRepo, person: Person, remote: Path) -> None:
    canary_commit = start_canary(person, 2)
    base = repo.sync()
    sha = repo.revert(canary_commit, "rollouts: revert half_plus_two canary 2", [
        (trailers.MODEL, "half_plus_two"), (trailers.REVERTED_VERSION, "2"),
    ])
    assert repo.push(sha).ok
    assert git(remote, "rev-parse", "main^") == base
    assert git(remote, "show", "main:rollouts/hpt.yaml") + "\n" == SPEC
    message = git(remote, "log", "-1", "--format=%B", "main")
    assert f"This reverts commit {canary_commit}." in message
    assert trailers.auto_reverted_versions([message]) == {"half_plus_two": frozenset({2})}


def test_revert_of_a_merge_commit_uses_the_first_parent(
    repo: GitRepo, person: Person, remote: Path
) -> None:
    git(person.path, "checkout", "-q", "-b", "pr")
    text = yamledit.set_canary(person.read("rollouts/hpt.yaml"), "half_plus_two", 2)
    person.write("rollouts/hpt.yaml", text)
    person.commit("canary 2 on a branch", push=False)
    git(person.path, "checkout", "-q", "main")
    person.write("rollouts/notes.txt", "unrelated\n")
    person.commit("unrelated change on main", push=False)
    git(person.path, "merge", "-q", "--no-ff", "-m", "Merge PR: canary 2", "pr")
    person.push()
    merge = person.head()

    head = repo.sync()
    found = repo.find_commit_that_set(
        head, "rollouts/hpt.yaml",
        lambda t: t is not None and yamledit.canary_version(t, "half_plus_two") == 2,
    )
    assert found == merge
    sha = repo.revert(merge, "rollouts: revert canary 2")
    assert repo.push(sha).ok
    assert git(remote, "show", "main:rollouts/hpt.yaml") + "\n" == SPEC
    # The first parent's own change survives the revert.
    assert git(remote, "show", "main:rollouts/notes.txt") == "unrelated"


def test_revert_conflict_falls_back_to_removing_the_canary(
    repo: GitRepo, person: Person, remote: Path
) -> None:
    canary_commit = start_canary(person, 2)
    # The person then edits the same lines: a plain revert can no longer apply.
    text = person.read("rollouts/hpt.yaml").replace("version: 2", "version: 3")
    person.write("rollouts/hpt.yaml", text.replace("stable: 1 ", "stable: 1  "))
    person.commit("canary 3 instead")
    base = repo.sync()
    with pytest.raises(RevertConflict):
        repo.revert(canary_commit, "x", base=base)

    result = repo.revert_or_remove_canary(
        base, canary_commit, "rollouts/hpt.yaml", "half_plus_two",
        "rollouts: revert half_plus_two canary", [(trailers.VERDICT, "fail")],
    )
    assert result.method == "edit"
    assert repo.push(result.sha).ok
    landed = git(remote, "show", "main:rollouts/hpt.yaml") + "\n"
    assert yamledit.canary_version(landed, "half_plus_two") is None
    assert landed == SPEC.replace("stable: 1 ", "stable: 1  ")
    message = git(remote, "log", "-1", "--format=%B", "main")
    assert message.startswith("rollouts: revert half_plus_two canary")
    assert trailers.trailer_values(message, trailers.VERDICT) == ["fail"]
    # A dirty working tree never leaks into the controller's commits.
    assert git(remote, "show", "--name-only", "--format=", "main") == "rollouts/hpt.yaml"


def test_revert_ignores_a_dirty_working_tree(repo: GitRepo, person: Person, remote: Path) -> None:
    canary_commit = start_canary(person, 2)
    repo.sync()
    (repo.workdir / "junk.yaml").write_text("junk: true\n")
    (repo.workdir / "rollouts").mkdir(exist_ok=True)
    (repo.workdir / "rollouts" / "hpt.yaml").write_text("dirty: true\n")
    sha = repo.revert(canary_commit, "rollouts: revert")
    assert repo.push(sha).ok
    assert git(remote, "show", "--name-only", "--format=", "main") == "rollouts/hpt.yaml"
    assert git(remote, "show", "main:rollouts/hpt.yaml") + "\n" == SPEC


def test_push_race_redoes_the_change_and_keeps_both_commits(
    repo: GitRepo, person: Person, remote: Path
) -> None:
    start_canary(person, 2)
    bases: list[str] = []

    def make_change(base: str) -> WriteResult:
        bases.append(base)
        if len(bases) == 1:  # the person pushes between our fetch and our push
            person.pull()
            person.write("rollouts/other.yaml", "other: 1\n")
            person.commit("a person's unrelated commit")
        text = repo.read_file(base, "rollouts/hpt.yaml")
        assert text is not None
        promoted = yamledit.promote(text, "half_plus_two")
        return WriteResult(repo.commit_file_edit(base, "rollouts/hpt.yaml", promoted, "promote"))

    outcome = repo.write_with_retry(make_change, attempts=3)
    assert outcome.status is WriteStatus.WRITTEN and outcome.attempts == 2
    assert bases[1] == person.head() != bases[0]
    history = remote_log(remote)
    assert history[0] == outcome.sha and history[1] == person.head()
    assert git(remote, "show", "main:rollouts/other.yaml") == "other: 1"
    landed = git(remote, "show", "main:rollouts/hpt.yaml") + "\n"
    assert yamledit.stable_version(landed, "half_plus_two") == 2


def test_replan_when_the_head_already_changed_the_canary(
    repo: GitRepo, person: Person, remote: Path
) -> None:
    before = remote_log(remote)
    outcome = repo.write_with_retry(lambda base: None)
    assert outcome.status is WriteStatus.REPLAN and outcome.sha is None
    # Writing the text the file already has is also "nothing to write".
    same = repo.write_with_retry(
        lambda base: WriteResult(repo.commit_file_edit(base, "rollouts/hpt.yaml", SPEC, "noop"))
    )
    assert same.status is WriteStatus.REPLAN
    with pytest.raises(NothingToCommit):
        repo.commit_file_edit(repo.head(), "rollouts/hpt.yaml", SPEC, "noop")
    assert remote_log(remote) == before


def test_every_attempt_losing_the_race_is_exhausted_not_forced(
    repo: GitRepo, person: Person, remote: Path
) -> None:
    counter = iter(range(10))

    def make_change(base: str) -> WriteResult:
        person.pull()
        person.write("rollouts/race.txt", f"{next(counter)}\n")
        person.commit("the person wins again")
        return WriteResult(repo.commit_file_edit(base, "rollouts/mine.txt", "x\n", "mine"))

    outcome = repo.write_with_retry(make_change, attempts=2)
    assert outcome.status is WriteStatus.EXHAUSTED and outcome.attempts == 2
    assert remote_log(remote)[0] == person.head()


def test_refuses_a_directory_it_did_not_create(
    repo: GitRepo, person: Person, tmp_path: Path
) -> None:
    with pytest.raises(GitError, match="did not create"):
        GitRepo(str(repo.url), person.path).sync()
    assert (person.path / "rollouts" / "hpt.yaml").read_text() == SPEC
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine\n")
    with pytest.raises(GitError, match="not empty"):
        GitRepo(str(repo.url), busy).sync()
    repo.sync()
    assert GitRepo(str(repo.url), repo.workdir).sync() == person.head()  # reopening is fine


def test_credentials_never_appear_in_errors_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Port 9 on loopback: nothing listens, so the fetch fails fast without leaving the host.
    leaky = GitRepo("https://user:s3cr3t-token@127.0.0.1:9/x.git", tmp_path / "c", timeout=20)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(GitError) as caught:
            leaky.sync()
    assert "s3cr3t-token" not in str(caught.value)
    # No chained cause either: a traceback would print gitpython's command line.
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert "s3cr3t-token" not in repr(leaky) and "***@127.0.0.1" in leaky.display_url
    assert caplog.records and all("s3cr3t-token" not in r.getMessage() for r in caplog.records)


def test_git_command_errors_are_redacted() -> None:
    url = "https://user:s3cr3t-token@git.example.invalid/x.git"
    error = gitlib.GitCommandError(
        ["git", "push", url], 128, stderr=f"fatal: unable to access '{url}': denied"
    )
    text = _redacted_error(error, "push")
    assert "s3cr3t-token" not in text
    assert "https://***@git.example.invalid/x.git" in text and "exit 128" in text
