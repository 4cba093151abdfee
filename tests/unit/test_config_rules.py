"""Tables for TF Serving's config rules: codes and messages operators match on."""

from __future__ import annotations

import pytest
from google.protobuf import text_format
from tensorflow_serving.config.model_server_config_pb2 import ModelConfig, ModelServerConfig

from serving.config.rules import (
    Split,
    check_labels,
    check_split,
    source_changed,
    split_labels_present,
    validate_config,
    version_policy,
)
from serving.core.status import Code, ServingError
from serving.core.versions import VersionPolicy
from serving.generated.rollouts_serving_pb2 import Shadow
from serving.loaders.registry import PlatformRegistry


def registry() -> PlatformRegistry:
    # Only the platform names matter here: nothing is loaded.
    return PlatformRegistry({"tensorflow": lambda path: None})  # type: ignore[return-value,dict-item]


def config(text: str) -> ModelServerConfig:
    return text_format.Parse(text, ModelServerConfig())


def model(text: str) -> ModelConfig:
    return text_format.Parse(text, ModelConfig())


@pytest.mark.parametrize(
    ("text", "old", "code", "message"),
    [
        ("", {}, Code.INVALID_ARGUMENT,
         "ServerModelConfig type not supported by HandleReloadConfigRequest. "
         "Only ModelConfigList is currently supported"),
        ("model_config_list { config { name: 'a' base_path: '/m/a' model_platform: 'tensorflow' }"
         " config { name: 'a' base_path: '/m/b' model_platform: 'tensorflow' } }", {},
         Code.INVALID_ARGUMENT, "Illegal to list model a multiple times in config list"),
        ("model_config_list { config { name: 'a' base_path: 'rel/a' "
         "model_platform: 'tensorflow' } }", {}, Code.INVALID_ARGUMENT,
         "Expected model a to have an absolute path or URI; got base_path()=rel/a"),
        ("model_config_list { config { name: 'a' base_path: '/m/a' } }", {},
         Code.INVALID_ARGUMENT, "Illegal setting neither ModelServerConfig::model_type "
         "(deprecated) nor ModelServerConfig::model_platform."),
        ("model_config_list { config { name: 'a' base_path: '/m/a' model_type: TENSORFLOW "
         "model_platform: 'tensorflow' } }", {}, Code.INVALID_ARGUMENT,
         "Illegal setting both ModelServerConfig::model_type (deprecated) and "
         "ModelServerConfig::model_platform."),
        ("model_config_list { config { name: 'a' base_path: '/m/a' "
         "model_platform: 'onnx' } }", {}, Code.INVALID_ARGUMENT,
         "Model a requests unsupported platform onnx"),
        ("model_config_list { config { name: 'a' base_path: '/m/a' "
         "model_platform: 'tensorflow' } }", {"a": "onnx"}, Code.INVALID_ARGUMENT,
         "Illegal to change a model's platform. For model a platform was onnx and new "
         "platform requested is tensorflow"),
    ],
)
def test_invalid_configs_get_tf_servings_code_and_message(
    text: str, old: dict[str, str], code: Code, message: str
) -> None:
    with pytest.raises(ServingError) as err:
        validate_config(config(text), old, registry())
    assert (err.value.code, err.value.message) == (code, message)


def test_valid_config_maps_models_to_platforms_including_the_deprecated_model_type() -> None:
    text = ("model_config_list { config { name: 'a' base_path: '/m/a' model_type: TENSORFLOW }"
            " config { name: 'b' base_path: 'gs://bucket/b' model_platform: 'tensorflow' } }")
    assert validate_config(config(text), {}, registry()) == {"a": "tensorflow", "b": "tensorflow"}


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("", VersionPolicy("latest", num_versions=1)),
        ("model_version_policy { latest { num_versions: 3 } }",
         VersionPolicy("latest", num_versions=3)),
        ("model_version_policy { all {} }", VersionPolicy("all")),
        ("model_version_policy { specific { versions: 2 versions: 5 } }",
         VersionPolicy("specific", versions=(2, 5))),
    ],
)
def test_version_policy_defaults_to_the_latest_one(text: str, policy: VersionPolicy) -> None:
    assert version_policy(model(text)) == policy


