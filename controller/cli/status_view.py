"""Render the controller's status document as rich tables for `rollouts status`.

`status_view` builds the renderables (header, the per-target table, each canary's
latest intervals, findings); `render_status` prints them once and `--watch` keeps
them on screen in a rich `Live`, redrawn whenever the document changes.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table

from controller.decide.gates import HELD_PHASES
from controller.runtime.rollout_status import FAILED_HELD


def render_status(document: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    for part in status_view(document):
        console.print(part)


def status_view(document: dict[str, Any]) -> list[RenderableType]:
    """Everything `rollouts status` shows for `document`, in order."""
    out: list[RenderableType] = []
    applied = (document.get("commitApplied") or "-")[:12]
    seen = (document.get("commitSeen") or "-")[:12]
    held = document.get("held") or []
    if held:
        # A failed canary held for a person is not "blocked" (that is a history gate):
        # say what it waits for.
        sync = "not in sync: " + ", ".join(
            f"{h['model']} canary {h['version']} "
            + ("failed, held for a person" if h["phase"] == FAILED_HELD else h["phase"])
            for h in held)
    else:
        sync = "in sync" if document.get("inSync") else "converging"
    out.append(
        f"[bold]{document.get('repo')}[/] {document.get('branch')}  "
        f"seen {seen}  applied {applied}  ({sync})"
    )
    for error in document.get("specErrors", []):
        out.append(f"[red]spec error[/] {error}")
    if document.get("gitError"):
        out.append(f"[red]git error[/] {document['gitError']}")
    table = Table("model", "applied", "stable", "canary", "weight", "step", "target", "health",
                  "labels")
    for name, model in document.get("models", {}).items():
        rollout = model.get("rollout") or {}
        step = _step_text(rollout)
        first = True
        for target, info in model.get("targets", {}).items():
            health = "up" if info.get("reachable") else f"down: {info.get('error', '')}"
            table.add_row(
                name if first else "",
                (model.get("commitApplied") or "-")[:12] if first else "",
                str(model.get("stable") or "-") if first else "",
                str(model.get("canary") or "-") if first else "",
                _served_weight(info),
                step if first else "",
                target,
                health,
                ", ".join(f"{k}={v}" for k, v in sorted(info.get("labels", {}).items())),
            )
            first = False
    out.append(table)
    for name, model in document.get("models", {}).items():
        previous = model.get("previous")
        if previous:
            out.append(f"[bold]{name}[/] previous v{previous['version']} kept loaded until "
                       f"{previous['until']} (git revert {previous['commit'][:12]} rolls back "
                       "with no load)")
        rollout = model.get("rollout")
        if not rollout:
            continue
        serving = model.get("servingWeightBp")
        served = f"{serving / 100:g}%" if serving is not None else "mixed or unknown"
        if rollout["phase"] in HELD_PHASES:
            line = f"{rollout['phase']}, out of traffic (targets serve {served})"
        elif rollout["phase"] == FAILED_HELD:
            line = (f"failed, held: waiting for abort, retry or promote (step "
                    f"{rollout.get('stepText', '')}, targets serve {served}, still loaded)")
        else:
            line = f"{rollout['phase']}, step {rollout.get('stepText', '')}, targets serve {served}"
        source = (f" from pull request {rollout['pullRequest']}"
                  if rollout.get("pullRequest") else "")
        commit = (rollout.get("canaryCommit") or "")[:12]
        out.append(f"[bold]{name}[/] canary v{rollout['version']}{source}"
                   + (f" (commit {commit})" if commit else "") + f": {line}")
        for interval in rollout.get("intervals", []):
            out.append(f"  {interval.get('outcome', '?'):>12}  {interval.get('summary', '')}")
        if rollout.get("message"):
            out.append(f"  {rollout['message']}")
    pulls = document.get("pullRequests") or []
    if pulls:
        table = Table("pull request", "head", "model", "canary", "phase", "why")
        for pull in pulls:
            version = pull.get("version")
            table.add_row(pull["pull"], (pull.get("head") or "")[:12], pull.get("model") or "-",
                          f"v{version}" if version is not None else "-", pull["phase"],
                          pull.get("reason", ""))
        out.append(table)
    for finding in document.get("findings", []):
        out.append(f"[yellow]![/] {finding['target']} {finding['model']}: {finding['message']}")
    return out


def _served_weight(info: dict[str, Any]) -> str:
    """The canary weight this target serves: its split, 0% without one."""
    if not info.get("reachable"):
        return "?"
    weight = info.get("splitWeightBp")
    return f"{(weight or 0) / 100:g}%"


def _step_text(rollout: dict[str, Any]) -> str:
    if not rollout:
        return ""
    if rollout.get("phase") in (*HELD_PHASES, FAILED_HELD):
        return str(rollout["phase"])
    return str(rollout.get("stepText", ""))
