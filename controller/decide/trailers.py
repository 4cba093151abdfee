"""Commit-message trailers written by the controller, and reading them back (pure).

The controller's commits end with a trailer block (git's ``Key: value`` lines in the last
paragraph, as ``git interpret-trailers`` reads them)::

    rollouts: revert half_plus_two canary 3 (analysis failed)

    error rate 0.2 > max 0.01 in 2 consecutive intervals

    Rollouts-Model: half_plus_two
    Rollouts-Verdict: fail
    Rollouts-Canary-Version: 3
    Rollouts-Reverted-Version: 3
    Rollouts-Canary-Commit: 1f2e3d...
    Rollouts-Intervals: 0 passed, 2 failed, 0 not judged
    Rollouts-Last-Interval: fail at 10%: canary 120 req 20.00% err p99 9.1ms; ...

Git history is the controller's memory: from these trailers it rebuilds which versions
it auto-reverted, so that `rollouts validate` can flag a spec that proposes one again,
and so that a restarted controller never writes a second promotion or revert.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "CANARY_COMMIT",
    "CANARY_VERSION",
    "INTERVALS",
    "LAST_INTERVAL",
    "MODEL",
    "PROMOTED_VERSION",
    "REVERTED_VERSION",
    "VERDICT",
    "RolloutTrailers",
    "auto_reverted_versions",
    "build_message",
    "format_trailers",
    "parse_trailers",
    "trailer_values",
]

MODEL = "Rollouts-Model"
VERDICT = "Rollouts-Verdict"
CANARY_VERSION = "Rollouts-Canary-Version"
REVERTED_VERSION = "Rollouts-Reverted-Version"
PROMOTED_VERSION = "Rollouts-Promoted-Version"
CANARY_COMMIT = "Rollouts-Canary-Commit"
# The analysis summary (in `extra`): interval counts, the last judged interval.
INTERVALS = "Rollouts-Intervals"
LAST_INTERVAL = "Rollouts-Last-Interval"

# Git's trailer token: letters, digits and dashes (no spaces), then a colon.
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_TRAILER_LINE = re.compile(r"^(?P<key>[A-Za-z0-9][A-Za-z0-9-]*)[ \t]*:[ \t]*(?P<value>.*)$")


def format_trailers(trailers: Sequence[tuple[str, str]]) -> str:
    """``Key: value`` lines; rejects keys git would not read back as trailers.

    A value is folded onto one line: a newline inside it would end the trailer early.
    """
    lines = []
    for key, value in trailers:
        if not _TOKEN.match(key):
            raise ValueError(f"not a valid trailer key: {key!r}")
        lines.append(f"{key}: {' '.join(str(value).split())}")
    return "\n".join(lines)


def build_message(message: str, trailers: Sequence[tuple[str, str]] = ()) -> str:
    """`message` (subject, optional body) followed by a blank line and the trailer block."""
    body = message.strip("\n")
    if not body:
        raise ValueError("a commit message needs a subject")
    if not trailers:
        return body + "\n"
    return f"{body}\n\n{format_trailers(trailers)}\n"


def _paragraphs(message: str) -> list[list[str]]:
    paragraphs: list[list[str]] = [[]]
    for line in message.splitlines():
        if line.strip():
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return [p for p in paragraphs if p]


def parse_trailers(message: str) -> list[tuple[str, str]]:
    """The trailers of a message, in order; [] when its last paragraph is not a trailer block.

    Like git, the subject (first paragraph) is never a trailer block, and a line starting
    with whitespace continues the previous trailer's value. Unlike git's 25% heuristic for
    mixed blocks, every line must be a trailer: a prose paragraph that happens to contain
    "Note: ..." must not be read as the controller's state.
    """
    paragraphs = _paragraphs(message)
    if len(paragraphs) < 2:
        return []
    trailers: list[tuple[str, str]] = []
    for line in paragraphs[-1]:
        if line[:1] in (" ", "\t") and trailers:
            key, value = trailers[-1]
            trailers[-1] = (key, f"{value} {line.strip()}".strip())
            continue
        match = _TRAILER_LINE.match(line)
        if match is None:
            return []
        trailers.append((match["key"], match["value"].strip()))
    return trailers


def trailer_values(message: str, key: str) -> list[str]:
    """Every value of trailer `key` (case-insensitive, as git compares keys)."""
    wanted = key.lower()
    return [value for k, value in parse_trailers(message) if k.lower() == wanted]


def _first(pairs: Sequence[tuple[str, str]], key: str) -> str | None:
    wanted = key.lower()
    return next((value for k, value in pairs if k.lower() == wanted and value), None)


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class RolloutTrailers:
    """The controller's trailers of one commit or note; None where absent or malformed."""

    model: str | None = None
    verdict: str | None = None
    canary_version: int | None = None
    reverted_version: int | None = None
    promoted_version: int | None = None
    canary_commit: str | None = None
    extra: tuple[tuple[str, str], ...] = field(default=())

    def to_pairs(self) -> list[tuple[str, str]]:
        """Trailer pairs in a stable order; the analysis summary (`extra`) comes last."""
        known: list[tuple[str, object]] = [
            (MODEL, self.model),
            (VERDICT, self.verdict),
            (CANARY_VERSION, self.canary_version),
            (REVERTED_VERSION, self.reverted_version),
            (PROMOTED_VERSION, self.promoted_version),
            (CANARY_COMMIT, self.canary_commit),
        ]
        pairs = [(key, str(value)) for key, value in known if value is not None]
        return pairs + list(self.extra)

    @classmethod
    def from_message(cls, message: str) -> RolloutTrailers:
        pairs = parse_trailers(message)
        own = {MODEL, VERDICT, CANARY_VERSION, REVERTED_VERSION, PROMOTED_VERSION, CANARY_COMMIT}
        own_lower = {key.lower() for key in own}
        return cls(
            model=_first(pairs, MODEL),
            verdict=_first(pairs, VERDICT),
            canary_version=_int_or_none(_first(pairs, CANARY_VERSION)),
            reverted_version=_int_or_none(_first(pairs, REVERTED_VERSION)),
            promoted_version=_int_or_none(_first(pairs, PROMOTED_VERSION)),
            canary_commit=_first(pairs, CANARY_COMMIT),
            extra=tuple((k, v) for k, v in pairs if k.lower() not in own_lower),
        )


def auto_reverted_versions(messages: Iterable[str]) -> dict[str, frozenset[int]]:
    """Model name -> versions the controller reverted, from commit messages and notes.

    Only texts carrying both `Rollouts-Model` and `Rollouts-Reverted-Version` count: a
    person's plain `git revert` is a choice, not a failed analysis.
    """
    found: dict[str, set[int]] = {}
    for message in messages:
        parsed = RolloutTrailers.from_message(message)
        if parsed.model is not None and parsed.reverted_version is not None:
            found.setdefault(parsed.model, set()).add(parsed.reverted_version)
    return {model: frozenset(versions) for model, versions in found.items()}
