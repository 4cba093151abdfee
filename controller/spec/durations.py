"""Durations as written in rollout specs: `250ms`, `30s`, `2m`, `1h`, `1m30s`.

A `Duration` keeps both the value in seconds (what the planner computes with)
and the text the user wrote (what a promotion commit writes back), so a spec
survives a load/dump round trip unchanged. Parsing is a pure function.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

# One or more `<number><unit>` parts, largest unit first is not enforced: Go's
# time.ParseDuration does not enforce it either, and users know that syntax.
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h))+")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

# The JSON Schema pattern for a duration string; kept next to the parser so the
# two cannot drift apart.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"


class Duration(float):
    """A non-negative length of time in seconds that remembers how it was written.

    A float, so callers compute with it directly (`timeout=interval`), and
    equal to any float of the same seconds; `text` ("2m") is what a round trip
    writes back. Not a dataclass: pydantic would dump that as a mapping, and a
    duration is text everywhere it is written (YAML, JSON Schema defaults).
    """

    text: str

    def __new__(cls, seconds: float, text: str = "") -> Duration:
        value = super().__new__(cls, seconds)
        value.text = text or format_duration(float(seconds))
        return value

    @property
    def seconds(self) -> float:
        return float(self)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Duration({self.text!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Duration, (float(self), self.text))

    @classmethod
    def of(cls, seconds: float) -> Duration:
        return cls(seconds, format_duration(seconds))

    # pydantic integration: validate from text, dump as text, schema a string.
    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A number with a unit ms, s, m or h, e.g. '250ms', '30s', '2m'.",
        }


def parse_duration(text: str) -> Duration:
    """Parse `text` or raise ValueError with a message fit for a user."""
    stripped = text.strip()
    if not _WHOLE.fullmatch(stripped):
        raise ValueError(
            f"invalid duration {text!r}: use a number with a unit ms, s, m or h, "
            "e.g. '250ms', '30s', '2m', '1h30m'"
        )
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(stripped))
    return Duration(seconds, stripped)


def _validate(value: object) -> Duration:
    if isinstance(value, Duration):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError(
            "duration_type",
            f"durations are strings with a unit, e.g. '30s' or '2m'; got {value!r}",
        )
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration_format", str(exc)) from None


def format_duration(seconds: float) -> str:
    """The shortest exact text for `seconds` in one unit (used for new values)."""
    millis = round(seconds * 1000)
    if abs(millis - seconds * 1000) > 1e-6:
        return f"{seconds:g}s"
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis and millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"
