"""Removing credentials from text before it reaches a log line, a status page or an error.

Pure functions over strings, plus a `logging.Filter` that applies them to every record of
a logger (installed on gitpython's logger, whose debug lines carry whole command lines).

What counts as a credential here:
- the userinfo part of a URL: ``https://user:token@host/x`` -> ``https://***@host/x``
  (a bare ``https://token@host`` is redacted too: GitHub tokens travel as the user name);
- the value of a ``token=`` / ``password=`` style query or config parameter;
- an HTTP ``Authorization`` header value (``Bearer``/``Basic``/``token`` schemes).
"""

from __future__ import annotations

import logging
import re

__all__ = ["REDACTED", "RedactingFilter", "redact", "redact_url"]

REDACTED = "***"

# scheme://userinfo@ : userinfo stops at the characters that end an authority, so
# "https://host/path@x" (an @ in the path) is left alone.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#\s@]+)@")
_SECRET_PARAM = re.compile(
    r"(?P<key>\b(?:access_token|private_token|token|password|passwd|secret|api_key|apikey)=)"
    r"(?P<value>[^&\s'\"]+)",
    re.IGNORECASE,
)
_AUTH_HEADER = re.compile(
    r"(?P<key>\bAuthorization:\s*(?:Bearer|Basic|token)\s+)(?P<value>[^\s'\"]+)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Return `text` with every credential this module knows about replaced by ``***``."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    text = _SECRET_PARAM.sub(lambda m: f"{m['key']}{REDACTED}", text)
    return _AUTH_HEADER.sub(lambda m: f"{m['key']}{REDACTED}", text)


def redact_url(url: str) -> str:
    """A URL fit for display: the same as `redact`, named for readability at call sites."""
    return redact(url)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message so that no handler ever sees a credential.

    The message is formatted once here (msg % args) and the args dropped, because an
    argument can itself be a URL or a command line holding one.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: still never leak its raw args
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        return True
