"""Shared benchmark plumbing: percentiles, markdown tables, machine info, result files.

Every benchmark builds its command line with `argument_parser`, a `Result` (one
or more `Table`s plus raw samples), and ends with `finish`: `Result.write()` leaves
`benchmarks/results/<name>.md` and `<name>.json` with the date and the machine the
numbers came from (the machine is shared and noisy, so a figure without its
machine means little), the markdown is printed, and whether every goal was met
becomes the exit code. Formatting and statistics are pure functions; only
`machine_info`, `Result.write` and `finish` touch the system.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"

Cell = str | int | float | None


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default).

    Small samples are the norm here (N=10), so the method matters: with linear
    interpolation p50 of an even count is the mean of the two middle values.
    """
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside 0..100")
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """n, min, p50, p90, p99, max and mean of a non-empty sample."""
    if not values:
        raise ValueError("summary of no values")
    return {
        "n": float(len(values)),
        "min": min(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": sum(values) / len(values),
    }


def format_cell(cell: Cell, digits: int = 3) -> str:
    """A table cell as text: floats to `digits` decimals, None as a dash, pipes escaped."""
    if cell is None:
        return "-"
    if isinstance(cell, bool):
        return "yes" if cell else "no"
    if isinstance(cell, float):
        return f"{cell:.{digits}f}"
    return str(cell).replace("|", "\\|").replace("\n", " ")


def _is_number(cell: Cell) -> bool:
    return isinstance(cell, int | float) and not isinstance(cell, bool)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Cell]], digits: int = 3) -> str:
    """A GitHub markdown table; columns holding only numbers (or blanks) align right."""
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"row has {len(row)} cells, table has {len(columns)} columns")
    numeric = [
        bool(rows)
        and all(_is_number(r[i]) or r[i] is None for r in rows)
        and any(_is_number(r[i]) for r in rows)
        for i in range(len(columns))
    ]
    lines = [
        "| " + " | ".join(format_cell(c) for c in columns) + " |",
        "|" + "|".join("---:" if right else "---" for right in numeric) + "|",
    ]
    lines += ["| " + " | ".join(format_cell(c, digits) for c in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: Cell) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(list(cells))

    def to_markdown(self) -> str:
        text = f"### {self.title}\n\n{markdown_table(self.columns, self.rows)}\n"
        return text + "".join(f"\n{note}\n" for note in self.notes)


def parse_cpu_model(cpuinfo: str) -> str:
    """The CPU model name from /proc/cpuinfo text ("unknown" when absent)."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        # x86 says "model name"; some ARM kernels only say "Hardware" or "CPU part".
        if sep and key.strip().lower() in ("model name", "hardware"):
            return value.strip()
    return "unknown"


def nproc() -> int:
    """CPUs this process may run on (what `nproc` prints), not the host's total."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_info() -> dict[str, Any]:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    return {
        "nproc": nproc(),
        "cpu_model": parse_cpu_model(cpuinfo) if cpuinfo else platform.processor() or "unknown",
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def machine_line(machine: dict[str, Any], date: str) -> str:
    return (
        f"{date} on {machine.get('nproc')} CPU(s), {machine.get('cpu_model')}, "
        f"Python {machine.get('python')} ({machine.get('platform')})"
    )


@dataclass
class Result:
    """One benchmark run: tables for people, params and raw samples for machines."""

    name: str
    title: str
    tables: list[Table] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    date: str = field(
        default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    )
    machine: dict[str, Any] = field(default_factory=dict)

    def table(self, title: str, columns: Sequence[str]) -> Table:
        table = Table(title, list(columns))
        self.tables.append(table)
        return table

    def to_markdown(self) -> str:
        parts = [f"## {self.title}\n", f"Measured {machine_line(self.machine, self.date)}.\n"]
        if self.params:
            parts.append(
                "Parameters: " + ", ".join(f"{k}={v}" for k, v in self.params.items()) + ".\n"
            )
        parts += [table.to_markdown() for table in self.tables]
        parts += [f"{note}\n" for note in self.notes]
        return "\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "date": self.date,
            "machine": self.machine,
            "params": self.params,
            "tables": [
                {"title": t.title, "columns": t.columns, "rows": t.rows, "notes": t.notes}
                for t in self.tables
            ],
            "notes": self.notes,
            "data": self.data,
        }

    def write(self, directory: Path = RESULTS_DIR) -> tuple[Path, Path]:
        """Write <name>.md and <name>.json (machine info filled in if missing)."""
        if not self.machine:
            self.machine = machine_info()
        directory.mkdir(parents=True, exist_ok=True)
        markdown = directory / f"{self.name}.md"
        document = directory / f"{self.name}.json"
        markdown.write_text(self.to_markdown())
        document.write_text(json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n")
        return markdown, document


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's parser, described by the first line of its module docstring."""
    return argparse.ArgumentParser(description=(doc or "").splitlines()[0])


def finish(result: Result, met: bool, directory: Path = RESULTS_DIR) -> int:
    """Write the result files, print the markdown and where it went; the exit code.

    0 when every goal was met, 1 when one was missed: `python -m benchmarks`
    tells a missed goal from a failure by the files having been written.
    """
    markdown, document = result.write(directory)
    print(result.to_markdown())
    print(f"written: {markdown} and {document}")
    return 0 if met else 1
