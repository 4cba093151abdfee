"""What the controller tells people about a rollout, and how each message reads (pure).

A `Notice` is one thing that happened (a canary started, a step advanced, a
verdict was written, a change could not be applied or written back) with the
model, versions, commit, verdict and the numbers against their thresholds.
`render` turns it into a request body: our JSON document, or Slack's
incoming-webhook shape (`{"text": ...}`, which Mattermost, Rocket.Chat and
others accept too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, get_args

from controller.spec.controller_config import NoticeEvent

__all__ = ["EVENTS", "FORMATS", "Notice", "render", "text"]

# The events a notification target may ask for (all by default); named in the
# controller config's schema, so a misspelt event is a config error at its line.
Event = NoticeEvent
EVENTS: tuple[Event, ...] = get_args(NoticeEvent)
FORMATS = ("json", "slack")
_TITLES: dict[str, str] = {
    "canary_started": "canary started",
    "step_advanced": "step advanced",
    "paused": "paused",
    "failed_held": "failed, held for a person",
    "ready_to_promote": "ready to promote",
    "ready_to_merge": "ready to merge",
    "promoted": "promoted",
    "reverted": "reverted",
    "aborted": "aborted",
    "failed_to_apply": "failed to apply",
    "write_back_failed": "write-back failed",
}


@dataclass(frozen=True)
class Notice:
    event: Event
    model: str
    at: float
    canary_version: int | None = None
    stable_version: int | None = None
    commit: str = ""
    verdict: str = ""
    target: str = ""
    # The numbers against their thresholds, in words (verdict and interval summaries).
    summary: str = ""
    details: dict[str, str] = field(default_factory=dict)


def text(notice: Notice) -> str:
    """One readable paragraph: what, which model and versions, which commit, the numbers."""
    versions = []
    if notice.canary_version is not None:
        versions.append(f"canary v{notice.canary_version}")
    if notice.stable_version is not None:
        versions.append(f"stable v{notice.stable_version}")
    title = _TITLES[notice.event]
    head = f"{notice.model}: {title}" if notice.model else title
    if versions:
        head += f" ({', '.join(versions)})"
    parts = [head]
    if notice.target:
        parts.append(f"target {notice.target}")
    if notice.commit:
        parts.append(f"commit {notice.commit[:12]}")
    line = " · ".join(parts)
    return f"{line}\n{notice.summary}" if notice.summary else line


def render(notice: Notice, fmt: str) -> bytes:
    """The request body for a target of format `fmt` ("json" or "slack")."""
    if fmt == "slack":
        return json.dumps({"text": text(notice)}).encode()
    document: dict[str, Any] = {
        "event": notice.event,
        "model": notice.model,
        "at": notice.at,
        "canaryVersion": notice.canary_version,
        "stableVersion": notice.stable_version,
        "commit": notice.commit,
        "verdict": notice.verdict,
        "target": notice.target,
        "summary": notice.summary,
        "details": dict(notice.details),
        "text": text(notice),
    }
    return json.dumps(document, sort_keys=True).encode()
