"""`analysis.onFailure: pause` end to end: real server, real traffic, real git, real
HTTP receivers on loopback.

A failing canary is held, not reverted: out of traffic (no split on the server, no
request reaches it) but still loaded and labelled, no revert commit, the status and
a `failed_held` notice give its numbers. A person's `rollouts retry`, run in another
clone, starts a fresh attempt (a new journal on the retry commit), which fails and is
held again; their `rollouts abort` then unloads it, the spec is back to stable as an
abort, and an `aborted` notice says who and why. One notification receiver hangs
throughout and another is down: the others hear everything all the same.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.journal import parse_journal
from controller.decide.fleet import TargetAddress
from controller.runtime.notify import NotificationTarget
from controller.runtime.runner import Controller, ControllerSettings
from controller.runtime.webhook import verify
from serving.generated import rollouts_serving_pb2 as ext
from tests.conftest import REPO, ServerProcess, monitored_flags
from tests.gitops import ENV, Person, git, rollouts, spec
from tests.helpers import FAULTHANDLER_ENV, free_port, interrupt, wait_for
from tests.receiver import Receiver
from tests.traffic import Traffic

pytestmark = pytest.mark.integration

# v3 answers INVALID_ARGUMENT on half the inputs (an in-graph assertion): counted here.
CANARY = (
    "    split: {hashKey: x-user-id}\n"
    "    steps: [{weight: 50, hold: 30s}]\n"
    "    analysis:\n"
    "      interval: 1s\n"
    "      minRequests: 5\n"
    "      failureLimit: 2\n"
    "      onFailure: pause  # a person decides\n"
    "      checks: {errorRate: {max: 0.05, codes: [INVALID_ARGUMENT, INTERNAL]}}\n"
)
ONCALL = {"GIT_AUTHOR_NAME": "Olu Oncall", "GIT_AUTHOR_EMAIL": "olu@example.test",
          "GIT_COMMITTER_NAME": "Olu Oncall", "GIT_COMMITTER_EMAIL": "olu@example.test"}


def served(server: ServerProcess) -> tuple[dict[int, str], dict[str, int], bool]:
    """What the server itself says of hp2: version states, labels, whether it splits."""
    for info in server.rollout_stub().ListModels(ext.ListModelsRequest(), timeout=5).models:
        if info.name == "hp2":
            return ({v.version: v.state for v in info.versions}, dict(info.labels),
                    info.has_split)
    return {}, {}, False


@pytest.fixture
def receivers() -> Iterator[dict[str, Receiver]]:
    made = {"json": Receiver(), "slack": Receiver(), "hung": Receiver()}
    made["hung"].hold()
    yield made
    for receiver in made.values():
        receiver.stop()


def test_held_failure_then_retry_then_abort(
    tmp_path: Path, shared_servers: Any, server_pool: Any, make_model: Any,
    receivers: dict[str, Receiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "controller.runtime.reconcile")
    root = tmp_path / "models"
    make_model(root / "hp2", 1)
    make_model(root / "hp2", 3, offset=3.0, fail_above=5.0)
    server = shared_servers(monitored_flags(server_pool.workdir), 1)[0]
    person = Person(tmp_path)
    person.write("rollouts/hp2.yaml", spec(stable=1), "hp2 at v1")
    oncall = tmp_path / "oncall"
    git(tmp_path, "clone", "-q", person.url, str(oncall))
    listen = f"127.0.0.1:{free_port()}"
    hung, plain, slack = receivers["hung"], receivers["json"], receivers["slack"]
    controller = Controller(ControllerSettings(
        repo=person.url, model_root=str(root),
        targets=[TargetAddress("s0", server.address, server.rest_url)],
        state_dir=tmp_path / "state", poll_interval_s=0.5, reconcile_interval_s=0.25,
        reconcile_deadline_s=30, listen=listen,
        notifications=(
            # First in line, and never answering: nobody else may wait on it.
            NotificationTarget(hung.url),
            NotificationTarget(f"http://127.0.0.1:{free_port()}/nobody-listens"),
            NotificationTarget(plain.url, secret=b"shared-secret"),
            NotificationTarget(slack.url, format="slack",
                               events=frozenset({"failed_held", "aborted"})),
        ),
    ))

    def rollout() -> dict[str, Any]:
        model = controller.status()["models"].get("hp2")
        return dict(model["rollout"] or {}) if model else {}

    def told(event: str) -> list[dict[str, Any]]:
        return [d for d in plain.documents() if d["event"] == event]

    def journal(commit: str) -> list[str]:
        """The kinds of the journal's events on `commit`, as pushed to the remote."""
        shown = subprocess.run(["git", "notes", "--ref=rollouts", "show", commit],
                               cwd=person.remote, env=ENV, capture_output=True, text=True,
                               check=False)
        return [e.kind for e in parse_journal(shown.stdout.splitlines())]

    def reconciled_since(seen: str) -> Callable[[], bool]:
        return lambda: controller.status()["lastReconcileAt"] != seen

    http = controller.http_server()
    assert http is not None
    http.start()
    traffic = Traffic([server.rest_url], max_seconds=900).start()
    controller.start()
    # A person watching it all live, as `kubectl argo rollouts get rollout --watch`.
    watch = subprocess.Popen(
        [sys.executable, "-m", "controller", "status", "--watch", "--interval", "250ms",
         "--controller", f"http://{listen}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=ENV | FAULTHANDLER_ENV | {"PYTHONPATH": str(REPO), "COLUMNS": "200"})
    watched: list[str] = []
    assert watch.stdout is not None
    stdout = watch.stdout
    threading.Thread(target=lambda: watched.extend(iter(stdout.readline, "")),
                     daemon=True).start()
    try:
        started = person.write("rollouts/hp2.yaml",
                               spec(stable=1, canary=3, canary_block=CANARY), "canary hp2 v3")

        # -- held: out of traffic, still loaded and labelled, nothing written to git
        assert wait_for(lambda: rollout().get("phase") == "failed_held", 120, 0.1), (
            controller.status())
        assert wait_for(lambda: not served(server)[2], 30, 0.1), served(server)
        states, labels, _ = served(server)
        assert states.get(3) == "AVAILABLE" and labels == {"stable": 1, "canary": 3}
        assert person.remote_head() == started  # no revert commit
        held = rollout()
        assert held["weightBp"] == 0 and held["canaryCommit"] == started
        assert "error rate" in held["message"] and "held at weight 0" in held["message"]
        assert held["intervals"][-1]["outcome"] == "fail"
        status = controller.status()
        assert [h["phase"] for h in status["held"]] == ["failed_held"]
        assert status["models"]["hp2"]["servingWeightBp"] == 0
        # A person's view of it, from the controller's HTTP status.
        shown = rollouts(tmp_path, "status", "--controller", f"http://{listen}",
                         env={"COLUMNS": "200"})
        assert shown.returncode == 0, shown.stderr
        assert "failed, held: waiting for abort, retry or promote" in shown.stdout, shown.stdout
        assert "error rate" in shown.stdout

        # Real traffic reaches only stable now (one request first: the client is
        # sequential, so none still in flight was routed by the old split).
        sent = sum(traffic.statuses.values())
        assert wait_for(lambda: sum(traffic.statuses.values()) > sent, 60, 0.05)
        on_canary, sent = traffic.versions["3"], sum(traffic.versions.values())
        assert wait_for(lambda: sum(traffic.versions.values()) >= sent + 100, 120, 0.05)
        assert traffic.versions["3"] == on_canary, (
            [f"{r.created:.3f} {r.getMessage()}" for r in caplog.records], served(server))

        # -- told: with the numbers, signed; while one receiver hangs on its first POST
        assert wait_for(lambda: bool(told("failed_held")), 60, 0.1), plain.events()
        notice = told("failed_held")[0]
        assert (notice["model"], notice["canaryVersion"], notice["stableVersion"]) == (
            "hp2", 3, 1)
        assert notice["commit"] == started and notice["verdict"] == "held"
        assert "error rate" in notice["summary"] and "max 5.00%" in notice["summary"], notice
        assert "Rollouts-Intervals" in notice["details"]
        assert wait_for(lambda: len(slack.posts) == 1, 30, 0.1)
        text = json.loads(slack.posts[0][1])["text"]
        assert text.startswith("hp2: failed, held for a person (canary v3, stable v1)"), text
        assert hung.posts  # asked, and never answered (tests/unit/test_notify.py has the
        # deterministic proof that a receiver that hangs delays no other)

        # -- held across many reconciles: never becomes a revert
        for _ in range(3):
            assert wait_for(reconciled_since(controller.status()["lastReconcileAt"]), 30, 0.05)
        assert person.remote_head() == started and rollout()["phase"] == "failed_held"

        # -- retry, from the on-call's clone: a fresh attempt on the retry commit
        git(oncall, "pull", "-q", "--no-rebase", "origin", "main")
        retried = rollouts(oncall, "retry", "hp2", "--reason", "flaky upstream", "--push",
                           env=ONCALL)
        assert retried.returncode == 0, retried.stderr
        assert "rollouts: retry hp2 canary 3 (attempt 2)" in retried.stdout
        retry_commit = person.remote_head()
        assert "    attempt: 2\n" in person.remote_file("rollouts/hp2.yaml")
        assert wait_for(lambda: "started" in journal(retry_commit), 60, 0.1), (
            controller.status())
        # v3 still fails: the new attempt is judged from its first step and held again.
        assert wait_for(lambda: "verdict" in journal(retry_commit), 90, 0.1), (
            controller.status())
        assert wait_for(lambda: rollout().get("canaryCommit") == retry_commit
                        and rollout().get("phase") == "failed_held", 30, 0.1)
        assert journal(started).count("verdict") == 1  # the first attempt's journal is done
        assert wait_for(lambda: len(told("failed_held")) == 2, 60, 0.1), plain.events()
        assert told("failed_held")[1]["commit"] == retry_commit

        # -- abort, from the on-call's clone: unloaded, back to stable, told
        git(oncall, "pull", "-q", "--no-rebase", "origin", "main")
        aborted = rollouts(oncall, "abort", "hp2", "--reason", "v3 rejects inputs", "--push",
                           env=ONCALL)
        assert aborted.returncode == 0, aborted.stderr
        abort_commit = person.remote_head()
        assert person.remote_file("rollouts/hp2.yaml") == spec(stable=1).rstrip("\n")
        parsed = git(person.remote, "log", "-1", "--format=%(trailers:only,unfold)", "main")
        assert "Rollouts-Verdict: abort" in parsed
        assert "Rollouts-Requested-By: Olu Oncall <olu@example.test>" in parsed
        assert wait_for(lambda: served(server)[0].get(3, "END") == "END", 60, 0.1), (
            served(server))
        assert served(server)[1] == {"stable": 1}
        assert wait_for(lambda: bool(told("aborted")), 60, 0.1), plain.events()
        notice = told("aborted")[0]
        assert (notice["model"], notice["canaryVersion"], notice["stableVersion"]) == (
            "hp2", 3, 1)
        assert notice["commit"] == abort_commit and notice["verdict"] == "abort"
        assert "Olu Oncall" in notice["summary"] and "v3 rejects inputs" in notice["summary"]
        # The notes reach the remote just after the notice goes out.
        assert wait_for(lambda: "aborted" in journal(retry_commit), 30, 0.1)
        assert wait_for(lambda: len(slack.posts) == 3, 30, 0.1)
        assert json.loads(slack.posts[2][1])["text"].startswith(
            "hp2: aborted (canary v3, stable v1)")
        assert controller.status()["held"] == [] and rollout() == {}
        # No revert commit at any point: the abort is the person's.
        assert not any(s.startswith("rollouts: revert") for s in person.remote_log())

        # The watch showed each stage as it came, and ends on Ctrl-C.
        def line_of(text: str, after: int = -1) -> int:
            return next((i for i, line in enumerate(watched) if text in line and i > after),
                        -1)

        first = line_of(f"hp2 canary v3 (commit {started[:12]}): failed, held")
        second = line_of(f"hp2 canary v3 (commit {retry_commit[:12]}): failed, held", first)
        assert first >= 0 and second > first, watched
        assert wait_for(lambda: line_of("(in sync)", second) > second, 30, 0.1), watched[second:]
        assert interrupt(watch) == 0, watch.stderr.read() if watch.stderr else ""
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait(timeout=10)
        controller.stop()
        http.stop()
        traffic.stop()
    for headers, body in plain.posts:
        assert verify(b"shared-secret", body, headers.get("x-hub-signature-256"))
    assert traffic.statuses[0] == 0
