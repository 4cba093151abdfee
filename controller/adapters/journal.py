"""The canary journal: one git note line per event, on the commit that started the canary.

Two parts:
- the line format (`journal_line`, `parse_journal`): a readable prefix, then the event as
  JSON. Keys are camelCase like the specs and the status document; notes written before
  that (``weight_bp``) are read the same, so an upgraded controller resumes any rollout.
- `GitNotes`: the notes under ``refs/notes/rollouts`` of the controller's clone
  (`controller.adapters.gitclone.GitClone`): read, append, publish, and merge what others
  published. Entries are single lines; concurrent writers' notes are merged with git's
  ``cat_sort_uniq`` strategy before pushing, so nobody's entry is lost (an entry starts
  with an ISO-8601 UTC timestamp, so the merged order is chronological).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from controller.adapters.gitclone import GitClone
from controller.adapters.gitresults import PushResult, PushStatus
from controller.decide.progress import Event

__all__ = ["NOTES_REF", "GitNotes", "NoteStore", "journal_line", "parse_journal"]

NOTES_REF = "refs/notes/rollouts"
_REMOTE_NOTES_REF = "refs/notes/origin/rollouts"  # where fetched notes land before merging
# Every notes ref (a glob: fetching a ref the remote does not have yet is no error).
_FETCH_NOTES = "+refs/notes/*:refs/notes/origin/*"
_SNAKE = re.compile(r"_([a-z0-9])")


class PushOutcome(Protocol):
    @property
    def ok(self) -> bool: ...

    @property
    def detail(self) -> str: ...


class NoteStore(Protocol):
    """What the rollout driver needs of the notes: `GitNotes`, or a fake in tests."""

    def notes(self, commit: str) -> list[str]: ...

    def add_note(self, commit: str, text: str) -> None: ...

    def push_notes(self) -> PushOutcome: ...


def journal_line(event: Event, summary: str) -> str:
    """One note line: readable prefix, then the event as JSON (parsed back from '{')."""
    stamp = datetime.fromtimestamp(event.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{stamp} {event.model} v{event.version} {event.kind}: {summary} {event.to_json()}"


def parse_journal(lines: Sequence[str]) -> list[Event]:
    """The events of a note's lines; lines that hold no event are ignored."""
    events = []
    for line in lines:
        start = line.find("{")
        event = Event.from_json(line[start:]) if start >= 0 else None
        if event is not None:
            events.append(_upgraded(event))
    return events


def _upgraded(event: Event) -> Event:
    """The event with its detail's keys in camelCase (old notes used snake_case)."""
    detail = _camel_keys(event.detail)
    if detail == event.detail:
        return event
    return Event(event.kind, event.at, event.model, event.version, event.step, event.outcome,
                 detail)


def _camel_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_SNAKE.sub(lambda m: m.group(1).upper(), str(k)): _camel_keys(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_camel_keys(v) for v in value]
    return value


class GitNotes:
    """The journal's notes in the controller's clone; every sync of `repo` merges the
    notes others pushed."""

    def __init__(self, repo: GitClone) -> None:
        self.repo = repo
        repo.also_fetch(_FETCH_NOTES, self._merge_fetched)

    def add_note(self, commit: str, text: str) -> None:
        """Append a one-line entry to the commit's note (local; `push_notes` publishes).
        One line per entry keeps concurrent merges lossless."""
        entry = text.strip()
        if not entry or "\n" in entry or "\r" in entry:
            raise ValueError("a note entry is exactly one non-empty line")
        with self.repo.lock:
            self.repo.run("notes", f"--ref={NOTES_REF}", "append", "-m", entry,
                          self.repo.resolve(commit))

    def notes(self, commit: str) -> list[str]:
        """The note entries on `commit` (local notes, as of the last sync), in order."""
        with self.repo.lock:
            status, out, _ = self.repo.try_run(
                "notes", f"--ref={NOTES_REF}", "show", self.repo.resolve(commit)
            )
            if status != 0:
                return []
            return [line for line in out.splitlines() if line.strip()]

    def push_notes(self, attempts: int = 5) -> PushResult:
        """Publish refs/notes/rollouts; on a lost race fetch, merge theirs, retry."""
        with self.repo.lock:
            if self.repo.try_run("rev-parse", "--verify", "--quiet", NOTES_REF)[0] != 0:
                return PushResult(PushStatus.OK)  # nothing to publish
            result = PushResult(PushStatus.ERROR, "no attempt made")
            for _ in range(attempts):
                result = self.repo.push_ref(f"{NOTES_REF}:{NOTES_REF}")
                if not result.rejected:
                    return result
                self.repo.run("fetch", "--no-tags", "origin",
                              f"+{NOTES_REF}:{_REMOTE_NOTES_REF}", network=True)
                self._merge_fetched()
            return result

    def _merge_fetched(self) -> None:
        repo = self.repo
        if repo.try_run("rev-parse", "--verify", "--quiet", _REMOTE_NOTES_REF)[0] != 0:
            return
        if repo.try_run("rev-parse", "--verify", "--quiet", NOTES_REF)[0] != 0:
            repo.run("update-ref", NOTES_REF, _REMOTE_NOTES_REF)
            return
        # cat_sort_uniq resolves a note changed on both sides to the sorted union of
        # their lines: with one entry per line, every writer's entries survive.
        repo.run("notes", f"--ref={NOTES_REF}", "merge", "--quiet", "-s", "cat_sort_uniq",
                 _REMOTE_NOTES_REF)
