"""--platform_config_file: a PlatformConfigMap's tensorflow platform, parsed."""

from __future__ import annotations

import pytest
from tensorflow.core.protobuf import config_pb2

from serving.config.platform import PlatformConfigError, PlatformSettings, parse_platform_config

ADAPTER = "[type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig]"


def platform_text(legacy: str, platform: str = "tensorflow", adapter: str = ADAPTER) -> str:
    return (f'platform_configs {{\n  key: "{platform}"\n  value {{\n    source_adapter_config {{\n'
            f"      {adapter} {{\n        legacy_config {{\n{legacy}\n        }}\n      }}\n"
            "    }\n  }\n}\n")


def parse(text: str) -> PlatformSettings:
    return parse_platform_config("/p.pbtxt", text, config_pb2.DESCRIPTOR)


def test_session_batching_tags_and_warmup_come_from_the_file() -> None:
    settings = parse(platform_text(
        "session_config { intra_op_parallelism_threads: 3 allow_soft_placement: true }\n"
        "batching_parameters { max_batch_size { value: 16 } allowed_batch_sizes: [8, 16] }\n"
        'saved_model_tags: "serve"\nsaved_model_tags: "tpu"\n'
        "enable_model_warmup: true\nremove_unused_fields_from_bundle_metagraph: true\n"
        "model_warmup_options { num_request_iterations { value: 4 } }"))
    assert settings.saved_model_tags == frozenset({"serve", "tpu"})
    assert settings.enable_model_warmup is True
    assert settings.warmup_iterations == 4
    assert settings.remove_unused_meta_graph_fields is True
    batching = settings.batching
    assert batching is not None
    assert (batching.max_batch_size, batching.allowed_batch_sizes) == (16, (8, 16))
    assert settings.session_config is not None
    session = config_pb2.ConfigProto.FromString(settings.session_config)
    assert session.intra_op_parallelism_threads == 3 and session.allow_soft_placement


def test_an_empty_legacy_config_means_serve_no_batching_no_warmup() -> None:
    settings = parse(platform_text(""))
    assert settings.saved_model_tags == frozenset({"serve"})
    assert settings.batching is None
    assert settings.session_config is None
    # proto3: warmup is off unless the file turns it on, as in TF Serving.
    assert settings.enable_model_warmup is False
    assert settings.warmup_iterations == 1
    assert settings.remove_unused_meta_graph_fields is False


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (platform_text("no_such_field: 1"), r"/p\.pbtxt:7:\d+: .*no_such_field"),
        (platform_text("prefer_tflite_model: true\nnum_tflite_interpreters: 2"),
         "num_tflite_interpreters"),
        (platform_text("", platform="tflite"), "platform 'tflite' is not supported"),
        (platform_text("", adapter="[type.googleapis.com/tensorflow.serving.Nope]"),
         "tensorflow.serving.Nope"),
        ("", "no platform_configs entry for 'tensorflow'"),
        (platform_text("batching_parameters { max_batch_size { value: 0 } }"),
         r"/p\.pbtxt \(legacy_config\.batching_parameters\):1: max_batch_size must be positive"),
    ],
)
def test_errors_name_the_file_and_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(PlatformConfigError, match=fragment):
        parse(text)


def test_per_model_batching_params_need_batching_parameters() -> None:
    on = "enable_per_model_batching_params: true\n"
    assert parse(platform_text(on + "batching_parameters { }")).per_model_batching is True
    # TF Serving reads the field only when batching_parameters is set.
    assert parse(platform_text(on)).per_model_batching is False
    assert parse(platform_text("batching_parameters { }")).per_model_batching is False
