"""Pull request refs on the controller's clone: fetched with the followed branch, listed.

`--pull-requests REFSPEC` names where a forge keeps each pull request's head, with one
``*`` for its number: GitHub's ``+refs/pull/*/head``, GitLab's
``refs/merge-requests/*/head``. Every sync of the clone (`GitRepo.sync`, with
``--prune``) fetches them to ``refs/rollouts/pulls/*`` too, so a closed pull request's
ref disappears here as it does there. Everything else is local, no network:

- `PullRequestRefs.heads`: every pull request's head, whether it is merged (on the
  followed branch) and, if not, its merge base with the followed branch (what its
  change is measured against).
- `PullRequestRefs.brought_by`: the pull request heads a commit brought onto the
  followed branch (a merge's second parent's line, or a fast-forward's own heads),
  where a merged canary's journal is.
- `read_tree`: the specs at any commit (the clone's own `GitRepo.read_tree`).
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.adapters.gitread import GitReader

__all__ = ["LOCAL_PREFIX", "PullHead", "PullRefspec", "PullRequestRefs", "parse_refspec"]

# Where the fetched pull request heads land in the clone (one ref per pull request).
LOCAL_PREFIX = "refs/rollouts/pulls/"


@dataclass(frozen=True)
class PullRefspec:
    """The remote refs of pull request heads, e.g. ``refs/pull/*/head``."""

    source: str

    @property
    def fetch(self) -> str:
        """The refspec every sync fetches (forced: a pull request's head is rewritten)."""
        return f"+{self.source}:{LOCAL_PREFIX}*"


def parse_refspec(text: str) -> PullRefspec:
    """`--pull-requests` text -> the refs to fetch; ValueError naming the flag otherwise."""
    where = f"pullRequests (--pull-requests) {text!r}"
    source = text.strip()
    source = source[1:] if source.startswith("+") else source
    if ":" in source:
        raise ValueError(f"{where}: give only the remote refs (e.g. +refs/pull/*/head); "
                         "the controller chooses where they land")
    if not source.startswith("refs/") or any(c.isspace() for c in source):
        raise ValueError(f"{where}: expected remote refs such as +refs/pull/*/head or "
                         "refs/merge-requests/*/head")
    if source.count("*") != 1:
        raise ValueError(f"{where}: needs exactly one '*' where the pull request's number is")
    return PullRefspec(source)


@dataclass(frozen=True)
class PullHead:
    """One pull request as the last sync saw it."""

    pull: str  # what the refspec's '*' matched: its number, e.g. "7"
    head: str
    merged: bool  # its head is on the followed branch
    merge_base: str | None  # None when merged, or with no history in common


class PullRequestRefs:
    """The pull request refs of `repo`'s clone (fetched by every `repo.sync`)."""

    def __init__(self, repo: GitReader, refspec: str) -> None:
        self.repo = repo
        self.refspec = parse_refspec(refspec)
        repo.also_fetch(self.refspec.fetch, lambda: None)
        self._bases: dict[tuple[str, str], str | None] = {}

    def heads(self) -> list[PullHead]:
        """Every fetched pull request, oldest ref name first (as of the last sync)."""
        with self.repo.lock:
            branch = self.repo.remote_ref
            refs = self._refs()
            if not refs:
                return []
            merged = {sha for sha, _ in self._refs("--merged", branch)}
            tip = self.repo.resolve(branch)
            found = []
            for sha, pull in refs:
                if sha in merged:
                    found.append(PullHead(pull, sha, True, None))
                else:
                    found.append(PullHead(pull, sha, False, self._merge_base(sha, tip)))
            return found

    def brought_by(self, commit: str) -> list[PullHead]:
        """The merged pull request heads whose change `commit` brought onto the followed
        branch: for a merge commit, the heads on its second parent's line; for any other
        commit (a fast-forward merge), the merged heads at or after it."""
        with self.repo.lock:
            infos = self.repo.log(commit, max_count=1)
            if not infos:
                return []
            if len(infos[0].parents) >= 2:
                filters = ("--merged", commit, "--no-merged", infos[0].parents[0])
            else:
                filters = ("--contains", commit, "--merged", self.repo.remote_ref)
            return [PullHead(pull, sha, True, None) for sha, pull in self._refs(*filters)]

    def read_tree(self, commit: str, folder: str) -> list[tuple[str, str]]:
        return self.repo.read_tree(commit, folder)

    def _refs(self, *filters: str) -> list[tuple[str, str]]:
        out = self.repo.run("for-each-ref", "--format=%(objectname) %(refname)", *filters,
                            LOCAL_PREFIX)
        pairs = []
        for line in out.splitlines():
            sha, _, ref = line.partition(" ")
            if ref.startswith(LOCAL_PREFIX):
                pairs.append((sha, ref[len(LOCAL_PREFIX):]))
        return pairs

    def _merge_base(self, head: str, tip: str) -> str | None:
        key = (head, tip)
        if key not in self._bases:
            status, out, _ = self.repo.try_run("merge-base", head, tip)
            self._bases[key] = out.strip() if status == 0 and out.strip() else None
            if len(self._bases) > 4096:  # a long-lived controller sees many heads
                self._bases = {key: self._bases[key]}
        return self._bases[key]
