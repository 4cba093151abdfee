"""The rollout spec: pydantic models of a `ModelRollout` document and its rules.

Owns the shape (camelCase YAML keys, strict types, unknown keys rejected), the
defaults, the per-field rules (each with its own message) and the cross-field
rules (`rule_violations`). The JSON Schema in `schemas/` is generated from these
models (`json_schema`), so this module is the single authority on what a valid
spec is. Loading YAML and mapping errors to file positions lives in `load`.

Error-rate thresholds are fractions in 0..1 (0.01 means 1 %); step weights are
percentages 0..100 (0 only with `canary.shadow`: a dark launch); durations are
strings such as `250ms`, `30s`, `2m`, `1h`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeGuard

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from controller.spec.durations import Duration

API_VERSION = "rollouts/v1"
KIND = "ModelRollout"
STABLE_LABEL = "stable"
CANARY_LABEL = "canary"
# The version stable last moved away from, while spec.keepPrevious keeps it loaded.
# Not reserved: a spec's own `labels.previous` takes precedence (it was usable before).
PREVIOUS_LABEL = "previous"
RESERVED_LABELS = (STABLE_LABEL, CANARY_LABEL)
# spec.keepPrevious when unset: availability-preserving models keep the previous
# stable loaded this long; resource-preserving ones never hold two versions.
DEFAULT_KEEP_PREVIOUS = Duration(600.0, "10m")
SCHEMA_ID = "urn:model-rollouts:schema:rollout:v1"

# Validation context key: `load` sets it to report cross-field rules itself,
# each at its own position, instead of as one error on the whole document.
DEFER_RULES = "defer_rules"

Loc = tuple[str | int, ...]


def _fail(kind: str, message: str) -> PydanticCustomError:
    # The message is formatted here, not by pydantic, so user text containing
    # braces cannot be mistaken for a template field.
    return PydanticCustomError(kind, message)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- scalar types with their own messages ------------------------------------
# Each type keeps pydantic constraints (they feed the JSON Schema) and checks
# the same rule first in a BeforeValidator, so users get a message that says
# what the rule is rather than pydantic's generic "should be >= 1".


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
_RESERVED_LABELS_PATTERN = "^([sS][tT][aA][bB][lL][eE]|[cC][aA][nN][aA][rR][yY])$"
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


# --- models ------------------------------------------------------------------


class _Strict(BaseModel):
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


class Metadata(_Strict):
    name: RolloutName = Field(description="Name of this rollout; unique across all files.")


class ModelRef(_Strict):
    name: ModelName = Field(description="Model name served by the model server; unique.")
    base_path: BasePath | None = Field(
        default=None,
        description="Directory of the model's numeric version dirs, relative to the model "
        "root. Default: the model name.",
    )
    platform: Literal["tensorflow"] = Field(
        default="tensorflow", description="Model platform (ModelConfig.model_platform)."
    )

    @property
    def path(self) -> str:
        """The base path relative to the model root, after applying the default."""
        return self.base_path if self.base_path is not None else self.name


class HeaderMatch(_Strict):
    header: HeaderName = Field(description="Request header / gRPC metadata key (any case).")
    value: str = Field(description="Exact value that sends the request to the canary.")


class Split(_Strict):
    hash_key: HeaderName | None = Field(
        default=None,
        description="Header whose value is hashed to pick stable or canary, so one user "
        "sticks to one side. Default: none, each request is assigned at random.",
    )
    salt: str = Field(default="", description="Mixed into the hash to reshuffle users.")
    match: list[HeaderMatch] = Field(
        default_factory=list,
        description="Requests matching any of these always go to the canary.",
    )


class Step(_Strict):
    weight: Weight = Field(
        description="Percent of traffic (0..100) sent to the canary; 0 only with "
        "canary.shadow (a dark launch: no user is answered by the canary)."
    )
    hold: Annotated[Duration, AfterValidator(_at_least(1.0))] = Field(
        default=Duration(300.0, "5m"),
        description="How long the step lasts (analysis keeps running). Default 5m.",
    )


# gRPC's canonical status names other than OK (REST answers map onto them).
StatusCode = Literal[
    "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
]
# What counts as a canary error by default: the server failing, never a client's
# own bad request (one client sending malformed input must not revert a canary).
SERVER_ERROR_CODES: tuple[StatusCode, ...] = (
    "INTERNAL", "UNKNOWN", "UNAVAILABLE", "DEADLINE_EXCEEDED", "DATA_LOSS", "RESOURCE_EXHAUSTED",
)


class ErrorRateCheck(_Strict):
    max: Fraction | None = Field(
        default=None, description="Highest canary error rate allowed, a fraction 0..1."
    )
    max_increase: Fraction | None = Field(
        default=None,
        description="Highest canary error rate minus stable error rate, a fraction 0..1.",
    )
    codes: list[StatusCode] = Field(
        default_factory=lambda: list(SERVER_ERROR_CODES),
        min_length=1,
        description="The status codes that count as errors (gRPC names; REST answers map "
        "onto them). Default: the server-side failures " + ", ".join(SERVER_ERROR_CODES)
        + "; a client's INVALID_ARGUMENT or NOT_FOUND does not count.",
    )


class LatencyCheck(_Strict):
    max: Duration | None = Field(default=None, description="Highest canary p99 latency.")
    max_ratio: Ratio | None = Field(
        default=None, description="Highest canary p99 / stable p99 (>= 1)."
    )


class PredictionDiffCheck(_Strict):
    tolerance: NonNegative = Field(
        default=0.0,
        description="Per element: a float output element differing from stable's by more "
        "than this makes the request 'differ'. Integer and string outputs must be equal.",
    )
    max_differing_rate: Fraction | None = Field(
        default=None,
        description="Highest fraction of compared requests whose answers differ "
        "(or mismatch in shape or dtype), 0..1.",
    )
    max_mean_abs: NonNegative | None = Field(
        default=None,
        description="Highest mean |canary - stable| over the compared float elements.",
    )
    outputs: list[str] = Field(
        default_factory=list,
        description="Outputs compared; empty: every output both versions return.",
    )


class Checks(_Strict):
    error_rate: ErrorRateCheck | None = Field(
        default=None, description="Limits on the fraction of failed requests."
    )
    latency_p99: LatencyCheck | None = Field(
        default=None, description="Limits on the 99th percentile latency."
    )
    prediction_diff: PredictionDiffCheck | None = Field(
        default=None,
        description="Limits on how the canary's answers differ from stable's on the same "
        "requests (needs canary.shadow).",
    )


DEFAULT_CHECKS = Checks(error_rate=ErrorRateCheck(max=0.01))


class Analysis(_Strict):
    interval: Annotated[Duration, AfterValidator(_at_least(1.0))] = Field(
        default=Duration(30.0, "30s"), description="Length of one analysis interval (>= 1s)."
    )
    min_requests: Annotated[int, Field(ge=0), BeforeValidator(_minimum(0))] = Field(
        default=100,
        description="Canary requests an interval needs to be judged; fewer is no data.",
    )
    on_no_data: Literal["pause", "fail", "pass"] = Field(
        default="pause",
        description="Verdict of an interval without enough requests: pause (wait, count "
        "nothing), fail (count a failure) or pass.",
    )
    failure_limit: Annotated[int, Field(ge=1), BeforeValidator(_minimum(1))] = Field(
        default=2, description="Consecutive failed intervals that fail the canary."
    )
    on_failure: Literal["revert", "pause"] = Field(
        default="revert",
        description="What a failed analysis does: revert (take the canary out of traffic, "
        "then commit the revert) or pause (take it out of traffic, weight 0, still loaded "
        "and labelled, and wait for a person's `rollouts abort`, `retry` or `promote`; "
        "nothing is written to git).",
    )
    checks: Checks = Field(
        default=DEFAULT_CHECKS,
        description="What a passing interval means. Default: errorRate.max 0.01.",
    )
    judge: Literal["threshold", "statistical"] = Field(
        default="threshold",
        description="threshold: a relative check fails when the measured difference is "
        "beyond its margin; statistical: only when the canary is worse than stable beyond "
        "the margin with `confidence` (two-proportion test for error rates, Mann-Whitney U "
        "for latency, a one-sided binomial bound for the differing rate).",
    )
    confidence: Confidence = Field(
        default=0.95, description="The statistical judge's confidence, 0.5..<1."
    )


class Shadow(_Strict):
    sample: Sample = Field(
        description="Fraction (0..1] of the requests one version answers that are also "
        "run on the other version and compared, off the response path."
    )


class Canary(_Strict):
    version: Version = Field(description="The version being rolled out.")
    retry: bool = Field(
        default=False,
        description="Propose again a version that was automatically reverted before.",
    )
    paused: bool = Field(
        default=False,
        description="Hold the canary at its current step and weight: intervals are still "
        "judged and journaled, no step advances and no verdict is written; false again "
        "resumes the hold where it stopped.",
    )
    attempt: Annotated[int, Field(ge=1), BeforeValidator(_minimum(1))] = Field(
        default=1,
        description="Which analysis run of this version: `rollouts retry` raises it by one, "
        "which starts the analysis again from the first step (e.g. after a failure held by "
        "analysis.onFailure: pause).",
    )
    split: Split = Field(default_factory=Split, description="How traffic is divided.")
    shadow: Shadow | None = Field(
        default=None,
        description="Shadow scoring: also score a share of requests on the other version "
        "and compare the answers (checks.predictionDiff). With a step of weight 0 it is a "
        "dark launch.",
    )
    steps: list[Step] = Field(
        default_factory=list,
        description="Traffic steps with strictly increasing weights. Empty: the canary "
        "gets no weighted traffic, only requests matching split.match.",
    )
    analysis: Analysis = Field(default_factory=Analysis, description="How the canary is judged.")
    promotion: Literal["auto", "manual"] = Field(
        default="auto",
        description="auto: commit the promotion after the last step passes; manual: never "
        "commit it (a person edits stable).",
    )
    progress_deadline: Annotated[Duration, AfterValidator(_at_least(1.0))] = Field(
        default=Duration(600.0, "10m"),
        description="How long the canary may take to become ready (AVAILABLE, labelled and "
        "split on every target) before it counts as failed and is reverted. Default 10m.",
    )


class RolloutBody(_Strict):
    model: ModelRef = Field(description="The model this rollout controls.")
    transition: Literal["availability", "resource"] = Field(
        default="availability",
        description="availability: load the new version before unloading the old; "
        "resource: unload first (for models too large to hold twice).",
    )
    stable: Version = Field(description="The version serving normal traffic.")
    canary: Canary | None = Field(
        default=None, description="The version being rolled out; absent at steady state."
    )
    keep: list[Version] = Field(
        default_factory=list, description="Extra versions to keep loaded (e.g. for rollback)."
    )
    keep_previous: Duration | None = Field(
        default=None,
        description="After a commit moves stable (a promotion, a person's edit or revert), "
        "keep the version it replaced loaded and labelled `previous` (out of the split) this "
        "long from that commit's time, so reverting it is a label move with no load. Unset: "
        f"{DEFAULT_KEEP_PREVIOUS} with transition availability, 0s (never) with resource; "
        "0s disables.",
    )
    labels: dict[LabelName, Version] = Field(
        default_factory=dict,
        description="Extra version labels (label -> version); stable and canary are reserved.",
        # pydantic emits patternProperties only; these make the schema reject
        # bad and reserved label names as validation does.
        json_schema_extra={
            "additionalProperties": False,
            "propertyNames": {"not": {"pattern": _RESERVED_LABELS_PATTERN}},
        },
    )

    def keep_previous_s(self) -> float:
        """spec.keepPrevious in seconds, its default applied (0: never kept)."""
        if self.keep_previous is not None:
            return self.keep_previous.seconds
        return 0.0 if self.transition == "resource" else DEFAULT_KEEP_PREVIOUS.seconds

    def versions(self) -> list[int]:
        """Every version the spec itself keeps loaded, sorted and without repeats (a
        kept previous stable is added per reconcile: `controller.decide.previous`)."""
        wanted = {self.stable, *self.keep, *self.labels.values()}
        if self.canary is not None:
            wanted.add(self.canary.version)
        return sorted(wanted)


class RolloutSpec(_Strict):
    """One `ModelRollout` YAML document."""

    model_config = ConfigDict(title="ModelRollout")

    api_version: Literal["rollouts/v1"] = Field(description="Always rollouts/v1.")
    kind: Literal["ModelRollout"] = Field(description="Always ModelRollout.")
    metadata: Metadata
    spec: RolloutBody

    @model_validator(mode="after")
    def _cross_field_rules(self, info: ValidationInfo) -> RolloutSpec:
        if isinstance(info.context, dict) and info.context.get(DEFER_RULES):
            return self
        violations = rule_violations(self)
        if violations:
            raise ValueError("; ".join(f"{v.where}: {v.message}" for v in violations))
        return self


# --- cross-field rules (pure) --------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """A broken rule; `loc` is the path of YAML keys/indexes it points at."""

    loc: Loc
    message: str

    @property
    def where(self) -> str:
        return format_loc(self.loc)


def format_loc(loc: Loc) -> str:
    """`('spec', 'canary', 'steps', 1)` -> `spec.canary.steps[1]`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def rule_violations(doc: RolloutSpec) -> list[Violation]:
    """Rules that span several fields (`load` sorts them by position)."""
    body = doc.spec
    found: list[Violation] = []
    seen: set[int] = set()
    for index, version in enumerate(body.keep):
        if version in seen:
            found.append(Violation(("spec", "keep", index), f"version {version} is listed twice"))
        seen.add(version)
    if body.transition == "resource" and body.keep_previous is not None \
            and body.keep_previous.seconds > 0:
        found.append(Violation(
            ("spec", "keepPrevious"),
            f"keepPrevious {body.keep_previous} would hold two versions of a model whose "
            "transition is resource (too large to hold twice): use 0s, or transition "
            "availability",
        ))
    if body.canary is not None:
        found.extend(_canary_violations(body.canary, body.stable))
    return found


