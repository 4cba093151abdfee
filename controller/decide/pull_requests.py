"""Canaries from pull requests: which pull request's canary runs, which waits, and why (pure).

A pull request (a ref such as ``refs/pull/7/head``) proposes canaries when its change
against the followed branch (its head's specs against the merge base's) only adds or
bumps ``canary`` blocks of models the followed branch has: nothing else in any spec.
Such a canary runs on top of the followed branch's current spec (its stable, keep,
labels) with the pull request's canary block, and its journal lives in the notes of
the pull request's head commit.

Rules, one home:

- `candidacy`: the change is canary blocks only (added, or changed in any field);
  anything else (a stable, a new or removed spec, a removed canary, invalid specs)
  makes the pull request no candidate, with the reason.
- `select`: one canary per model. The followed branch's own canary of a model comes
  first; then a pull request canary already running (or passed, waiting to be
  merged) keeps the model; else the oldest pull request (lowest number) runs. The
  others wait, with the reason. A failed one is done: out of traffic, it holds nothing.
- `current_run` / `restart_reason`: a run starts with a `baseline` event naming the
  stable it runs against; a stable changed on the followed branch since restarts the
  run (a new `baseline`), unless it failed. A `stopped` event ends a run.
- `stops`: a pull request canary that ran and no longer runs stopped because its pull
  request was closed (its ref is gone), changed (a new head), or no longer qualifies;
  a merged one is not stopped: the followed branch's canary continues its journal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from controller.decide.desired import Snapshot, desired_model
from controller.decide.fleet import DesiredState
from controller.decide.progress import Event
from controller.spec.canary import Canary
from controller.spec.model import RolloutSpec, rule_violations

__all__ = [
    "Candidacy",
    "Proposal",
    "Run",
    "RunState",
    "Selection",
    "Stop",
    "Waiting",
    "candidacy",
    "compose",
    "current_run",
    "on_top_of",
    "pull_order",
    "restart_reason",
    "run_state",
    "same_canary",
    "select",
    "stops",
]

RunState = Literal["new", "running", "passed", "failed"]
# Journal events that end one run of a pull request canary and begin the next.
RUN_BOUNDARIES = ("baseline", "stopped")
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class Candidacy:
    """A pull request's canaries by model, or why it proposes none."""

    canaries: Mapping[str, Canary] = field(default_factory=dict)
    reason: str = ""

    @property
    def candidate(self) -> bool:
        return bool(self.canaries)


def _without_canary(doc: RolloutSpec) -> RolloutSpec:
    return doc.model_copy(update={"spec": doc.spec.model_copy(update={"canary": None})})


def _changed_fields(base: RolloutSpec, head: RolloutSpec) -> list[str]:
    """The fields outside `spec.canary` that differ, as spec paths (`spec.stable`)."""
    changed = [name for name in ("api_version", "kind", "metadata")
               if getattr(base, name) != getattr(head, name)]
    changed += [f"spec.{name}" for name in type(base.spec).model_fields
                if name != "canary" and getattr(base.spec, name) != getattr(head.spec, name)]
    return [_camel(path) for path in changed]


def _camel(path: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path)


def candidacy(base: Mapping[str, RolloutSpec], head: Mapping[str, RolloutSpec]) -> Candidacy:
    """What the change from `base` (merge base) to `head` proposes; specs by model name."""
    added = sorted(set(head) - set(base))
    removed = sorted(set(base) - set(head))
    if added:
        return Candidacy(reason=f"adds the spec of {', '.join(added)}: not only canary blocks")
    if removed:
        return Candidacy(reason=f"removes the spec of {', '.join(removed)}: "
                                "not only canary blocks")
    canaries: dict[str, Canary] = {}
    for name in sorted(head):
        before, after = base[name], head[name]
        changed = _changed_fields(before, after)
        if changed:
            return Candidacy(reason=f"changes {name}'s {', '.join(changed)}: "
                                    "not only canary blocks")
        if after.spec.canary is None:
            if before.spec.canary is not None:
                return Candidacy(reason=f"removes {name}'s canary: not a canary to run")
            continue
        if after.spec.canary != before.spec.canary:
            canaries[name] = after.spec.canary
    if not canaries:
        return Candidacy(reason="changes no canary block")
    return Candidacy(canaries)


def on_top_of(doc: RolloutSpec, canary: Canary) -> tuple[RolloutSpec | None, str]:
    """The followed branch's spec `doc` with the pull request's `canary`, or why not."""
    composed = doc.model_copy(update={"spec": doc.spec.model_copy(update={"canary": canary})})
    problems = rule_violations(composed)
    if problems:
        return None, "; ".join(f"{p.where}: {p.message}" for p in problems)
    return composed, ""


def same_canary(a: RolloutSpec | None, b: RolloutSpec | None) -> bool:
    """The same canary (model, version and every canary field) in both specs."""
    return (a is not None and b is not None and a.spec.canary is not None
            and a.spec.model.name == b.spec.model.name and a.spec.canary == b.spec.canary)


def pull_order(pull: str) -> tuple[int, str]:
    """Oldest first: pull requests are numbered as they are opened (`7` before `12`)."""
    digits = _DIGITS.search(pull)
    return (int(digits.group()) if digits else 1 << 62, pull)


@dataclass(frozen=True)
class Proposal:
    """One model's canary proposed by one pull request, and how its journal stands."""

    pull: str
    head: str
    model: str
    canary: Canary
    state: RunState = "new"


