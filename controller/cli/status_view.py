"""Render the controller's status document as rich tables for `rollouts status`."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def render_status(document: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    applied = (document.get("commitApplied") or "-")[:12]
    seen = (document.get("commitSeen") or "-")[:12]
    sync = "in sync" if document.get("inSync") else "converging"
    console.print(
        f"[bold]{document.get('repo')}[/] {document.get('branch')}  "
        f"seen {seen}  applied {applied}  ({sync})"
    )
    for error in document.get("specErrors", []):
        console.print(f"[red]spec error[/] {error}")
    if document.get("gitError"):
        console.print(f"[red]git error[/] {document['gitError']}")
    table = Table("model", "applied", "stable", "canary", "weight", "step", "target", "health",
                  "labels")
    for name, model in document.get("models", {}).items():
        weight = model.get("splitWeightBp")
        rollout = model.get("rollout") or {}
        step = rollout.get("stepText", "")
        first = True
        for target, info in model.get("targets", {}).items():
            health = "up" if info.get("reachable") else f"down: {info.get('error', '')}"
            table.add_row(
                name if first else "",
                (model.get("commitApplied") or "-")[:12] if first else "",
                str(model.get("stable") or "-") if first else "",
                str(model.get("canary") or "-") if first else "",
                (f"{weight / 100:g}%" if weight is not None else "-") if first else "",
                step if first else "",
                target,
                health,
                ", ".join(f"{k}={v}" for k, v in sorted(info.get("labels", {}).items())),
            )
            first = False
    console.print(table)
    for name, model in document.get("models", {}).items():
        rollout = model.get("rollout")
        if not rollout:
            continue
        weight = rollout.get("weightBp", 0) / 100
        console.print(
            f"[bold]{name}[/] canary v{rollout['version']}: {rollout['phase']}, "
            f"step {rollout.get('stepText', '')} at {weight:g}%"
        )
        for interval in rollout.get("intervals", []):
            console.print(f"  {interval.get('outcome', '?'):>12}  {interval.get('summary', '')}")
        if rollout.get("message"):
            console.print(f"  {rollout['message']}")
    for finding in document.get("findings", []):
        console.print(f"[yellow]![/] {finding['target']} {finding['model']}: {finding['message']}")
