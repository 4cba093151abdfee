"""The controller config file is validated like a spec: unknown keys are errors with
file:line:col and "did you mean"; valid files and flags still merge as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli.main import build_parser, main
from controller.cli.settings import load_settings
from controller.runtime.runner import ControllerSettings
from controller.spec.controller_config import ConfigFileError, read_controller_config

GOOD = """\
repo: /srv/specs.git
modelRoot: /models
targets:
  - {name: s0, grpc: "127.0.0.1:8500", metrics: "127.0.0.1:8501"}
  - "s1=127.0.0.1:8502"
pollInterval: 2s
"""


def settings(tmp_path: Path, text: str, *flags: str) -> ControllerSettings:
    path = tmp_path / "controller.yaml"
    path.write_text(text)
    args = build_parser().parse_args(["run", "--config", str(path), *flags])
    return load_settings(args)


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "controller.yaml"
    path.write_text(text)
    with pytest.raises(ConfigFileError) as caught:
        read_controller_config(str(path))
    return [f"{p.line}:{p.col}: {p.message}" for p in caught.value.problems]


def test_a_valid_file_gives_the_settings_and_flags_win(tmp_path: Path) -> None:
    loaded = settings(tmp_path, GOOD, "--poll-interval", "5s")
    assert loaded.repo == "/srv/specs.git" and loaded.poll_interval_s == 5.0
    assert [(t.name, t.grpc_address, t.metrics_url) for t in loaded.targets] == [
        ("s0", "127.0.0.1:8500", "127.0.0.1:8501"), ("s1", "127.0.0.1:8502", "")]
    assert settings(tmp_path, GOOD).poll_interval_s == 2.0


def test_misspelt_keys_are_errors_with_line_and_suggestion(tmp_path: Path) -> None:
    text = GOOD.replace("pollInterval: 2s", "pollInteval: 2s\nbrnach: main")
    assert problems(tmp_path, text) == [
        "6:1: unknown field 'pollInteval'; did you mean 'pollInterval'?",
        "7:1: unknown field 'brnach'; did you mean 'branch'?",
    ]


def test_snake_case_and_nested_typos_point_at_the_key(tmp_path: Path) -> None:
    text = GOOD.replace('grpc: "127.0.0.1:8500"', 'grcp: "127.0.0.1:8500"').replace(
        "modelRoot", "model_root")
    assert problems(tmp_path, text) == [
        "2:1: unknown field 'model_root'; did you mean 'modelRoot'?",
        "4:5: missing required field 'grpc' in targets[0]",
        "4:16: unknown field 'grcp'; did you mean 'grpc'?",
    ]


def test_bad_values_and_shapes_are_named(tmp_path: Path) -> None:
    assert problems(tmp_path, GOOD.replace("2s", "2")) == [
        "6:15: pollInterval: durations are strings with a unit, e.g. '30s' or '2m'; got 2"]
    assert problems(tmp_path, "- repo\n") == ["1:1: expected a mapping of settings"]
    assert problems(tmp_path, "repo: [\n") [0].startswith("2:1: YAML syntax error")


def test_the_cli_reports_the_file_and_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text(GOOD + "brnach: main\n")
    assert main(["plan", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:7:1: error: unknown field 'brnach'; did you mean 'branch'?" in err
