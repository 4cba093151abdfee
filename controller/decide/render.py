"""Specs -> what the servers are told: a ModelServerConfig and split rules.

Owns the translation of valid `RolloutSpec`s into the real
`tensorflow.serving.ModelServerConfig` proto (one ModelConfig per model, sorted
by model name, a `specific` version policy and version labels), into traffic
split rules per model (and their extension-service proto), and into transition
policies. The controller's pushes go through the same `model_server_config` and
`split_to_proto`, and the policy names through `TRANSITION_POLICIES`. Pure
functions of the specs and the model root: no I/O.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, text_format

from controller.decide.fleet import ShadowRule, SplitRule
from controller.decide.plan import ModelEntry
from controller.spec.fields import CANARY_LABEL, STABLE_LABEL
from controller.spec.model import RolloutSpec
from serving.generated import rollouts_serving_pb2
from serving.generated.tensorflow_serving.config import model_server_config_pb2

BASIS_POINTS_PER_PERCENT = 100


@dataclass(frozen=True)
class PolicyNames:
    """One transition policy under its three names: the spec's word, the controller's
    (`DesiredModel.transition`, `rollouts plan`) and the extension service's enum."""

    spec: str
    name: str
    proto: rollouts_serving_pb2.TransitionPolicy


TRANSITION_POLICIES = (
    PolicyNames("availability", "availability_preserving",
                rollouts_serving_pb2.AVAILABILITY_PRESERVING),
    PolicyNames("resource", "resource_preserving", rollouts_serving_pb2.RESOURCE_PRESERVING),
)
_POLICY_BY_SPEC = {p.spec: p for p in TRANSITION_POLICIES}
_POLICY_BY_NAME = {p.name: p for p in TRANSITION_POLICIES}
_POLICY_BY_PROTO = {p.proto: p for p in TRANSITION_POLICIES}


def policy_name(spec_value: str) -> str:
    """"availability" -> "availability_preserving" (a spec's `transition`)."""
    return _POLICY_BY_SPEC[spec_value].name


def policy_proto(name: str) -> rollouts_serving_pb2.TransitionPolicy:
    """"availability_preserving" -> the extension service's enum value."""
    return _POLICY_BY_NAME[name].proto


def policy_from_proto(value: rollouts_serving_pb2.TransitionPolicy) -> str | None:
    """The extension service's enum value -> "availability_preserving"; None if unset."""
    policy = _POLICY_BY_PROTO.get(value)
    return policy.name if policy is not None else None


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


def spec_entry(doc: RolloutSpec, model_root: str | os.PathLike[str]) -> ModelEntry:
    """A spec's model as a config entry: its versions and version labels."""
    body = doc.spec
    labels = {STABLE_LABEL: body.stable, **body.labels}
    if body.canary is not None:
        labels[CANARY_LABEL] = body.canary.version
    return ModelEntry(
        name=body.model.name,
        base_path=base_path(os.fspath(model_root), body.model.path),
        platform=body.model.platform,
        versions=frozenset(body.versions()),
        labels=labels,
    )


def model_server_config(
    entries: Iterable[ModelEntry],
) -> model_server_config_pb2.ModelServerConfig:
    """The ModelServerConfig of `entries`, in model-name order: what `rollouts render`
    prints and what the controller pushes to every target.

    The list is set even when empty: an unset config makes TF Serving (and our
    server) keep what it serves, while an empty list means "serve nothing", which
    is what git says once every spec is removed.
    """
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.SetInParent()
    for entry in sorted(entries, key=lambda e: e.name):
        model = config.model_config_list.config.add()
        model.name = entry.name
        model.base_path = entry.base_path
        model.model_platform = entry.platform
        model.model_version_policy.specific.versions.extend(sorted(entry.versions))
        for label in sorted(entry.labels):
            model.version_labels[label] = entry.labels[label]
    return config


def render_config(
    specs: Iterable[RolloutSpec], model_root: str | os.PathLike[str]
) -> model_server_config_pb2.ModelServerConfig:
    """One ModelServerConfig for every model, in model-name order."""
    return model_server_config(spec_entry(doc, model_root) for doc in specs)


def render_split(doc: RolloutSpec, step: int = 0) -> SplitRule:
    """The split at canary step `step` (0 = the first; the planner advances it)."""
    canary = doc.spec.canary
    if canary is None:
        return SplitRule(canary_weight_bp=0)
    weight = canary.steps[step].weight if canary.steps else 0
    return SplitRule(
        canary_weight_bp=weight * BASIS_POINTS_PER_PERCENT,
        hash_key=canary.split.hash_key or "",
        salt=canary.split.salt,
        match=tuple((m.header, m.value) for m in canary.split.match),
        shadow=shadow_rule(doc),
    )


def render_splits(specs: Iterable[RolloutSpec]) -> dict[str, SplitRule]:
    """The first-step split of every model, keyed and ordered by model name."""
    return {doc.spec.model.name: render_split(doc) for doc in _sorted(specs)}


def split_to_proto(model: str, rule: SplitRule) -> rollouts_serving_pb2.Split:
    """A model's split as the extension service's message."""
    return rollouts_serving_pb2.Split(
        model_name=model,
        stable_label=rule.stable_label,
        canary_label=rule.canary_label,
        canary_weight_bp=rule.canary_weight_bp,
        hash_key=rule.hash_key,
        salt=rule.salt,
        match=[rollouts_serving_pb2.HeaderMatch(header=h, value=v) for h, v in rule.match],
        shadow=shadow_to_proto(rule.shadow),
    )


def split_from_proto(split: rollouts_serving_pb2.Split) -> SplitRule:
    """The extension service's split message as a `SplitRule` (its inverse)."""
    return SplitRule(
        stable_label=split.stable_label or STABLE_LABEL,
        canary_label=split.canary_label or CANARY_LABEL,
        canary_weight_bp=split.canary_weight_bp,
        hash_key=split.hash_key,
        salt=split.salt,
        match=tuple((m.header, m.value) for m in split.match),
        # An unset or zero-rate shadow is no shadow, as the server treats it.
        shadow=ShadowRule(split.shadow.sample, split.shadow.tolerance,
                          tuple(split.shadow.outputs)) if split.shadow.sample > 0 else None,
    )


def render_transitions(specs: Iterable[RolloutSpec]) -> dict[str, str]:
    """model name -> the spec's "availability" | "resource"; see TRANSITION_POLICIES."""
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
                split_to_proto(name, rule),
                preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
            )
            for name, rule in render_splits(docs).items()
        },
        "transitions": render_transitions(docs),
    }
