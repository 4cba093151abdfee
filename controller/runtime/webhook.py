"""GitHub-style webhook signatures (X-Hub-Signature-256), checked in constant time."""

from __future__ import annotations

import hashlib
import hmac


def signature(secret: bytes, body: bytes) -> str:
    """The header value GitHub sends for `body`: "sha256=<hex HMAC>"."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    if not secret or not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(signature(secret, body), header.strip())
