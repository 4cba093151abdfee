"""The structured fields of a controller log line (see controller/cli/logs.py)."""

from __future__ import annotations


def fields(event: str, *, model: str = "", target: str = "", commit: str = "") -> dict[str, str]:
    """`extra=` for a log call: what the line is about, for `--log-format json`."""
    return {"event": event, "model": model, "target": target, "commit": commit[:12]}
