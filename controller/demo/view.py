"""What the demo shows while it runs: a rich Live screen, or plain progress lines.

`DemoState` is everything on screen, assembled by `run` on every poll. The
rendering is pure (`render(state)` returns a rich renderable; `plain_lines`
returns the lines a non-terminal should see for a change), so both can be
tested without a terminal. Per-interval numbers come from the controller's
own analysis (server-side metrics per version, and shadow scoring's
comparison of the canary's answers with stable's: the share of compared
requests that differ and the mean absolute difference); the traffic table is
the client's view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from controller.demo.traffic import TrafficSnapshot

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
_MARK = {PENDING: "[dim]·[/]", RUNNING: "[yellow]▶[/]", DONE: "[green]✔[/]", FAILED: "[red]✘[/]"}
_OUTCOME_STYLE = {"pass": "green", "fail": "red", "inconclusive": "yellow", "skipped": "dim"}


@dataclass(frozen=True)
class Side:
    requests: float
    error_rate: float
    p99_ms: float | None
    # Shadow scoring (the canary's side only): requests compared, the share of
    # them whose answers differed, the mean |canary - stable|; None: not scored.
    compared: float = 0.0
    differing_rate: float | None = None
    mean_abs_diff: float | None = None


@dataclass(frozen=True)
class IntervalRow:
    """One judged analysis interval of one canary, as the controller recorded it."""

    version: int
    at: float
    weight_pct: float
    canary: Side
    stable: Side
    outcome: str
    reasons: tuple[str, ...] = ()


@dataclass
class DemoState:
    model: str
    stages: list[tuple[str, str]]  # (description, PENDING | RUNNING | DONE | FAILED)
    elapsed_s: float = 0.0
    stable: int | None = None  # as git (the controller's desired state) says
    canary: int | None = None
    served_stable: int | None = None  # as the server's labels say
    served_canary: int | None = None
    weight_pct: float | None = None
    phase: str = ""
    message: str = ""
    intervals: list[IntervalRow] = field(default_factory=list)
    traffic: TrafficSnapshot | None = None
    git_log: list[tuple[str, str, str]] = field(default_factory=list)


def _side(raw: Mapping[str, Any] | None) -> Side:
    raw = raw or {}
    p99 = raw.get("latencyP99Seconds")
    # `analysis.VersionWindow.to_dict`'s shadow block, present once scored.
    shadow = raw.get("shadow") or {}
    rate, mean = shadow.get("differingRate"), shadow.get("meanAbsDiff")
    return Side(
        float(raw.get("requests") or 0.0),
        float(raw.get("errorRate") or 0.0),
        None if p99 is None else float(p99) * 1000,
        compared=float(shadow.get("compared") or 0.0),
        differing_rate=None if rate is None else float(rate),
        mean_abs_diff=None if mean is None else float(mean),
    )


def merge_intervals(
    history: Sequence[IntervalRow], status: Mapping[str, Any], model: str
) -> list[IntervalRow]:
    """`history` plus the intervals in a controller status document not seen before.

    The status holds only the current canary's last few intervals, so the demo
    keeps its own history, keyed by (version, time).
    """
    rollout = ((status.get("models") or {}).get(model) or {}).get("rollout") or {}
    version = int(rollout.get("version") or 0)
    seen = {(row.version, row.at) for row in history}
    merged = list(history)
    for raw in rollout.get("intervals") or ():
        at = float(raw.get("at") or 0.0)
        if (version, at) in seen or raw.get("outcome") not in _OUTCOME_STYLE:
            continue
        merged.append(
            IntervalRow(
                version=version,
                at=at,
                weight_pct=float(raw.get("weightBp") or 0) / 100,
                canary=_side(raw.get("canary")),
                stable=_side(raw.get("stable")),
                outcome=str(raw["outcome"]),
                reasons=tuple(str(r) for r in raw.get("reasons") or ()),
            )
        )
        seen.add((version, at))
    return sorted(merged, key=lambda row: row.at)


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}ms" if value >= 10 else f"{value:.1f}ms"


def _differ(side: Side) -> str:
    return "-" if side.differing_rate is None else _pct(side.differing_rate)


def _mean_abs(side: Side) -> str:
    return "-" if side.mean_abs_diff is None else f"{side.mean_abs_diff:.4f}"


def diff_text(side: Side) -> str:
    """Shadow scoring's numbers for the canary, or "" when nothing was compared."""
    if side.compared <= 0:
        return ""
    return f" diff {_differ(side)} of {side.compared:.0f} mean|diff| {_mean_abs(side)}"


def interval_text(row: IntervalRow) -> str:
    """One interval as a line (plain output, and the basis of the table's cells)."""
    text = (
        f"v{row.version} {row.weight_pct:g}%: {row.outcome:<12} "
        f"canary {row.canary.requests:.0f} req {_pct(row.canary.error_rate)} err "
        f"p99 {_ms(row.canary.p99_ms)}{diff_text(row.canary)} | "
        f"stable {row.stable.requests:.0f} req {_pct(row.stable.error_rate)} err "
        f"p99 {_ms(row.stable.p99_ms)}"
    )
    if row.outcome != "pass" and row.reasons:
        text += " — " + "; ".join(row.reasons)
    return text


