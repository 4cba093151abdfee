"""The spec's scalar field types, each with its own message, and the models' shared config.

Each type keeps pydantic constraints (they feed the JSON Schema) and checks the
same rule first in a BeforeValidator, so users get a message that says what the
rule is rather than pydantic's generic "should be >= 1". `Strict` is the config
every spec and controller-config model shares: camelCase keys, strict types,
unknown keys rejected. The blocks built from these are `canary`, `analysis` and
`model`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, TypeGuard

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from controller.spec.durations import Duration

STABLE_LABEL = "stable"
CANARY_LABEL = "canary"
# The version stable last moved away from, while spec.keepPrevious keeps it loaded.
# Not reserved: a spec's own `labels.previous` takes precedence (it was usable before).
PREVIOUS_LABEL = "previous"
RESERVED_LABELS = (STABLE_LABEL, CANARY_LABEL)


def _fail(kind: str, message: str) -> PydanticCustomError:
    # The message is formatted here, not by pydantic, so user text containing
    # braces cannot be mistaken for a template field.
    return PydanticCustomError(kind, message)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _at_least(minimum: float) -> Callable[[Duration], Duration]:
    def check(value: Duration) -> Duration:
        if value.seconds < minimum:
            raise _fail(
                "duration_too_short",
                f"must be at least {Duration.of(minimum)}, got {value}",
            )
        return value

    return check


def _version(value: object) -> object:
    if _is_int(value) and value < 1:
        raise _fail("version", f"versions are positive integers, got {value}")
    return value


def _weight(value: object) -> object:
    if _is_int(value) and not 0 <= value <= 100:
        raise _fail("weight", f"step weights are percentages from 0 to 100, got {value}")
    return value


def _sample(value: object) -> object:
    if _is_number(value) and not 0 < value <= 1:
        raise _fail(
            "sample",
            "shadow.sample is the fraction of requests also scored on the other version, "
            f"above 0 and at most 1 (0.25 means 25%), got {value}",
        )
    return value


def _non_negative(value: object) -> object:
    if _is_number(value) and not 0 <= value < float("inf"):
        raise _fail("non_negative", f"must be a number >= 0, got {value}")
    return value


def _confidence(value: object) -> object:
    if _is_number(value) and not 0.5 <= value < 1:
        raise _fail("confidence", f"confidence is a probability from 0.5 to below 1 "
                    f"(0.95 means 95%), got {value}")
    return value


def _fraction(value: object) -> object:
    if _is_number(value) and not 0 <= value <= 1:
        raise _fail(
            "fraction",
            f"error-rate thresholds are fractions from 0 to 1 (0.01 means 1%), got {value}",
        )
    return value


def _ratio(value: object) -> object:
    if _is_number(value) and value < 1:
        raise _fail(
            "ratio",
            "maxRatio is canary p99 / stable p99 and must be >= 1 "
            f"(below 1 fails a canary as fast as stable), got {value}",
        )
    return value


def _minimum(minimum: int) -> Callable[[object], object]:
    def check(value: object) -> object:
        if _is_int(value) and value < minimum:
            raise _fail("minimum", f"must be >= {minimum}, got {value}")
        return value

    return check


def _pattern(regex: str, what: str, hint: str) -> Callable[[object], object]:
    compiled = re.compile(regex)

    def check(value: object) -> object:
        if isinstance(value, str) and not compiled.fullmatch(value):
            raise _fail("pattern", f"{what} {value!r} is not valid: {hint}")
        return value

    return check


# Header names usable both as HTTP headers and as gRPC metadata keys (which are
# lowercase [0-9a-z-_.]; the server compares them case-insensitively).
HEADER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_header_chars = _pattern(HEADER_PATTERN, "header name", "use letters, digits, '-', '_' and '.'")


def _header(value: object) -> object:
    _header_chars(value)
    if isinstance(value, str):
        lowered = value.lower()
        if lowered.startswith("grpc-"):
            raise _fail(
                "header_reserved", f"header name {value!r} is not valid: grpc-* is reserved"
            )
        if lowered.endswith("-bin"):
            raise _fail(
                "header_binary",
                f"header name {value!r} is not valid: a -bin suffix means binary metadata",
            )
    return value


LABEL_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$"
# Case-insensitive, spelled out: JSON Schema regexes have no inline flags.
RESERVED_LABELS_PATTERN = "^([sS][tT][aA][bB][lL][eE]|[cC][aA][nN][aA][rR][yY])$"
_label_chars = _pattern(
    LABEL_PATTERN,
    "label",
    "start with a letter, then letters, digits, '-', '_' or '.'; at most 63 characters",
)


def _label(value: object) -> object:
    _label_chars(value)
    if isinstance(value, str) and value.lower() in RESERVED_LABELS:
        raise _fail(
            "label_reserved",
            f"label {value!r} is reserved: it always names spec.{value.lower()}",
        )
    return value


def _base_path(value: object) -> object:
    if not isinstance(value, str):
        return value
    absolute = value.startswith(("/", "\\")) or "://" in value or re.match(r"[A-Za-z]:", value)
    if not value or absolute:
        raise _fail(
            "base_path_absolute",
            f"basePath must be a relative path under the model root, got {value!r}",
        )
    if ".." in re.split(r"[/\\]", value):
        raise _fail("base_path_parent", f"basePath must not contain '..', got {value!r}")
    return value


Version = Annotated[int, Field(ge=1), BeforeValidator(_version)]
Weight = Annotated[int, Field(ge=0, le=100), BeforeValidator(_weight)]
Sample = Annotated[float, Field(gt=0, le=1), BeforeValidator(_sample)]
NonNegative = Annotated[float, Field(ge=0), BeforeValidator(_non_negative)]
Confidence = Annotated[float, Field(ge=0.5, lt=1), BeforeValidator(_confidence)]
Fraction = Annotated[float, Field(ge=0, le=1), BeforeValidator(_fraction)]
Ratio = Annotated[float, Field(ge=1), BeforeValidator(_ratio)]
HeaderName = Annotated[str, Field(pattern=HEADER_PATTERN), BeforeValidator(_header)]
LabelName = Annotated[str, Field(pattern=LABEL_PATTERN), BeforeValidator(_label)]
ModelName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"),
    BeforeValidator(
        _pattern(
            r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}",
            "model name",
            "use letters, digits, '-', '_' and '.'; at most 128 characters",
        )
    ),
]
RolloutName = Annotated[
    str,
    Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"),
    BeforeValidator(
        _pattern(
            r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
            "metadata.name",
            "use lowercase letters, digits and '-' (DNS label), at most 63 characters",
        )
    ),
]
BasePath = Annotated[str, Field(min_length=1), BeforeValidator(_base_path)]
# Durations of at least a second (holds, intervals, deadlines), counts >= 0 and >= 1.
AtLeastOneSecond = Annotated[Duration, AfterValidator(_at_least(1.0))]
NonNegativeInt = Annotated[int, Field(ge=0), BeforeValidator(_minimum(0))]
PositiveInt = Annotated[int, Field(ge=1), BeforeValidator(_minimum(1))]


class Strict(BaseModel):
    """Shared config: camelCase keys, strict types, unknown keys are errors."""

    model_config = ConfigDict(
        extra="forbid",
        field_title_generator=lambda name, _info: to_camel(name),
        strict=True,
        frozen=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,  # Python callers use snake_case; `load` turns this off
        serialize_by_alias=True,
    )
