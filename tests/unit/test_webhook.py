"""The controller's webhook: GitHub's HMAC signature, compared in constant time,
and a bounded body; only a valid push triggers a fetch."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from controller.runtime import status_server, webhook
from controller.runtime.status import ControllerState, StatusDoc, status_document
from controller.runtime.status_server import MAX_WEBHOOK_BODY, build_app

SECRET = b"s3cret"


@dataclass
class FakeController:
    """A `status_server.StatusSource`."""

    webhook_secret: bytes = SECRET
    triggered: int = 0

    def trigger(self) -> None:
        self.triggered += 1

    def status(self) -> StatusDoc:
        return status_document(ControllerState(), repo="/srv/r.git", branch="main", targets=[])

    def metrics_text(self) -> bytes:
        return b"# no series\n"


def post(client: TestClient, body: bytes, signature: str | None) -> Any:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-hub-signature-256"] = signature
    return client.post("/webhook", content=body, headers=headers)


def test_signed_push_triggers_and_forgeries_do_not() -> None:
    controller = FakeController()
    client = TestClient(build_app(controller))
    body = b'{"ref": "refs/heads/main"}'
    assert post(client, body, webhook.signature(SECRET, body)).status_code == 202
    assert controller.triggered == 1
    for forged in (None, "", "sha1=abc", webhook.signature(b"other", body),
                   webhook.signature(SECRET, body + b" ")):
        reply = post(client, body, forged)
        assert reply.status_code == 401, forged
        assert reply.json() == {"error": "bad or missing X-Hub-Signature-256"}
    assert controller.triggered == 1


def test_no_secret_configured_refuses_everything() -> None:
    controller = FakeController(b"")
    client = TestClient(build_app(controller))
    assert post(client, b"{}", webhook.signature(b"", b"{}")).status_code == 401
    assert controller.triggered == 0


@pytest.mark.parametrize("declared", [True, False])
def test_bodies_over_the_limit_are_refused_before_checking(declared: bool) -> None:
    controller = FakeController()
    client = TestClient(build_app(controller))
    body = b"x" * (MAX_WEBHOOK_BODY + 1)
    if declared:
        reply = post(client, body, webhook.signature(SECRET, body))
    else:
        # Chunked: no Content-Length to refuse on, so the stream is counted.
        reply = client.post("/webhook", content=iter([body[:1000], body[1000:]]),
                            headers={"x-hub-signature-256": webhook.signature(SECRET, body)})
    assert reply.status_code == 413 and reply.json() == {"error": "body too large"}
    assert controller.triggered == 0


def test_signature_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return a == b

    monkeypatch.setattr(hmac, "compare_digest", spy)
    good = webhook.signature(SECRET, b"{}")
    assert webhook.verify(SECRET, b"{}", good)
    assert not webhook.verify(SECRET, b"{}", "sha256=00")
    assert calls == [(good, good), (good, "sha256=00")]
    assert status_server.__dict__["verify"] is webhook.verify  # the endpoint uses this check
