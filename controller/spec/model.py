"""The rollout spec: pydantic models of a `ModelRollout` document and its rules.

Owns the document's shape (camelCase YAML keys, strict types, unknown keys
rejected) and defaults, and the cross-field rules (`rule_violations`); the
blocks it is made of are `canary` and `analysis`, the scalar types with their
per-field messages `fields`. The JSON Schema in `schemas/` is generated from
`RolloutSpec` (`json_schema`), so these modules are the single authority on what a
valid spec is. Loading YAML and mapping errors to file positions lives in `load`.

Error-rate thresholds are fractions in 0..1 (0.01 means 1 %); step weights are
percentages 0..100 (0 only with `canary.shadow`: a dark launch); durations are
strings such as `250ms`, `30s`, `2m`, `1h`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, model_validator

from controller.spec.analysis import Checks, ErrorRateCheck, LatencyCheck
from controller.spec.canary import Canary
from controller.spec.durations import Duration
from controller.spec.fields import (
    RESERVED_LABELS_PATTERN,
    BasePath,
    LabelName,
    ModelName,
    RolloutName,
    Strict,
    Version,
)

API_VERSION = "rollouts/v1"
KIND = "ModelRollout"
# spec.keepPrevious when unset: availability-preserving models keep the previous
# stable loaded this long; resource-preserving ones never hold two versions.
DEFAULT_KEEP_PREVIOUS = Duration(600.0, "10m")
SCHEMA_ID = "urn:model-rollouts:schema:rollout:v1"

# Validation context key: `load` sets it to report cross-field rules itself,
# each at its own position, instead of as one error on the whole document.
DEFER_RULES = "defer_rules"

Loc = tuple[str | int, ...]


class Metadata(Strict):
    name: RolloutName = Field(description="Name of this rollout; unique across all files.")


class ModelRef(Strict):
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


class RolloutBody(Strict):
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
            "propertyNames": {"not": {"pattern": RESERVED_LABELS_PATTERN}},
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


class RolloutSpec(Strict):
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
