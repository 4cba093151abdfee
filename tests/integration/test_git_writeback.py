"""Who writes the verdicts and where: the configured author, git's own SSH signing, and
the write-back mode that proposes each verdict on a branch of its own.

Real git throughout: a bare remote, a person's clone, the controller's clone, an SSH
key made by the test with ssh-keygen and checked with `git verify-commit`.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path
from typing import Any

import pytest

from controller.cli.settings import load_settings
from controller.runtime.runner import Controller
from controller.runtime.verdicts import Pending
from tests.conftest import ServerProcess, wait_for
from tests.gitops import Person, git, spec
from tests.integration.test_controller_canary import (  # noqa: F401 - fleet is a fixture
    canary_block,
    fleet,
    label_version,
    settings,
    split_of,
)
from tests.traffic import Traffic

pytestmark = pytest.mark.integration

AUTHOR = ("Rollouts Bot", "rollouts-bot@example.test")


def ssh_key(folder: Path) -> tuple[Path, Path]:
    """A fresh ed25519 key and an allowed-signers file that trusts it for AUTHOR's email."""
    folder.mkdir(exist_ok=True)
    key = folder / "signing_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rollouts", "-f", str(key)],
        check=True, capture_output=True, timeout=30,
    )
    public = (folder / "signing_key.pub").read_text().split()
    allowed = folder / "allowed_signers"
    allowed.write_text(f"{AUTHOR[1]} {public[0]} {public[1]}\n")
    return key, allowed


def config_file(tmp_path: Path, person: Person, **extra: str) -> Path:
    lines = [
        f"repo: {person.url}",
        f"modelRoot: {tmp_path}",
        "targets: [{name: s0, grpc: '127.0.0.1:1'}]",
        f"stateDir: {tmp_path / 'state'}",
        f"gitAuthor: {{name: {AUTHOR[0]}, email: {AUTHOR[1]}}}",
        *(f"{key}: {value}" for key, value in extra.items()),
    ]
    path = tmp_path / "controller.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def controller_from(config: Path) -> Controller:
    args = argparse.Namespace(config=str(config), target=None)
    return Controller(load_settings(args))


def verify(person: Person, allowed: Path, sha: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", f"gpg.ssh.allowedSignersFile={allowed}", "verify-commit", sha],
        cwd=person.remote, capture_output=True, text=True, timeout=30,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1"},
    )


def canary_pending(person: Person, kind: str = "fail") -> Pending:
    person.write("rollouts/hp2.yaml", spec(stable=1), "hp2 at v1")
    started = person.write("rollouts/hp2.yaml", spec(stable=1, canary=2), "canary hp2 v2")
    return Pending(kind, "hp2", 2, "rollouts/hp2.yaml", started, "Analysis failed: a test")


def test_verdict_commit_has_the_configured_author_and_a_verifiable_ssh_signature(
    tmp_path: Path,
) -> None:
    person = Person(tmp_path)
    pending = canary_pending(person)
    key, allowed = ssh_key(tmp_path)
    controller = controller_from(config_file(tmp_path, person, gitSigningKey=str(key)))
    try:
        sha = controller.driver.finish(pending)
    finally:
        controller.stop()
    assert sha is not None and person.remote_head() == sha
    who = git(person.remote, "log", "-1", "--format=%an <%ae>|%cn <%ce>", sha)
    assert who == f"{AUTHOR[0]} <{AUTHOR[1]}>|{AUTHOR[0]} <{AUTHOR[1]}>"
    checked = verify(person, allowed, sha)
    assert checked.returncode == 0, checked.stderr
    assert f'Good "git" signature for {AUTHOR[1]}' in checked.stderr
    # A signature by any other key does not verify: the check above can fail.
    _, other_allowed = ssh_key(tmp_path / "other")
    assert verify(person, other_allowed, sha).returncode != 0


def test_unsigned_by_default_and_a_bad_signing_key_is_a_config_error(tmp_path: Path) -> None:
    person = Person(tmp_path)
    pending = canary_pending(person)
    controller = controller_from(config_file(tmp_path, person))
    try:
        sha = controller.driver.finish(pending)
    finally:
        controller.stop()
    assert sha is not None
    assert git(person.remote, "log", "-1", "--format=%G?", sha) == "N"  # no signature
    with pytest.raises(ValueError, match=r"gitSigningKey .*no SSH key file"):
        controller_from(config_file(tmp_path, person, gitSigningKey=str(tmp_path / "nope")))
    with pytest.raises(ValueError, match=r"controller.yaml:\d+:\d+: .*writeBack"):
        controller_from(config_file(tmp_path, person, writeBack="pr"))