def _stages(state: DemoState) -> Table:
    table = Table.grid(padding=(0, 1))
    for description, status in state.stages:
        table.add_row(Text.from_markup(_MARK.get(status, "?")), description)
    return table


def _intervals(state: DemoState, limit: int = 12) -> Table:
    table = Table(
        "canary", "weight", "canary req", "err", "p99", "differ", "mean|diff|", "stable req",
        "err", "p99", "verdict",
        title="analysis intervals (server metrics per version; differ, mean|diff|: "
        "canary's answers vs stable's, shadow-scored)", title_justify="left",
        expand=False,
    )
    for row in state.intervals[-limit:]:
        style = _OUTCOME_STYLE.get(row.outcome, "")
        verdict = Text(row.outcome, style=style)
        if row.outcome != "pass" and row.reasons:
            verdict.append(" " + "; ".join(row.reasons)[:60], style="dim")
        table.add_row(
            f"v{row.version}", f"{row.weight_pct:g}%",
            f"{row.canary.requests:.0f}", _pct(row.canary.error_rate), _ms(row.canary.p99_ms),
            _differ(row.canary), _mean_abs(row.canary),
            f"{row.stable.requests:.0f}", _pct(row.stable.error_rate), _ms(row.stable.p99_ms),
            verdict,
        )
    return table


def _traffic(traffic: TrafficSnapshot | None) -> RenderableType:
    if traffic is None:
        return Text("traffic: not started", style="dim")
    table = Table(
        "served by", "requests", "last 5s req/s", "last 5s p99",
        title=f"client traffic: {traffic.sent} sent, {traffic.ok} ok, {traffic.errors} errors"
        + (f", {traffic.unreachable} unreachable" if traffic.unreachable else ""),
        title_justify="left",
    )
    for version, stats in traffic.versions.items():
        table.add_row(
            f"v{version}", str(stats.requests), f"{stats.recent_rps:.0f}", _ms(stats.recent_p99_ms)
        )
    return table


def _git(log: Sequence[tuple[str, str, str]], limit: int = 8) -> Panel:
    lines = Text()
    for index, (sha, author, subject) in enumerate(log[:limit]):
        style = "bold cyan" if author.startswith("rollouts") else ""
        lines.append(("\n" if index else "") + f"{sha} ", style="yellow")
        lines.append(f"{author:<20} ", style="dim")
        lines.append(subject, style=style)
    return Panel(lines or Text("(empty)", style="dim"), title="git log origin/main",
                 title_align="left")


def render(state: DemoState) -> RenderableType:
    """The whole screen for `state` (pure)."""
    weight = "-" if state.weight_pct is None else f"{state.weight_pct:g}%"
    head = Text.from_markup(
        f"[bold]rollouts demo[/] · model [bold]{state.model}[/] · {state.elapsed_s:.0f}s\n"
        f"git: stable [green]{state.stable or '-'}[/] canary [yellow]{state.canary or '-'}[/] "
        f"at {weight}" + (f" ({state.phase})" if state.phase else "")
        + f" · server: stable [green]{state.served_stable or '-'}[/] "
        f"canary [yellow]{state.served_canary or '-'}[/]"
    )
    parts: list[RenderableType] = [head, _stages(state)]
    if state.intervals:
        parts.append(_intervals(state))
    parts.append(_traffic(state.traffic))
    parts.append(_git(state.git_log))
    return Group(*parts)


def plain_lines(before: DemoState | None, after: DemoState) -> list[str]:
    """Progress lines for what changed between two states (the non-terminal output)."""
    lines: list[str] = []
    old_stages = dict(before.stages) if before else {}
    for description, status in after.stages:
        if status != old_stages.get(description) and status != PENDING:
            lines.append(f"[{after.elapsed_s:5.1f}s] {status:<7} {description}")
    old_rows = {(r.version, r.at) for r in before.intervals} if before else set()
    for row in after.intervals:
        if (row.version, row.at) not in old_rows:
            lines.append(f"[{after.elapsed_s:5.1f}s] interval {interval_text(row)}")
    old_git = {sha for sha, _, _ in before.git_log} if before else set()
    for sha, author, subject in reversed(after.git_log):
        if sha not in old_git:
            lines.append(f"[{after.elapsed_s:5.1f}s] git      {sha} {author}: {subject}")
    return lines


class View(Protocol):
    def start(self) -> None: ...
    def update(self, state: DemoState) -> None: ...
    def print(self, text: str) -> None: ...
    def stop(self) -> None: ...


class LiveView:
    """A rich Live screen redrawn a few times a second; `print` goes above it."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._live = Live(console=self.console, refresh_per_second=4, transient=False)

    def start(self) -> None:
        self._live.start()

    def update(self, state: DemoState) -> None:
        self._live.update(render(state))

    def print(self, text: str) -> None:
        self._live.console.print(text, markup=False, highlight=False)

    def stop(self) -> None:
        self._live.stop()


class PlainView:
    """One line per change, for logs and CI (no cursor movement, no colour)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._last: DemoState | None = None

    def start(self) -> None:
        pass

    def update(self, state: DemoState) -> None:
        for line in plain_lines(self._last, state):
            self.print(line)
        self._last = DemoState(
            state.model, list(state.stages), state.elapsed_s, intervals=list(state.intervals),
            git_log=list(state.git_log),
        )

    def print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def stop(self) -> None:
        pass
