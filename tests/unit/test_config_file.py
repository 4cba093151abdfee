"""Config files: text-format parsing with file:line errors; the single-model config."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.config.files import (
    ConfigFileError,
    MonitoringSettings,
    read_model_server_config,
    read_monitoring_config,
    single_model_config,
)


def test_reads_a_model_config_list(tmp_path: Path) -> None:
    path = tmp_path / "models.config"
    path.write_text(
        'model_config_list {\n  config {\n    name: "m"\n    base_path: "/models/m"\n'
        '    model_platform: "tensorflow"\n    version_labels { key: "stable" value: 2 }\n'
        "    model_version_policy { specific { versions: 2 } }\n  }\n}\n"
    )
    (model,) = read_model_server_config(str(path)).model_config_list.config
    assert (model.name, model.base_path, dict(model.version_labels)) == (
        "m", "/models/m", {"stable": 2}
    )
    assert list(model.model_version_policy.specific.versions) == [2]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('model_config_list {\n  config {\n    nme: "m"\n  }\n}\n', 3),
        ('model_config_list {\n  config {\n    name: 5 5\n', 3),
    ],
)
def test_parse_error_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "bad.config"
    path.write_text(text)
    with pytest.raises(ConfigFileError) as err:
        read_model_server_config(str(path))
    assert str(err.value).startswith(f"{path}:{line}:")
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in str(err.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read config file"):
        read_model_server_config(str(tmp_path / "absent"))


def test_single_model_config() -> None:
    (model,) = single_model_config("default", "/m").model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == ("default", "/m", "tensorflow")


def test_monitoring_config(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.config"
    path.write_text('prometheus_config {\n  enable: true\n  path: "/metrics"\n}\n')
    assert read_monitoring_config(str(path)) == MonitoringSettings(enable=True, path="/metrics")
    path.write_text("prometheus_config { enable: true }\n")
    assert read_monitoring_config(str(path)).path == "/monitoring/prometheus/metrics"
    path.write_text("prometheus_config { enabled: true }\n")
    with pytest.raises(ConfigFileError, match=f"{path}:1:"):
        read_monitoring_config(str(path))
