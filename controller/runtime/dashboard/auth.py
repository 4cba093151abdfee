"""Who may see the dashboard: a bearer token or a login cookie (pure checks).

With `--dashboard-token-file`, a request carries `Authorization: Bearer <token>` or
the cookie that `POST /login` sets. The cookie holds an HMAC of the token, never
the token itself, so a leaked cookie does not reveal it; comparisons are
constant-time. Without a token file the dashboard is open, which `check_listen`
allows only on a loopback address.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from http.cookies import SimpleCookie

COOKIE = "rollouts_dashboard"
_SESSION_CONTEXT = b"rollouts dashboard session v1"


class DashboardConfigError(ValueError):
    """The dashboard cannot be served safely as configured; the message says why."""


def session_value(token: str) -> str:
    """The login cookie's value for `token`."""
    return hmac.new(token.encode(), _SESSION_CONTEXT, hashlib.sha256).hexdigest()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def check_listen(listen: str, token: str) -> None:
    """Refuse an open dashboard on an address (`HOST:PORT`) other hosts can reach."""
    host = listen.rpartition(":")[0] or "127.0.0.1"
    if not token and not is_loopback(host):
        raise DashboardConfigError(
            f"--listen {listen} is not a loopback address and the dashboard there would be "
            "open to anyone: give --dashboard-token-file (or listen on 127.0.0.1)"
        )


def allowed(token: str, authorization: str | None, cookie_header: str | None) -> bool:
    """Whether a request with these headers may see the dashboard."""
    if not token:
        return True
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(),
                                                              token.encode()):
            return True
    if cookie_header:
        cookies: SimpleCookie = SimpleCookie()
        try:
            cookies.load(cookie_header)
        except Exception:  # noqa: BLE001 (a malformed Cookie header is just no cookie)
            return False
        morsel = cookies.get(COOKIE)
        if morsel is not None and hmac.compare_digest(morsel.value.encode(),
                                                      session_value(token).encode()):
            return True
    return False


def token_matches(token: str, given: str) -> bool:
    return bool(token) and hmac.compare_digest(given.strip().encode(), token.encode())
