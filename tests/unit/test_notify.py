"""Notices: their bodies, and delivery with retries that never blocks the controller."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest

from controller.decide.notices import Notice, render, text
from controller.runtime.notify import NotificationTarget, Notifier
from controller.runtime.webhook import verify
from controller.spec.controller_config import ConfigFileError, read_controller_config
from tests.helpers import WAIT_S, wait_for

NOTICE = Notice("reverted", "hp2", 1_800_000_000.0, 3, 2, "c" * 40, "fail",
                summary="error rate 20.00% > max 1.00% in 2 consecutive intervals",
                details={"Rollouts-Intervals": "0 passed, 2 failed, 0 not judged"})


def test_bodies_say_model_versions_commit_verdict_and_numbers() -> None:
    document = json.loads(render(NOTICE, "json"))
    assert document["event"] == "reverted" and document["model"] == "hp2"
    assert document["canaryVersion"] == 3 and document["stableVersion"] == 2
    assert document["commit"] == "c" * 40 and document["verdict"] == "fail"
    assert document["details"] == {"Rollouts-Intervals": "0 passed, 2 failed, 0 not judged"}
    assert json.loads(render(NOTICE, "slack")) == {"text": text(NOTICE)}
    assert text(NOTICE) == ("hp2: reverted (canary v3, stable v2) · commit cccccccccccc\n"
                            "error rate 20.00% > max 1.00% in 2 consecutive intervals")
    apply = Notice("failed_to_apply", "", 1.0, target="s0", summary="s0: UNAVAILABLE")
    assert text(apply) == "failed to apply · target s0\ns0: UNAVAILABLE"


class Receiver:
    """A fake post: answers from a script of statuses (or raises), recording each call."""

    def __init__(self, *answers: int | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, bytes, dict[str, str]]] = []

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        self.calls.append((url, body, headers))
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_retries_with_backoff_then_delivers_signed() -> None:
    receiver, sleeps = Receiver(httpx.ConnectError("refused"), 503, 200), list[float]()
    notifier = Notifier([NotificationTarget("http://127.0.0.1:1/hook", secret=b"s3cret")],
                        post=receiver, sleep=sleeps.append)
    notifier.send(NOTICE)
    notifier.close()
    assert notifier.delivered == 1 and notifier.failed == 0
    assert sleeps == [0.5, 1.0]
    _, body, headers = receiver.calls[-1]
    assert verify(b"s3cret", body, headers["x-hub-signature-256"])
    assert headers["x-rollouts-event"] == "reverted"


def test_gives_up_after_its_attempts_and_on_a_refusal() -> None:
    down, sleeps = Receiver(*[httpx.ConnectError("refused")] * 5), list[float]()
    notifier = Notifier([NotificationTarget("http://127.0.0.1:1/a")], post=down,
                        sleep=sleeps.append)
    notifier.send(NOTICE)
    notifier.close()
    assert notifier.failed == 1 and len(down.calls) == 5 and sleeps == [0.5, 1.0, 2.0, 4.0]
    refused = Receiver(404)
    notifier = Notifier([NotificationTarget("http://127.0.0.1:1/b")], post=refused,
                        sleep=sleeps.append)
    notifier.send(NOTICE)
    notifier.close()
    assert notifier.failed == 1 and len(refused.calls) == 1  # a 404 is not retried


def test_targets_get_only_the_events_they_asked_for() -> None:
    receiver = Receiver()
    notifier = Notifier([NotificationTarget("http://127.0.0.1:1/a",
                                            events=frozenset({"promoted"}))], post=receiver)
    notifier.send(NOTICE)
    notifier.send(Notice("promoted", "hp2", 2.0, 3, 3, "d" * 40, "pass"))
    notifier.close()
    assert [json.loads(body)["event"] for _, body, _ in receiver.calls] == ["promoted"]


def test_a_full_queue_drops_instead_of_blocking() -> None:
    release = threading.Event()

    def stuck(url: str, body: bytes, headers: dict[str, str]) -> int:
        release.wait(30)
        return 200

    notifier = Notifier([NotificationTarget("http://127.0.0.1:1/a")], post=stuck, max_queued=2)
    for _ in range(10):
        notifier.send(NOTICE)  # returns at once even though the receiver hangs
    assert notifier.dropped >= 7
    release.set()
    notifier.close()
    assert wait_for(lambda: notifier.delivered + notifier.dropped == 10, WAIT_S)


def test_a_receiver_that_hangs_delays_no_other() -> None:
    release, delivered = threading.Event(), list[str]()

    def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        if url.endswith("/hangs"):
            release.wait(30)
        delivered.append(url)
        return 200

    notifier = Notifier([NotificationTarget("http://127.0.0.1:1/hangs"),
                         NotificationTarget("http://127.0.0.1:1/answers")], post=post)
    notifier.send(NOTICE)
    notifier.send(NOTICE)
    # Both notices reach the receiver that answers while the first one is still stuck.
    assert wait_for(lambda: delivered.count("http://127.0.0.1:1/answers") == 2, 10)
    assert "http://127.0.0.1:1/hangs" not in delivered
    release.set()
    notifier.close()
    assert notifier.delivered == 4


def test_config_file_notifications_are_validated_and_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    good = tmp_path / "good.yaml"
    good.write_text(
        "notifications:\n"
        f"  - {{url: 'https://hooks.example.test/a', secretFile: {secret}}}\n"
        "  - url: https://hooks.example.test/b\n"
        "    format: slack\n"
        "    events: [promoted, reverted]\n")
    config = read_controller_config(str(good))
    assert [n.format for n in config.notifications] == ["json", "slack"]
    assert config.notifications[1].events == ["promoted", "reverted"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("notifications:\n  - url: https://hooks.example.test/a\n"
                   "    events: [promotd]\n")
    with pytest.raises(ConfigFileError) as caught:
        read_controller_config(str(bad))
    assert f"{bad}:3:" in str(caught.value) and "promotd" in str(caught.value)


def test_every_event_reads_as_words_and_is_a_config_value(tmp_path: Path) -> None:
    from controller.decide.notices import EVENTS

    assert {"aborted", "ready_to_merge", "failed_held"} <= set(EVENTS)
    for event in EVENTS:
        assert text(Notice(event, "hp2", 1.0)).startswith("hp2: ")
    config = tmp_path / "controller.yaml"
    config.write_text("notifications:\n  - url: http://127.0.0.1:1/hook\n"
                      "    events: [aborted, ready_to_merge, failed_held]\n")
    entry = read_controller_config(str(config)).notifications[0]
    assert entry.events == ["aborted", "ready_to_merge", "failed_held"]