@pytest.mark.parametrize(
    ("wanted", "current", "allow", "refused"),
    [
        ({"stable": 1}, {}, False, False),  # AVAILABLE: fine
        ({"stable": 3}, {}, False, True),  # not AVAILABLE
        ({"stable": 3}, {}, True, False),  # a new label, allowed by the flag
        ({"stable": 3}, {"stable": 3}, True, False),  # left where it is
        ({"stable": 3}, {"stable": 1}, True, True),  # moving needs AVAILABLE, flag or not
    ],
)
def test_labels_point_only_at_available_versions(
    wanted: dict[str, int], current: dict[str, int], allow: bool, refused: bool
) -> None:
    def check() -> None:
        check_labels("m", wanted, current, {1, 2}, allow)

    if not refused:
        check()
        return
    with pytest.raises(ServingError) as err:
        check()
    assert err.value.code == Code.FAILED_PRECONDITION
    assert err.value.message == ("Request to assign label to version 3 of model m, which is "
                                 "not currently available for inference")


@pytest.mark.parametrize(
    ("split", "known", "code", "fragment"),
    [
        (Split(), True, Code.INVALID_ARGUMENT, "Split has no model_name"),
        (Split(model_name="m"), False, Code.NOT_FOUND, "Model m is not configured"),
        (Split(model_name="m", canary_weight_bp=10001), True, Code.INVALID_ARGUMENT,
         "canary_weight_bp must be at most 10000, got 10001"),
        (Split(model_name="m", canary_label="beta"), True, Code.INVALID_ARGUMENT,
         "names label beta, which is not assigned"),
        (Split(model_name="m", shadow=Shadow(sample=1.5)), True, Code.INVALID_ARGUMENT,
         "Split of model m: shadow.sample must be in [0, 1], got 1.5"),
        (Split(model_name="m", shadow=Shadow(sample=float("nan"))), True,
         Code.INVALID_ARGUMENT, "shadow.sample must be in [0, 1], got nan"),
        (Split(model_name="m", shadow=Shadow(sample=0.1, tolerance=-1)), True,
         Code.INVALID_ARGUMENT, "shadow.tolerance must be a finite number >= 0, got -1.0"),
        (Split(model_name="m", shadow=Shadow(sample=0.1, tolerance=float("inf"))), True,
         Code.INVALID_ARGUMENT, "shadow.tolerance must be a finite number >= 0, got inf"),
    ],
)
def test_bad_splits_are_refused(split: Split, known: bool, code: Code, fragment: str) -> None:
    with pytest.raises(ServingError) as err:
        check_split(split, {"stable": 1, "canary": 2}, known)
    assert err.value.code == code and fragment in err.value.message


def test_a_split_with_default_labels_is_accepted_and_present() -> None:
    split = Split(model_name="m", canary_weight_bp=2500)
    check_split(split, {"stable": 1, "canary": 2}, True)
    assert split_labels_present(split, {"stable": 1, "canary": 2})
    assert not split_labels_present(split, {"stable": 1})


def test_source_changes_on_new_model_base_path_or_policy_only() -> None:
    a = model("name: 'a' base_path: '/m/a' model_platform: 'tensorflow'")
    assert source_changed(a, None)
    assert not source_changed(a, model("name: 'a' base_path: '/m/a' model_platform: "
                                       "'tensorflow' version_labels { key: 'stable' value: 1 }"))
    assert source_changed(a, model("name: 'a' base_path: '/m/b'"))
    assert source_changed(a, model("name: 'a' base_path: '/m/a' "
                                   "model_version_policy { all {} }"))
