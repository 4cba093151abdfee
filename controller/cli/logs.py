"""How the controller's log reads: text for people, `--log-format json` for pipelines.

Runtime code attaches what a line is about with `extra=fields(...)`: the model,
the target, the commit and a short event name (`apply`, `apply_failed`,
`interval`, `verdict`, `promote`, `revert`, `blocked`, `git`, `specs`). The
text format appends them as `key=value`; the JSON format writes one object per
line with `time`, `level`, `model`, `target`, `commit`, `event`, `message` and
`logger`. apscheduler's per-run chatter ("Running job", "executed successfully")
is INFO noise on every tick: only its warnings are kept.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

FORMATS = ("text", "json")
FIELDS = ("model", "target", "commit", "event")
# Loggers whose INFO lines say nothing about the fleet.
QUIET = ("apscheduler", "uvicorn.access", "httpx")


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        tags = [f"{key}={getattr(record, key)}" for key in FIELDS if getattr(record, key, "")]
        return f"{text} [{' '.join(tags)}]" if tags else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a field a line is not about is null."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        document = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            **{key: getattr(record, key, None) or None for key in FIELDS},
            "event": getattr(record, "event", None) or None,
            "message": message,
            "logger": record.name,
        }
        return json.dumps(document, ensure_ascii=False)


def setup(verbose: bool = False, log_format: str = "text", *, level: int | None = None,
          stream: TextIO | None = None) -> None:
    """Configure the root logger once for a command (replacing earlier handlers)."""
    if log_format not in FORMATS:
        raise ValueError(f"--log-format: expected one of {', '.join(FORMATS)}, got {log_format!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else (level if level is not None else logging.INFO))
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