@dataclass(frozen=True)
class Waiting:
    proposal: Proposal
    reason: str


@dataclass(frozen=True)
class Selection:
    running: Mapping[str, Proposal]  # by model: runs, or passed and waits to be merged
    waiting: tuple[Waiting, ...]
    failed: tuple[Proposal, ...]  # judged and failed: out of traffic, holding nothing


def select(proposals: Iterable[Proposal], followed: Mapping[str, int]) -> Selection:
    """One canary per model; `followed`: the followed branch's own canaries (model ->
    version), which come first."""
    by_model: dict[str, list[Proposal]] = {}
    failed: list[Proposal] = []
    for proposal in proposals:
        if proposal.state == "failed":
            failed.append(proposal)
        else:
            by_model.setdefault(proposal.model, []).append(proposal)
    running: dict[str, Proposal] = {}
    waiting: list[Waiting] = []
    for model in sorted(by_model):
        # A canary under way keeps its model; among the rest, the oldest goes first.
        queue = sorted(by_model[model], key=lambda p: (p.state == "new", pull_order(p.pull)))
        if model in followed:
            reason = f"the followed branch's canary of {model} (v{followed[model]}) runs first"
            waiting += [Waiting(p, reason) for p in queue]
            continue
        first, rest = queue[0], queue[1:]
        running[model] = first
        waiting += [Waiting(p, f"pull request {first.pull}'s canary of {model} "
                               f"(v{first.canary.version}) runs first: one canary per model")
                    for p in rest]
    failed.sort(key=lambda p: (p.model, pull_order(p.pull)))
    return Selection(running, tuple(waiting), tuple(failed))


@dataclass(frozen=True)
class Run:
    """The events of a pull request canary's current run and the stable it runs against."""

    baseline: int | None  # None: no run started yet (or the last one stopped)
    events: tuple[Event, ...]


def current_run(events: Sequence[Event], model: str, version: int) -> Run:
    """The events after the last run boundary of `model` `version` (all of them when
    there is none, as for a canary that started on the followed branch)."""
    mine = sorted((e for e in events if e.model == model and e.version == version),
                  key=lambda e: e.at)
    start = 0
    baseline: int | None = None
    for index, event in enumerate(mine):
        if event.kind in RUN_BOUNDARIES:
            start = index + 1
            stable = event.detail.get("stable") if event.kind == "baseline" else None
            baseline = stable if isinstance(stable, int) else None
    return Run(baseline, tuple(mine[start:]))


def run_state(run: Run) -> RunState:
    """new (nothing journaled), running, passed (a promote verdict: ready to merge), failed."""
    verdicts = [e.outcome for e in run.events if e.kind == "verdict"]
    if "fail" in verdicts:
        return "failed"
    if "promote" in verdicts or "ready" in verdicts:
        return "passed"
    return "running" if run.events else "new"


def restart_reason(run: Run, stable: int | None) -> str:
    """Why the run must (re)start against `stable`, or "" to go on."""
    if run.baseline is None:
        return f"runs on top of stable v{stable}"
    if run.baseline != stable and run_state(run) != "failed":
        return (f"stable changed from v{run.baseline} to v{stable} on the followed branch: "
                "restarts against the new baseline")
    return ""


@dataclass(frozen=True)
class Stop:
    model: str
    pull: str
    head: str
    version: int
    reason: str


def stops(
    previous: Mapping[str, Proposal],
    running: Mapping[str, Proposal],
    heads: Mapping[str, str],
    merged: Iterable[str],
    followed: Mapping[str, int] | None = None,
) -> list[Stop]:
    """The pull request canaries that ran (`previous`, by model) and no longer run.

    `heads`: every pull request's head now (pull -> sha); `merged`: the pull requests
    whose head is on the followed branch; `followed`: the followed branch's own
    canaries (model -> version), which take a model over.
    """
    followed = followed or {}
    merged_pulls = set(merged)
    found: list[Stop] = []
    for model, before in sorted(previous.items()):
        now = running.get(model)
        if now is not None and (now.pull, now.head) == (before.pull, before.head):
            continue
        if before.pull in merged_pulls:
            continue  # the followed branch's canary takes its journal on
        if before.pull not in heads:
            reason = f"pull request {before.pull} was closed"
        elif heads[before.pull] != before.head:
            reason = f"pull request {before.pull} changed (head now {heads[before.pull][:12]})"
        elif now is not None:
            reason = f"pull request {now.pull}'s canary of {model} runs instead"
        elif model in followed:
            reason = f"the followed branch's canary of {model} (v{followed[model]}) runs first"
        else:
            reason = f"pull request {before.pull} no longer proposes this canary"
        found.append(Stop(model, before.pull, before.head, before.canary.version, reason))
    return found


def compose(snapshot: Snapshot, running: Mapping[str, RolloutSpec], model_root: str) -> Snapshot:
    """The followed branch's snapshot with each model in `running` at its composed spec
    (`on_top_of`): what the fleet serves while pull request canaries run."""
    if not running:
        return snapshot
    documents = dict(snapshot.documents)
    models = dict(snapshot.desired.models)
    for name, spec in running.items():
        documents[name] = replace(documents[name], spec=spec)
        models[name] = desired_model(spec, model_root)
    return Snapshot(snapshot.commit, DesiredState(snapshot.desired.commit, models), documents)