def _canary_violations(canary: Canary, stable: int) -> list[Violation]:
    at: Loc = ("spec", "canary")
    found: list[Violation] = []
    if canary.version == stable:
        found.append(
            Violation(
                (*at, "version"),
                f"version {canary.version} is already spec.stable; "
                "set canary.version to the version you want to roll out",
            )
        )
    if not canary.steps and not canary.split.match:
        found.append(
            Violation(
                at,
                "a canary without steps gets traffic only from split.match: "
                "add steps or a split.match rule",
            )
        )
    for index, step in enumerate(canary.steps):
        if step.weight == 0 and canary.shadow is None:
            found.append(
                Violation(
                    (*at, "steps", index, "weight"),
                    "weight 0 sends the canary no traffic: set canary.shadow for a dark "
                    "launch (the canary is judged on shadow-scored requests), or use a "
                    "weight from 1 to 100",
                )
            )
    if canary.analysis.checks.prediction_diff is not None and canary.shadow is None:
        found.append(
            Violation(
                (*at, "analysis", "checks", "predictionDiff"),
                "predictionDiff compares answers from shadow scoring: set canary.shadow "
                "(e.g. shadow: {sample: 0.1})",
            )
        )
    for index in range(1, len(canary.steps)):
        before, weight = canary.steps[index - 1].weight, canary.steps[index].weight
        if weight <= before:
            found.append(
                Violation(
                    (*at, "steps", index, "weight"),
                    f"step weights must strictly increase: {weight} follows {before}",
                )
            )
    interval = canary.analysis.interval
    for index, step in enumerate(canary.steps):
        if step.hold.seconds < interval.seconds:
            found.append(
                Violation(
                    (*at, "steps", index, "hold"),
                    f"{step.hold} is shorter than analysis.interval {interval}: "
                    "the step would end before its first analysis",
                )
            )
    found.extend(_check_violations(canary.analysis.checks, (*at, "analysis", "checks")))
    return found


def _check_violations(checks: Checks, at: Loc) -> list[Violation]:
    found: list[Violation] = []
    if checks.error_rate is None and checks.latency_p99 is None and checks.prediction_diff is None:
        found.append(Violation(at, "define errorRate, latencyP99, predictionDiff or several"))
    if checks.error_rate is not None and checks.error_rate == ErrorRateCheck():
        found.append(Violation((*at, "errorRate"), "set max, maxIncrease or both"))
    if checks.latency_p99 is not None and checks.latency_p99 == LatencyCheck():
        found.append(Violation((*at, "latencyP99"), "set max, maxRatio or both"))
    diff = checks.prediction_diff
    if diff is not None and diff.max_differing_rate is None and diff.max_mean_abs is None:
        found.append(Violation((*at, "predictionDiff"), "set maxDifferingRate, maxMeanAbs or both"))
    return found


def json_schema() -> dict[str, Any]:
    """The JSON Schema of one document, as written to schemas/rollout.schema.json."""
    schema = RolloutSpec.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "ModelRollout",
        **{key: value for key, value in schema.items() if key not in ("title",)},
    }