def test_branch_mode_proposes_the_verdict_on_its_own_branch_once(tmp_path: Path) -> None:
    person = Person(tmp_path)
    pending = canary_pending(person, "promote")
    head_before = person.remote_head()
    controller = controller_from(config_file(tmp_path, person, writeBack="branch"))
    try:
        assert controller.driver.finish(pending) is None  # nothing on the followed branch
        assert controller.driver.awaiting_merge == {"hp2": "rollouts/hp2/promote-2"}
        branch_tip = git(person.remote, "rev-parse", "refs/heads/rollouts/hp2/promote-2")
        # Asked again (every tick until merged), it pushes nothing more.
        assert controller.driver.finish(pending) is None
    finally:
        controller.stop()
    assert person.remote_head() == head_before
    assert git(person.remote, "rev-parse", "refs/heads/rollouts/hp2/promote-2") == branch_tip
    assert git(person.remote, "rev-parse", f"{branch_tip}^") == head_before
    assert git(person.remote, "show", f"{branch_tip}:rollouts/hp2.yaml") == spec(
        stable=2
    ).rstrip("\n")
    message = git(person.remote, "log", "-1", "--format=%B", branch_tip)
    assert "Rollouts-Promoted-Version: 2" in message
    assert f"Rollouts-Canary-Commit: {pending.canary_commit}" in message
    assert git(person.remote, "log", "-1", "--format=%an <%ae>", branch_tip) == (
        f"{AUTHOR[0]} <{AUTHOR[1]}>"
    )


def split_weight(server: ServerProcess) -> int | None:
    split = split_of(server)
    return None if split is None else int(split.canary_weight_bp)


def test_branch_mode_holds_the_canary_until_its_promotion_is_merged(
    fleet: dict[str, Any], tmp_path: Path  # noqa: F811 - the imported fixture
) -> None:
    person: Person = fleet["person"]
    servers: list[ServerProcess] = fleet["servers"]
    traffic = Traffic([s.rest_url for s in servers]).start()
    controller = Controller(settings(fleet, tmp_path, write_back="branch",
                                     git_author=AUTHOR))
    controller.start()
    branch = "refs/heads/rollouts/hp2/promote-2"

    def proposed() -> bool:
        return bool(git(person.remote, "for-each-ref", "--format=%(objectname)", branch))

    try:
        assert wait_for(lambda: label_version(servers[0], "stable") == 1, 60, 0.2)
        started = person.write(
            "rollouts/hp2.yaml",
            spec(stable=1, canary=2, canary_block=canary_block()),
            "canary hp2 v2",
        )
        assert wait_for(proposed, 90, 0.3), controller.status()
        # Held as the verdict left it: canary labelled and split at 50% everywhere,
        # the followed branch untouched, the status naming the branch to merge.
        held = wait_for(
            lambda: person.remote_head() != started
            or not all(label_version(s, "canary") == 2 and split_weight(s) == 5000
                       for s in servers),
            3, 0.3,
        )
        assert not held, controller.status()
        rollout = controller.status()["models"]["hp2"]["rollout"]
        assert rollout is not None and rollout["awaitingMerge"] == "rollouts/hp2/promote-2", rollout
        # A person (or a bot) merges it: the promotion is applied from the followed branch.
        git(person.clone, "fetch", "-q", "origin", f"{branch}:refs/remotes/origin/proposal")
        git(person.clone, "merge", "-q", "--no-ff", "-m", "Merge the promotion of hp2",
            "origin/proposal")
        person.push()
        assert wait_for(
            lambda: all(label_version(s, "stable") == 2 and split_of(s) is None
                        for s in servers), 60, 0.2,
        ), controller.status()
        assert wait_for(lambda: controller.status()["models"]["hp2"]["rollout"] is None, 30,
                        0.1)
    finally:
        controller.stop()
        traffic.stop()
    subjects = person.remote_log()
    assert subjects[0] == "Merge the promotion of hp2"
    assert subjects.count("rollouts: promote hp2 to 2") == 1  # the branch's, merged
    assert traffic.statuses[500] == 0 and traffic.statuses[0] == 0
