"""Waiting for a config's new models: until each has an AVAILABLE version
and none still on its way in, one fails, the deadline passes or the wait is
cancelled, with TF Serving's error texts (server_core.cc's "did not become
available") and ours for a timeout (what each pending model's versions are
doing, or why the source found none)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from serving.core.clock import Clock
from serving.core.manager import Manager, VersionStatus
from serving.core.states import VersionState
from serving.core.status import Code, ServingError


def wait_for_models(
    manager: Manager, source_errors: Callable[[], Mapping[str, str]], clock: Clock,
    names: list[str], timeout: float, cancelled: Callable[[], bool] = lambda: False,
) -> None:
    """Wait until each model has an AVAILABLE version, a failure, or the deadline.
    `source_errors`: the source's last poll error per model."""
    if not names:
        return
    deadline = clock.now() + timeout
    while True:
        pending = [n for n in names if not settled(manager.statuses(n))]
        failed = [s for n in pending for s in failures(manager.statuses(n))]
        if failed:
            raise ServingError(
                Code.UNKNOWN,
                f"{len(failed)} model(s) did not become available: {{"
                + "".join(f"{{{describe(s)}}}, " for s in failed) + "}",
            )
        if not pending:
            return
        if cancelled():
            raise ServingError(
                Code.CANCELLED,
                f"interrupted while waiting for {len(pending)} model(s) to become "
                f"available: {', '.join(pending)}",
            )
        remaining = deadline - clock.now()
        if remaining <= 0:
            raise ServingError(Code.DEADLINE_EXCEEDED,
                               timeout_message(manager, source_errors(), pending, timeout))
        manager.wait_until(_all_settled(manager, pending), min(remaining, 0.1))


def settled(statuses: list[VersionStatus]) -> bool:
    # Serving, and no version still on its way in: labels applied next
    # can then rely on every loadable version being AVAILABLE.
    return any(s.state is VersionState.AVAILABLE for s in statuses) and not any(
        s.state in (VersionState.START, VersionState.LOADING) for s in statuses
    )


def _all_settled(manager: Manager, names: list[str]) -> Callable[[], bool]:
    return lambda: all(settled(manager.statuses(n)) for n in names)


def failures(statuses: list[VersionStatus]) -> list[VersionStatus]:
    """A model's failed versions, once none of its versions is still busy."""
    busy = any(s.state is not VersionState.END for s in statuses)
    return [] if busy else [s for s in statuses if s.error is not None]


def describe(status: VersionStatus) -> str:
    text = f"{{name: {status.model} version: {status.version}}}"
    if status.error is not None:
        return f"{text} due to error: {status.error.code.name}: {status.error.message}"
    return f"{text} state: {status.state.value}"


def timeout_message(manager: Manager, errors: Mapping[str, str], pending: list[str],
                    timeout: float) -> str:
    parts: list[str] = []
    for name in pending:
        statuses = manager.statuses(name)
        if statuses:
            parts.extend(describe(s) for s in statuses)
        else:
            why = errors.get(name, "no version found under its base path")
            parts.append(f"{{name: {name}}} no version: {why}")
    return (
        f"Timed out after {timeout:g}s waiting for {len(pending)} model(s) to become "
        f"available: {{" + ", ".join(parts) + "}"
    )
