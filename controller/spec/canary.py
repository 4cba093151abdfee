"""The spec's `canary` block: the version rolled out, its traffic split, steps and shadow.

How requests are divided (`split`), the traffic steps and their holds, shadow
scoring, and the run's settings (retry, pause, attempt, promotion, progress
deadline); its analysis block is `controller.spec.analysis`'. Rules spanning
several fields are `controller.spec.model.rule_violations`'.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from controller.spec.analysis import Analysis
from controller.spec.durations import Duration
from controller.spec.fields import (
    AtLeastOneSecond,
    HeaderName,
    PositiveInt,
    Sample,
    Strict,
    Version,
    Weight,
)


class HeaderMatch(Strict):
    header: HeaderName = Field(description="Request header / gRPC metadata key (any case).")
    value: str = Field(description="Exact value that sends the request to the canary.")


class Split(Strict):
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


class Step(Strict):
    weight: Weight = Field(
        description="Percent of traffic (0..100) sent to the canary; 0 only with "
        "canary.shadow (a dark launch: no user is answered by the canary)."
    )
    hold: AtLeastOneSecond = Field(
        default=Duration(300.0, "5m"),
        description="How long the step lasts (analysis keeps running). Default 5m.",
    )


class Shadow(Strict):
    sample: Sample = Field(
        description="Fraction (0..1] of the requests one version answers that are also "
        "run on the other version and compared, off the response path."
    )


class Canary(Strict):
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
    attempt: PositiveInt = Field(
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
    progress_deadline: AtLeastOneSecond = Field(
        default=Duration(600.0, "10m"),
        description="How long the canary may take to become ready (AVAILABLE, labelled and "
        "split on every target) before it counts as failed and is reverted. Default 10m.",
    )
