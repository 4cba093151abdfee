"""The spec's `canary.analysis` block: what a passing interval means and how it is judged.

The checks (error rate, p99 latency, prediction differences under shadow
scoring), the status codes that count as errors, and the interval, data and
failure settings. The judging itself is `controller.decide.analysis`'.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from controller.spec.durations import Duration
from controller.spec.fields import (
    AtLeastOneSecond,
    Confidence,
    Fraction,
    NonNegative,
    NonNegativeInt,
    PositiveInt,
    Ratio,
    Strict,
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


class ErrorRateCheck(Strict):
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


class LatencyCheck(Strict):
    max: Duration | None = Field(default=None, description="Highest canary p99 latency.")
    max_ratio: Ratio | None = Field(
        default=None, description="Highest canary p99 / stable p99 (>= 1)."
    )


class PredictionDiffCheck(Strict):
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


class Checks(Strict):
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


class Analysis(Strict):
    interval: AtLeastOneSecond = Field(
        default=Duration(30.0, "30s"), description="Length of one analysis interval (>= 1s)."
    )
    min_requests: NonNegativeInt = Field(
        default=100,
        description="Canary requests an interval needs to be judged; fewer is no data.",
    )
    on_no_data: Literal["pause", "fail", "pass"] = Field(
        default="pause",
        description="Verdict of an interval without enough requests: pause (wait, count "
        "nothing), fail (count a failure) or pass.",
    )
    failure_limit: PositiveInt = Field(
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
