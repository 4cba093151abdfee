"""Which previous stable versions are kept loaded now, read from git history.

For every model whose spec keeps a previous version (`spec.keepPrevious`), finds
the last first-parent commit that moved its `stable` inside the longest window,
with one `git log` per new head (only the spec files changed in that span are
read), and asks the pure `controller.decide.previous` what is kept at `now`.
Nothing is remembered that git cannot rebuild: a restarted controller finds the
same commits, times and windows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from controller.adapters.gitresults import FileChanges, GitError
from controller.adapters.redact import redact
from controller.decide.desired import Snapshot
from controller.decide.previous import (
    KeptPrevious,
    Revision,
    StableMove,
    history_start,
    kept_previous,
    last_stable_move,
)
from controller.runtime.logfields import fields
from controller.spec import yamledit

log = logging.getLogger(__name__)


class StableHistory(Protocol):
    """The git reads this needs (`controller.adapters.gitrepo.GitRepo`, or a fake)."""

    def file_changes(self, head: str, folder: str, since: float, /) -> Sequence[FileChanges]: ...

    def read_file(self, commit: str, path: str, /) -> str | None: ...


class PreviousVersions:
    def __init__(self, git: StableHistory, folder: str) -> None:
        self.git = git
        self.folder = folder
        # Per head: model -> its last stable move inside the window as of the first
        # look at that head. Windows only close as time passes, so it stays right.
        self._moves: tuple[str, dict[str, StableMove]] | None = None

    def kept(self, snapshot: Snapshot, now: float) -> dict[str, KeptPrevious]:
        """Model -> the previous version it keeps at `now` (models keeping none are absent)."""
        moves = self.moves(snapshot, now)
        kept = {}
        for name, document in snapshot.documents.items():
            found = kept_previous(document.spec, moves.get(name), now)
            if found is not None:
                kept[name] = found
        return kept

    def moves(self, snapshot: Snapshot, now: float) -> Mapping[str, StableMove]:
        if self._moves is None or self._moves[0] != snapshot.commit:
            self._moves = (snapshot.commit, self._find(snapshot, now))
        return self._moves[1]

    def _find(self, snapshot: Snapshot, now: float) -> dict[str, StableMove]:
        since = history_start((d.spec for d in snapshot.documents.values()), now)
        if since is None:
            return {}
        try:
            changes = self.git.file_changes(snapshot.commit, self.folder, since)
            moves = {}
            for name, document in snapshot.documents.items():
                touching = [c for c in changes if document.path in c.paths]
                if touching:
                    move = last_stable_move(self._revisions(touching, document.path, name))
                    if move is not None:
                        moves[name] = move
            return moves
        except GitError as err:
            # Fail safe: keeping nothing extra is what the spec alone says.
            log.warning("cannot read stable history: %s", redact(str(err)),
                        extra=fields("git", commit=snapshot.commit))
            return {}

    def _revisions(self, changes: Sequence[FileChanges], path: str, model: str) -> list[Revision]:
        revisions = []
        for change in changes:
            after = self._stable_at(change.sha, path, model)
            before = self._stable_at(change.parent, path, model) if change.parent else None
            revisions.append(Revision(change.sha, float(change.committed_at), after, before))
            if after != before:
                break  # the newest move is all that counts
        return revisions

    def _stable_at(self, commit: str, path: str, model: str) -> int | None:
        text = self.git.read_file(commit, path)
        if text is None:
            return None
        try:
            return yamledit.stable_version(text, model)
        except yamledit.YamlEditError:
            return None
