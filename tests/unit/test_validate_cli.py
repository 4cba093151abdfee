"""`rollouts validate` end to end: exit codes, formats, directories, model dirs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from controller.cli.main import main
from controller.cli.validate import validate_paths

REPO = Path(__file__).resolve().parents[2]

STEADY = """\
apiVersion: rollouts/v1
kind: ModelRollout
metadata: {name: steady}
spec:
  model: {name: steady_model, basePath: steady}
  stable: 1
"""
CANARY = """\
apiVersion: rollouts/v1
kind: ModelRollout
metadata: {name: canary}
spec:
  model: {name: canary_model, basePath: nested/canary}
  stable: 1
  canary:
    version: 2
    steps: [{weight: 10, hold: 1m}]
  keep: [3]
  labels: {previous: 3}
"""
BROKEN = STEADY.replace("  stable: 1", "  stabel: 1")


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _saved_model(root: Path, base: str, version: int) -> None:
    version_dir = root / base / str(version)
    version_dir.mkdir(parents=True)
    (version_dir / "saved_model.pb").write_bytes(b"not a real graph; only its presence matters")


def test_valid_directory_exits_0_with_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, "a.yaml", STEADY)
    _write(tmp_path, "sub/b.yml", CANARY)
    _write(tmp_path, "notes.txt", "not a spec: ignored")
    assert main(["validate", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == "rollouts validate: 2 files valid (2 rollouts)"


def test_invalid_spec_exits_1_with_path_line_col(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _write(tmp_path, "bad.yaml", BROKEN)
    _write(tmp_path, "good.yaml", CANARY)
    assert main(["validate", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{bad}:4:1: error: missing required field 'stable' in spec",
        f"{bad}:6:3: error: unknown field 'stabel'; did you mean 'stable'?",
    ]
    assert "2 problems in 1 file (2 files checked)" in err


def test_several_documents_in_one_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, "all.yaml", STEADY + "---\n" + CANARY)
    assert main(["validate", str(tmp_path / "all.yaml")]) == 0
    assert "1 file valid (2 rollouts)" in capsys.readouterr().err


def test_duplicate_names_across_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, "a.yaml", STEADY)
    second = _write(tmp_path, "b.yaml", STEADY.replace("steady_model", "other"))
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out == (
        f"{second}:3:18: error: metadata.name 'steady' is already used at "
        f"{tmp_path / 'a.yaml'}:3:18\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "does/not/exist"],
        ["validate", "--format", "xml", "."],
        ["validate", "--no-such-flag"],
        ["nonsense"],
        [],
    ],
    ids=["missing-path", "bad-format", "bad-flag", "bad-command", "no-command"],
)
def test_usage_and_missing_paths_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err


def test_unreadable_and_empty_inputs_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["validate", str(binary), str(empty)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{binary}: error: not UTF-8 text: invalid start byte",
        f"{empty}: error: no *.yaml or *.yml files found",
    ]


def test_io_error_wins_over_invalid_spec(tmp_path: Path) -> None:
    _write(tmp_path, "bad.yaml", BROKEN)
    assert main(["validate", str(tmp_path), str(tmp_path / "missing.yaml")]) == 2


def test_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path, "bad.yaml", BROKEN)
    assert main(["validate", "--format", "json", str(bad)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert (report["files"], report["rollouts"]) == (1, 0)
    assert report["problems"][1] == {
        "path": str(bad),
        "line": 6,
        "col": 3,
        "kind": "spec",
        "message": "unknown field 'stabel'; did you mean 'stable'?",
    }


def test_json_format_when_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path, "good.yaml", STEADY)
    assert main(["validate", "--format=json", str(good)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "valid": True,
        "files": 1,
        "rollouts": 1,
        "problems": [],
    }


def test_github_format_escapes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path, "a,b.yaml", STEADY.replace("{name: steady}", "{name: '50%'}"))
    assert main(["validate", "--format", "github", str(bad)]) == 1
    escaped_path = str(bad).replace(":", "%3A").replace(",", "%2C")
    assert capsys.readouterr().out == (
        f"::error file={escaped_path},line=3,col=18::metadata.name: metadata.name '50%25' "
        "is not valid: use lowercase letters, digits and '-' (DNS label), at most 63 characters\n"
    )


def test_model_root_all_present(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    specs = tmp_path / "specs"
    _write(specs, "c.yaml", CANARY)
    root = tmp_path / "models"
    for version in (1, 2, 3):
        _saved_model(root, "nested/canary", version)
    assert main(["validate", "--model-root", str(root), str(specs)]) == 0


def test_model_root_reports_each_missing_version(tmp_path: Path) -> None:
    spec = _write(tmp_path / "specs", "c.yaml", CANARY)
    root = tmp_path / "models"
    _saved_model(root, "nested/canary", 1)
    (root / "nested/canary/2").mkdir()  # exists, but no SavedModel in it
    problems = validate_paths([spec], model_root=root)
    assert [(p.line, p.col, p.message) for p in problems] == [
        (8, 14, f"version 2: {root / 'nested/canary/2'} holds no SavedModel (saved_model.pb)"),
        (10, 10, f"version 3: {root / 'nested/canary/3'} does not exist"),
        (11, 22, f"version 3: {root / 'nested/canary/3'} does not exist"),
    ]


def test_model_root_must_exist(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", STEADY)
    assert main(["validate", "--model-root", str(tmp_path / "nope"), str(tmp_path)]) == 2


def test_default_path_is_rollouts_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["validate"]) == 2  # no rollouts/ here
    assert "rollouts/: error: no such file or directory" in capsys.readouterr().out
    _write(tmp_path / "rollouts", "a.yaml", STEADY)
    assert main(["validate"]) == 0


def test_repository_examples_validate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(REPO / "rollouts")]) == 0


def test_serve_forwards_arguments_verbatim(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        received.append(argv)
        return 7

    fake = types.ModuleType("serving.cli")
    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "serving.cli", fake)
    argv = ["--port=8500", "--rest_api_port", "8501", "--model_config_file=/x.conf", "--help"]
    assert main(["serve", *argv]) == 7
    assert received == [argv]


def test_installed_script_end_to_end(tmp_path: Path) -> None:
    bad = _write(tmp_path, "bad.yaml", BROKEN)
    script = Path(sys.executable).parent / "rollouts"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [str(script), "validate", str(bad)], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 1
    assert f"{bad}:6:3: error: unknown field 'stabel'" in done.stdout
    assert "2 problems in 1 file" in done.stderr
    module = subprocess.run(
        [sys.executable, "-m", "controller", "validate", str(REPO / "rollouts")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert module.returncode == 0, module.stdout + module.stderr
