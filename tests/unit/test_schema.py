"""The JSON Schema: up to date, and agreeing with pydantic on examples."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from controller.cli.main import main, schema_text
from controller.spec.load import load_texts

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "schemas" / "rollout.schema.json"


def _examples() -> list[tuple[str, str]]:
    """Every spec in rollouts/ and every ModelRollout YAML block of the README."""
    found = [
        (str(p.relative_to(REPO)), p.read_text())
        for p in sorted((REPO / "rollouts").glob("*.y*ml"))
    ]
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```ya?ml\n(.*?)```", readme, flags=re.S)
    found += [(f"README.md#{i}", b) for i, b in enumerate(blocks) if "kind: ModelRollout" in b]
    return found


EXAMPLES = _examples()


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_file_is_up_to_date() -> None:
    assert SCHEMA_FILE.read_text() == schema_text(), (
        "run: rollouts schema > schemas/rollout.schema.json"
    )


def test_schema_command_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == SCHEMA_FILE.read_text()


def test_examples_cover_the_three_kinds() -> None:
    specs = [doc.spec.spec for doc in load_texts(EXAMPLES).documents]
    assert any(s.canary is None for s in specs)
    assert any(s.canary is not None and s.canary.steps for s in specs)
    assert any(s.transition == "resource" for s in specs)


@pytest.mark.parametrize(("name", "text"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_example_is_valid_for_pydantic_and_json_schema(name: str, text: str) -> None:
    assert text.startswith("# yaml-language-server: $schema=../schemas/rollout.schema.json\n") or (
        name.startswith("README")
    )
    result = load_texts([(name, text)])
    assert result.problems == []
    documents = [d for d in YAML(typ="safe", pure=True).load_all(text) if d is not None]
    assert len(documents) == len(result.documents) >= 1
    validator = _validator()
    for document in documents:
        assert list(validator.iter_errors(document)) == []


@pytest.mark.parametrize(
    ("change", "value"),
    [
        (("spec", "stable"), 0),
        (("spec", "stable"), "1"),
        (("spec", "stabel"), 1),
        (("spec", "transition"), "fast"),
        (("spec", "canary"), {"version": 2, "steps": [{"weight": 101}]}),
        (("spec", "canary"), {"version": 2, "steps": [{"weight": 10, "hold": "2d"}]}),
        (("spec", "labels"), {"9lives": 1}),
        (("kind",), "Rollout"),
    ],
)
def test_schema_rejects_what_pydantic_rejects(change: tuple[str, ...], value: object) -> None:
    [(name, text)] = [e for e in EXAMPLES if e[0].endswith("half-plus-two.yaml")]
    document = YAML(typ="safe", pure=True).load(text)
    target = document
    for key in change[:-1]:
        target = target[key]
    target[change[-1]] = value
    assert list(_validator().iter_errors(document)) != []
    dumped = json.dumps(document)  # JSON is YAML: reuse the positional loader
    assert load_texts([("x.yaml", dumped)]).problems != []


def test_schema_rejects_reserved_labels_in_any_case() -> None:
    [(name, text)] = [e for e in EXAMPLES if e[0].endswith("half-plus-two.yaml")]
    document = YAML(typ="safe", pure=True).load(text)
    for label in ("stable", "Canary", "CANARY"):
        document["spec"]["labels"] = {label: 1}
        assert list(_validator().iter_errors(document)) != [], label
    document["spec"]["labels"] = {"previous": 1}
    assert list(_validator().iter_errors(document)) == []
