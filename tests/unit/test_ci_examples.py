"""CI integration artifacts: the GitHub Actions example, the pre-commit hook and docs/ci.md.

Every `rollouts validate` command line they contain must be accepted by the real CLI
parser and pass on this repository's specs; docs/ci.md must show the workflow file and
the hook as they are, and its example error output must be what validate prints.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.cli.main import build_parser, main

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "examples" / "github-actions" / "validate.yml"
HOOKS = REPO / ".pre-commit-hooks.yaml"
CI_DOC = REPO / "docs" / "ci.md"
SCHEMA_LINE = "# yaml-language-server: $schema=../schemas/rollout.schema.json"


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def validate_argv(command: str) -> list[str]:
    """The arguments after `rollouts` of a shell line that runs `rollouts validate`."""
    argv = shlex.split(command)
    assert argv[:2] == ["rollouts", "validate"], command
    return argv[1:]


def workflow() -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return document


def workflow_steps() -> list[dict[str, Any]]:
    jobs = workflow()["jobs"]
    assert list(jobs) == ["validate"]
    steps: list[dict[str, Any]] = jobs["validate"]["steps"]
    return steps


def hook() -> dict[str, Any]:
    hooks = yaml.safe_load(HOOKS.read_text())
    assert isinstance(hooks, list) and len(hooks) == 1
    result: dict[str, Any] = hooks[0]
    return result


# --- GitHub Actions ---------------------------------------------------------------------


def test_workflow_checks_out_sets_up_python_installs_and_validates() -> None:
    document = workflow()
    # PyYAML reads the bare key `on` as True (YAML 1.1); GitHub reads it as "on".
    triggers: dict[str, Any] = document.get("on", document.get(True)) or {}
    assert set(triggers) == {"pull_request", "push"}
    steps = workflow_steps()
    uses = [step.get("uses", "") for step in steps]
    assert uses[0].startswith("actions/checkout@")
    assert uses[1].startswith("actions/setup-python@")
    # Quoted: an unquoted 3.10-style version would be read as a float.
    assert steps[1]["with"]["python-version"] == "3.11"
    runs = [step["run"] for step in steps if "run" in step]
    assert len(runs) == 2
    install = shlex.split(runs[0])
    assert install[:2] == ["pip", "install"] and "model-rollouts" in install[2]


def test_workflow_validate_line_parses_with_the_real_cli() -> None:
    line = [step["run"] for step in workflow_steps() if "run" in step][-1]
    args = build_parser(extensions=False).parse_args(validate_argv(line))
    assert args.command == "validate"
    assert args.format == "github"
    assert args.paths == ["rollouts/"]


def test_the_workflow_command_passes_on_this_repository(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    assert main(["validate", "--format", "github", "rollouts/"]) == 0
    out, err = capsys.readouterr()
    assert "::error" not in out
    assert "valid" in err


# --- pre-commit ---------------------------------------------------------------------------


def test_pre_commit_hook_definition() -> None:
    entry = hook()
    assert entry["id"] == "rollouts-validate"
    assert entry["entry"] == "rollouts validate"
    assert entry["language"] == "python"
    assert entry["pass_filenames"] is True
    files = re.compile(entry["files"])
    assert files.search("rollouts/half-plus-two.yaml")
    assert files.search("rollouts/team/model.yml")
    assert not files.search("other/rollouts/x.yaml")
    assert not files.search("rollouts/README.md")


def test_pre_commit_runs_validate_on_the_matching_files(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What pre-commit does: entry + the matching staged paths, from the repo root."""
    entry = hook()
    monkeypatch.chdir(REPO)
    files = re.compile(entry["files"])
    candidates = (str(p.relative_to(REPO)) for p in (REPO / "rollouts").rglob("*"))
    staged = sorted(path for path in candidates if files.search(path))
    assert "rollouts/half-plus-two.yaml" in staged
    argv = validate_argv(entry["entry"]) + staged
    assert build_parser(extensions=False).parse_args(argv).paths == staged
    assert main(argv) == 0
    capsys.readouterr()


def test_pre_commit_hook_fails_on_a_bad_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "rollouts" / "half-plus-two.yaml"
    bad.parent.mkdir()
    bad.write_text(
        (REPO / "rollouts" / "half-plus-two.yaml").read_text().replace("stable: 1", "stable: 0")
    )
    monkeypatch.chdir(tmp_path)
    assert main(validate_argv(hook()["entry"]) + ["rollouts/half-plus-two.yaml"]) == 1
    assert "rollouts/half-plus-two.yaml:" in capsys.readouterr().out


# --- docs/ci.md ----------------------------------------------------------------------------


def test_doc_shows_the_workflow_file_verbatim() -> None:
    assert WORKFLOW.read_text() in fenced_blocks(CI_DOC.read_text(), "yaml")


def test_doc_pre_commit_snippets_name_the_hook() -> None:
    configs = [
        yaml.safe_load(block)
        for block in fenced_blocks(CI_DOC.read_text(), "yaml")
        if block.startswith("repos:")
    ]
    assert len(configs) == 2
    remote, local = (config["repos"][0] for config in configs)
    assert remote["hooks"] == [{"id": hook()["id"]}]
    assert remote["rev"].startswith("v")
    local_hook = local["hooks"][0]
    assert local_hook["id"] == hook()["id"]
    assert local_hook["entry"] == hook()["entry"]
    assert local_hook["files"] == hook()["files"]


def test_doc_error_examples_are_what_validate_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = CI_DOC.read_text()
    (github_line,) = [b.strip() for b in fenced_blocks(doc, "text")]
    spec = tmp_path / "rollouts" / "half-plus-two.yaml"
    spec.parent.mkdir()
    spec.write_text(
        (REPO / "rollouts" / "half-plus-two.yaml").read_text().replace("stable: 1", "stable: 0")
    )
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "--format", "github", "rollouts/"]) == 1
    assert capsys.readouterr().out.strip() == github_line
    assert main(["validate", "rollouts/"]) == 1
    text_line = capsys.readouterr().out.strip()
    assert f"`{text_line}`" in doc


def test_doc_validate_commands_parse() -> None:
    commands = re.findall(r"`(rollouts validate [^`]*)`", CI_DOC.read_text())
    assert len(commands) >= 1
    parser = build_parser(extensions=False)
    for command in commands:
        parser.parse_args(validate_argv(command))


def test_doc_schema_line_is_the_one_the_example_specs_use() -> None:
    doc = CI_DOC.read_text()
    assert [b.strip() for b in fenced_blocks(doc, "yaml") if "yaml-language-server" in b] == [
        SCHEMA_LINE
    ]
    specs = sorted((REPO / "rollouts").glob("*.yaml"))
    assert specs
    for spec in specs:
        assert spec.read_text().splitlines()[0] == SCHEMA_LINE
        schema = spec.parent / SCHEMA_LINE.split("$schema=", 1)[1]
        assert schema.is_file()
    (command,) = [b.strip() for b in fenced_blocks(doc, "sh")]
    argv = shlex.split(command)
    assert argv[:2] == ["rollouts", "schema"] and argv[2:] == [">", "schemas/rollout.schema.json"]
    assert build_parser(extensions=False).parse_args(argv[1:2]).command == "schema"


def test_hook_and_workflow_files_are_plain_yaml() -> None:
    # No tabs, no trailing whitespace: both are copied into other repositories as is.
    for path in (WORKFLOW, HOOKS):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert "\t" not in line and line == line.rstrip(), f"{path}:{number}"
