"""Notifications from a real controller to real HTTP receivers on loopback.

A canary runs on a real server under real traffic and is promoted; a JSON receiver
(with an HMAC secret) and a Slack-format receiver hear of it, with the promotion
commit that reached the remote, and a receiver that is down changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.decide.fleet import TargetAddress
from controller.runtime.notify import NotificationTarget
from controller.runtime.runner import Controller, ControllerSettings
from controller.runtime.webhook import verify
from tests.conftest import monitored_flags, wait_for
from tests.gitops import Person, spec
from tests.helpers import free_port
from tests.receiver import Receiver
from tests.traffic import Traffic

pytestmark = pytest.mark.integration

CANARY = (
    "    split: {hashKey: x-user-id}\n"
    "    steps: [{weight: 50, hold: 2s}]\n"
    "    analysis: {interval: 1s, minRequests: 5, failureLimit: 2,"
    " checks: {errorRate: {max: 0.05}}}\n"
)


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    pair = Receiver(), Receiver()
    yield pair
    for receiver in pair:
        receiver.stop()


def test_a_promotion_is_told_to_every_receiver(
    tmp_path: Path, shared_servers: Any, server_pool: Any, make_model: Any,
    receivers: tuple[Receiver, Receiver],
) -> None:
    plain, slack = receivers
    root = tmp_path / "models"
    make_model(root / "hp2", 1)
    make_model(root / "hp2", 2)
    server = shared_servers(monitored_flags(server_pool.workdir), 1)[0]
    person = Person(tmp_path)
    person.write("rollouts/hp2.yaml", spec(stable=1), "hp2 at v1")
    down = f"http://127.0.0.1:{free_port()}/nobody-listens"
    controller = Controller(ControllerSettings(
        repo=person.url, model_root=str(root),
        targets=[TargetAddress("s0", server.address, server.rest_url)],
        state_dir=tmp_path / "state", poll_interval_s=0.5, reconcile_interval_s=0.25,
        reconcile_deadline_s=30,
        notifications=(
            NotificationTarget(plain.url, secret=b"shared-secret"),
            NotificationTarget(slack.url, format="slack", events=frozenset({"promoted"})),
            NotificationTarget(down),
        ),
    ))
    traffic = Traffic([server.rest_url]).start()
    controller.start()
    try:
        person.write("rollouts/hp2.yaml", spec(stable=1, canary=2, canary_block=CANARY),
                     "canary hp2 v2")
        assert wait_for(lambda: "promoted" in plain.events(), 120, 0.2), (
            plain.events(), controller.status())
        assert wait_for(lambda: len(slack.posts) == 1, 30, 0.1)
        # The receiver that is down is retried with backoff, then given up on, logged;
        # the promotion happened regardless.
        assert wait_for(lambda: controller.notifier.failed >= 1, 60, 0.2)
    finally:
        controller.stop()
        traffic.stop()

    events = plain.events()
    assert events.index("canary_started") < events.index("promoted")
    for headers, body in plain.posts:
        assert verify(b"shared-secret", body, headers.get("x-hub-signature-256"))
    promoted = next(json.loads(b) for _, b in plain.posts if json.loads(b)["event"] == "promoted")
    assert promoted["model"] == "hp2" and promoted["canaryVersion"] == 2
    assert promoted["stableVersion"] == 1 and promoted["verdict"] == "pass"
    assert promoted["commit"] == person.remote_head()  # the promotion commit itself
    assert promoted["summary"].startswith("Analysis passed"), promoted["summary"]
    assert "Rollouts-Intervals" in promoted["details"]
    text = json.loads(slack.posts[0][1])["text"]
    assert text.startswith("hp2: promoted (canary v2, stable v1)")
    assert "x-hub-signature-256" not in slack.posts[0][0]  # no secret, no signature
