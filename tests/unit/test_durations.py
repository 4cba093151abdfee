"""Durations: parsing, formatting, float behaviour and pydantic round trips."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from controller.spec.durations import Duration, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("1.5s", 1.5),
        ("0s", 0.0),
        (" 5m ", 300.0),
    ],
)
def test_parses_units(text: str, seconds: float) -> None:
    duration = parse_duration(text)
    assert duration.seconds == pytest.approx(seconds)
    assert str(duration) == text.strip()


@pytest.mark.parametrize("text", ["", "30", "s", "2d", "1.s", "-5s", "5 s", "1m 30s", "5S", "ms"])
def test_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_is_a_float_equal_by_seconds() -> None:
    assert parse_duration("2m") == parse_duration("120s") == 120.0
    assert parse_duration("1s") < parse_duration("1m")
    assert parse_duration("2m") + 1 == 121.0
    assert hash(parse_duration("1m")) == hash(60.0)
    assert repr(parse_duration("1m")) == "Duration('1m')"


def test_survives_pickle_with_text() -> None:
    copy = pickle.loads(pickle.dumps(parse_duration("90s")))
    assert copy == 90.0
    assert copy.text == "90s"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.25, "250ms"),
        (30, "30s"),
        (120, "2m"),
        (7200, "2h"),
        (90, "90s"),
        (0, "0ms"),
        (1e-4, "0.0001s"),
    ],
)
def test_formats_in_the_largest_exact_unit(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert str(Duration(seconds)) == text


@given(st.integers(min_value=0, max_value=10**9))
def test_format_then_parse_round_trips(millis: int) -> None:
    seconds = millis / 1000
    assert parse_duration(format_duration(seconds)).seconds == pytest.approx(seconds)


class _Holder(BaseModel):
    hold: Duration


def test_pydantic_validates_and_dumps_the_original_text() -> None:
    holder = _Holder.model_validate({"hold": "1m30s"})
    assert holder.hold == 90.0
    assert holder.model_dump(mode="json") == {"hold": "1m30s"}
    assert _Holder.model_json_schema()["properties"]["hold"]["type"] == "string"


@pytest.mark.parametrize(
    ("value", "message"), [(30, "strings with a unit"), ("3x", "invalid duration")]
)
def test_pydantic_rejects_with_a_clear_message(value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _Holder.model_validate({"hold": value})
