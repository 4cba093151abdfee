"""Log formats: text lines carry the fields as tags; JSON is one object per line."""

from __future__ import annotations

import io
import json
import logging

import pytest

from controller.cli import logs
from controller.runtime.logfields import fields


def emit(log_format: str) -> str:
    stream = io.StringIO()
    logs.setup(False, log_format, stream=stream)
    try:
        logging.getLogger("controller.x").info(
            "s0: set split hp2 canary 10%", extra=fields("apply", model="hp2", target="s0",
                                                        commit="a" * 40))
        logging.getLogger("controller.x").warning("git sync failed")
        logging.getLogger("apscheduler.executors.default").info("Running job ...")
    finally:
        logging.getLogger().handlers.clear()
    return stream.getvalue()


def test_json_lines_have_every_field_and_null_for_what_a_line_is_not_about() -> None:
    first, second = [json.loads(line) for line in emit("json").splitlines()]
    assert first["level"] == "INFO" and first["event"] == "apply"
    assert (first["model"], first["target"], first["commit"]) == ("hp2", "s0", "a" * 12)
    assert first["message"] == "s0: set split hp2 canary 10%" and first["time"].endswith("+00:00")
    assert second["level"] == "WARNING" and second["model"] is None and second["event"] is None


def test_text_lines_tag_the_fields_and_drop_scheduler_chatter() -> None:
    lines = emit("text").splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("s0: set split hp2 canary 10% "
                             f"[model=hp2 target=s0 commit={'a' * 12} event=apply]")
    assert lines[1].endswith("WARNING controller.x: git sync failed")


def test_unknown_format_is_an_error() -> None:
    with pytest.raises(ValueError, match="--log-format"):
        logs.setup(False, "xml")
