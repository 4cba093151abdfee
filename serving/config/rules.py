"""TF Serving's rules for a ModelServerConfig, as pure checks.

The validation server_core.cc does on every reload, with its status codes and
messages (clients and operators match on them): the config kind, duplicate
names, absolute base paths, platform (and the deprecated model_type), platform
changes; a model's version policy; the label rule (a label points only at an
AVAILABLE version); and our split's rules.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from tensorflow_serving.config import model_server_config_pb2
from tensorflow_serving.config.model_server_config_pb2 import ModelConfig, ModelServerConfig

from serving.core.status import Code, ServingError
from serving.core.versions import VersionPolicy
from serving.generated import rollouts_serving_pb2
from serving.loaders.registry import PlatformRegistry

Split = rollouts_serving_pb2.Split

STABLE = "stable"
CANARY = "canary"
MAX_WEIGHT_BP = 10000
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def platform_of(config: ModelConfig) -> str:
    """The model's platform, honouring the deprecated model_type field."""
    if config.model_type != model_server_config_pb2.MODEL_TYPE_UNSPECIFIED:
        if config.model_platform:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                "Illegal setting both ModelServerConfig::model_type (deprecated) "
                "and ModelServerConfig::model_platform.",
            )
        if config.model_type == model_server_config_pb2.TENSORFLOW:
            return "tensorflow"
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"ModelServerConfig::model_type choice {config.model_type} not supported.",
        )
    if not config.model_platform:
        raise ServingError(
            Code.INVALID_ARGUMENT,
            "Illegal setting neither ModelServerConfig::model_type (deprecated) "
            "nor ModelServerConfig::model_platform.",
        )
    return str(config.model_platform)


def is_relative(base_path: str) -> bool:
    return not _URI_SCHEME.match(base_path) and not base_path.startswith("/")


def validate_config(
    new: ModelServerConfig, old_platforms: Mapping[str, str], registry: PlatformRegistry
) -> dict[str, str]:
    """TF Serving's reload validation; returns model name -> platform."""
    if new.WhichOneof("config") != "model_config_list":
        raise ServingError(
            Code.INVALID_ARGUMENT,
            "ServerModelConfig type not supported by HandleReloadConfigRequest. "
            "Only ModelConfigList is currently supported",
        )
    seen: set[str] = set()
    for model in new.model_config_list.config:
        if model.name in seen:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"Illegal to list model {model.name} multiple times in config list",
            )
        seen.add(model.name)
    for model in new.model_config_list.config:
        if is_relative(model.base_path):
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"Expected model {model.name} to have an absolute path or URI; "
                f"got base_path()={model.base_path}",
            )
    platforms = {model.name: platform_of(model) for model in new.model_config_list.config}
    for name, platform in platforms.items():
        old = old_platforms.get(name)
        if old is not None and old != platform:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"Illegal to change a model's platform. For model {name} platform was "
                f"{old} and new platform requested is {platform}",
            )
    for name, platform in platforms.items():
        registry.factory(name, platform)  # raises for an unsupported platform
    return platforms


def version_policy(config: ModelConfig) -> VersionPolicy:
    choice = config.model_version_policy.WhichOneof("policy_choice")
    if choice == "all":
        return VersionPolicy("all")
    if choice == "specific":
        return VersionPolicy(
            "specific", versions=tuple(config.model_version_policy.specific.versions)
        )
    if choice == "latest":
        return VersionPolicy("latest", num_versions=config.model_version_policy.latest.num_versions)
    return VersionPolicy("latest", num_versions=1)


def check_labels(
    model: str,
    wanted: Mapping[str, int],
    current: Mapping[str, int],
    available: set[int],
    allow_unavailable: bool,
) -> None:
    """TF Serving's UpdateModelVersionLabelMap rule for one model.

    A label may point only at an AVAILABLE version. The allow flag covers new
    labels (and labels left where they are); moving an existing label to a
    different version still needs an AVAILABLE target.
    """
    for label, version in sorted(wanted.items()):
        moves = label in current and current[label] != version
        allowed = allow_unavailable and not moves
        if not allowed and version not in available:
            raise ServingError(
                Code.FAILED_PRECONDITION,
                f"Request to assign label to version {version} of model {model}, "
                f"which is not currently available for inference",
            )


def check_split(split: Split, labels: Mapping[str, int], known_model: bool) -> None:
    if not split.model_name:
        raise ServingError(Code.INVALID_ARGUMENT, "Split has no model_name")
    if not known_model:
        raise ServingError(Code.NOT_FOUND, f"Model {split.model_name} is not configured")
    if split.canary_weight_bp > MAX_WEIGHT_BP:
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"canary_weight_bp must be at most {MAX_WEIGHT_BP}, got {split.canary_weight_bp}",
        )
    shadow = split.shadow
    if not 0.0 <= shadow.sample <= 1.0:  # also refuses NaN
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"Split of model {split.model_name}: shadow.sample must be in [0, 1], "
            f"got {shadow.sample}",
        )
    if not 0.0 <= shadow.tolerance < math.inf:
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"Split of model {split.model_name}: shadow.tolerance must be a finite "
            f"number >= 0, got {shadow.tolerance}",
        )
    for label in (split.stable_label or STABLE, split.canary_label or CANARY):
        if label not in labels:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"Split of model {split.model_name} names label {label}, "
                f"which is not assigned; labels: {dict(sorted(labels.items()))}",
            )


def split_labels_present(split: Split, labels: Mapping[str, int]) -> bool:
    return (split.stable_label or STABLE) in labels and (split.canary_label or CANARY) in labels


def source_changed(model: ModelConfig, previous: ModelConfig | None) -> bool:
    """A model that is new, or whose base path or version policy changed."""
    return (
        previous is None
        or previous.base_path != model.base_path
        or previous.model_version_policy != model.model_version_policy
    )
