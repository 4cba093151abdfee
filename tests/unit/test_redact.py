"""redact: credentials never survive into log lines or error messages."""

from __future__ import annotations

import logging

import pytest

from controller.adapters.redact import RedactingFilter, redact, redact_url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:token@host/x", "https://***@host/x"),
        ("https://ghp_abc123@github.com/o/r.git", "https://***@github.com/o/r.git"),
        (
            "fatal: unable to access 'http://u:p%40ss@10.0.0.1:8080/r/'",
            "fatal: unable to access 'http://***@10.0.0.1:8080/r/'",
        ),
        (
            "ssh://git:pw@host:22/r.git and https://a:b@c/d",
            "ssh://***@host:22/r.git and https://***@c/d",
        ),
        ("https://host/path@not-userinfo", "https://host/path@not-userinfo"),
        ("https://host/r?access_token=abc&x=1", "https://host/r?access_token=***&x=1"),
        ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
        (
            "http.extraheader=Authorization: Basic dXNlcjpwdw==",
            "http.extraheader=Authorization: Basic ***",
        ),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),  # scp-style: a user, no secret
        ("no urls here", "no urls here"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(redact(text)) == expected  # idempotent: safe to apply at every layer


def test_redact_url_is_redact() -> None:
    assert redact_url("https://u:secret@h/") == "https://***@h/"


def test_filter_rewrites_message_and_drops_args() -> None:
    record = logging.LogRecord(
        "git.cmd",
        logging.DEBUG,
        __file__,
        1,
        "Popen(%s)",
        ("git fetch https://u:secret@h/r",),
        None,
    )
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == "Popen(git fetch https://***@h/r)"
    assert record.args is None
