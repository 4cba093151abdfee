"""Specs -> what the servers are told: a ModelServerConfig and split rules.

Owns the translation of valid `RolloutSpec`s into the real
`tensorflow.serving.ModelServerConfig` proto (one ModelConfig per model, sorted
by model name, a `specific` version policy and version labels), into traffic
split rules per model (and their extension-service proto), and into transition
policies. Pure functions of the specs and the model root: no I/O.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format, text_format

from controller.decide.fleet import ShadowRule
from controller.spec.model import CANARY_LABEL, STABLE_LABEL, RolloutSpec
from serving.generated import rollouts_serving_pb2
from serving.generated.tensorflow_serving.config import model_server_config_pb2

BASIS_POINTS_PER_PERCENT = 100

TRANSITION_POLICIES = {
    "availability": rollouts_serving_pb2.AVAILABILITY_PRESERVING,
    "resource": rollouts_serving_pb2.RESOURCE_PRESERVING,
}


@dataclass(frozen=True)
class HeaderMatchRule:
    header: str
    value: str


@dataclass(frozen=True)
class SplitRule:
    """How one model's default traffic is divided between two labels.

    Without a canary the weight is 0 and there are no matches: all traffic goes
    to `stable`. A canary without steps also has weight 0; only requests that
    match one of `match` reach it.
    """

    model_name: str
    canary_weight_bp: int  # 0..10000 basis points of traffic to the canary
    hash_key: str = ""  # "" = pick each request at random
    salt: str = ""
    match: tuple[HeaderMatchRule, ...] = field(default=())
    stable_label: str = STABLE_LABEL
    canary_label: str = CANARY_LABEL
    shadow: ShadowRule | None = None


def shadow_rule(doc: RolloutSpec) -> ShadowRule | None:
    """The canary's shadow scoring, with predictionDiff's tolerance and outputs
    (the server needs the tolerance to tell "differs" from "same")."""
    canary = doc.spec.canary
    if canary is None or canary.shadow is None:
        return None
    diff = canary.analysis.checks.prediction_diff
    return ShadowRule(
        sample=canary.shadow.sample,
        tolerance=diff.tolerance if diff is not None else 0.0,
        outputs=tuple(diff.outputs) if diff is not None else (),
    )


def shadow_to_proto(rule: ShadowRule | None) -> rollouts_serving_pb2.Shadow | None:
    if rule is None:
        return None
    return rollouts_serving_pb2.Shadow(
        sample=rule.sample, tolerance=rule.tolerance, outputs=list(rule.outputs))


def _sorted(specs: Iterable[RolloutSpec]) -> list[RolloutSpec]:
    return sorted(specs, key=lambda doc: doc.spec.model.name)


def base_path(model_root: str, relative: str) -> str:
    """Absolute base path; a URI root (gs://, s3://) is joined as text."""
    if "://" in model_root:
        return f"{model_root.rstrip('/')}/{relative}"
    return os.path.abspath(os.path.join(model_root, relative))


def render_model_config(
    doc: RolloutSpec, model_root: str | os.PathLike[str]
) -> model_server_config_pb2.ModelConfig:
    body = doc.spec
    config = model_server_config_pb2.ModelConfig(
        name=body.model.name,
        base_path=base_path(os.fspath(model_root), body.model.path),
        model_platform=body.model.platform,
    )
    config.model_version_policy.specific.versions.extend(body.versions())
    config.version_labels[STABLE_LABEL] = body.stable
    if body.canary is not None:
        config.version_labels[CANARY_LABEL] = body.canary.version
    for label, version in sorted(body.labels.items()):
        config.version_labels[label] = version
    return config


def render_config(
    specs: Iterable[RolloutSpec], model_root: str | os.PathLike[str]
) -> model_server_config_pb2.ModelServerConfig:
    """One ModelServerConfig for every model, in model-name order."""
    config = model_server_config_pb2.ModelServerConfig()
    # Set the list even when empty: an unset config makes TF Serving keep what
    # it serves, while an empty list means "serve nothing", which git said.
    config.model_config_list.SetInParent()
    models = config.model_config_list.config
    for doc in _sorted(specs):
        models.append(render_model_config(doc, model_root))
    return config


def render_split(doc: RolloutSpec, step: int = 0) -> SplitRule:
    """The split at canary step `step` (0 = the first; the planner advances it)."""
    body = doc.spec
    canary = body.canary
    if canary is None:
        return SplitRule(model_name=body.model.name, canary_weight_bp=0)
    weight = canary.steps[step].weight if canary.steps else 0
    return SplitRule(
        model_name=body.model.name,
        canary_weight_bp=weight * BASIS_POINTS_PER_PERCENT,
        hash_key=canary.split.hash_key or "",
        salt=canary.split.salt,
        match=tuple(HeaderMatchRule(m.header, m.value) for m in canary.split.match),
        shadow=shadow_rule(doc),
    )


def render_splits(specs: Iterable[RolloutSpec]) -> dict[str, SplitRule]:
    """The first-step split of every model, keyed and ordered by model name."""
    return {doc.spec.model.name: render_split(doc) for doc in _sorted(specs)}


def split_to_proto(rule: SplitRule) -> rollouts_serving_pb2.Split:
    return rollouts_serving_pb2.Split(
        model_name=rule.model_name,
        stable_label=rule.stable_label,
        canary_label=rule.canary_label,
        canary_weight_bp=rule.canary_weight_bp,
        hash_key=rule.hash_key,
        salt=rule.salt,
        match=[
            rollouts_serving_pb2.HeaderMatch(header=m.header, value=m.value) for m in rule.match
        ],
        shadow=shadow_to_proto(rule.shadow),
    )


def render_transitions(specs: Iterable[RolloutSpec]) -> dict[str, str]:
    """model name -> "availability" | "resource"; see TRANSITION_POLICIES."""
    return {doc.spec.model.name: doc.spec.transition for doc in _sorted(specs)}


def config_text(config: model_server_config_pb2.ModelServerConfig) -> str:
    """The text proto TF Serving reads with --model_config_file."""
    return text_format.MessageToString(config)


def render_json(specs: Iterable[RolloutSpec], model_root: str | os.PathLike[str]) -> dict[str, Any]:
    """`rollouts render --format json`: the config, splits and transitions."""
    docs = _sorted(specs)
    config = render_config(docs, model_root)
    return {
        "config": json_format.MessageToDict(config, preserving_proto_field_name=True),
        "splits": {
            name: json_format.MessageToDict(
                split_to_proto(rule),
                preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
            )
            for name, rule in render_splits(docs).items()
        },
        "transitions": render_transitions(docs),
    }
