"""docs/spec-reference.md stays in step with the JSON Schema: every field, its default."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas/rollout.schema.json").read_text())
DOC = (ROOT / "docs/spec-reference.md").read_text()


def _rows() -> dict[str, str]:
    """One table row per field: | `path` | type | default | rules | (cells may hold `\\|`)."""
    rows = {}
    for line in DOC.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) >= 3 and re.fullmatch(r"`[^`]+`", cells[0]):
            rows[cells[0].strip("`")] = cells[2]
    return rows


ROWS = _rows()


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return dict(SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[-1]])
    for option in node.get("anyOf", []):
        if option.get("type") != "null":
            return _resolve(option)
    return node


def fields(node: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted path, schema) of every property, lists as `name[]`, like the doc."""
    for name, raw in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        yield path, raw
        child = _resolve(raw)
        if child.get("type") == "array" and "items" in child:
            item = _resolve(child["items"])
            if "properties" in item:
                yield from fields(item, f"{path}[].")
        elif "properties" in child:
            yield from fields(child, f"{path}.")


def row_for(path: str) -> str | None:
    if path in ROWS:
        return ROWS[path]
    # The doc abbreviates the deep check fields as `...checks.<name>`.
    if ".checks." in path:
        return ROWS.get("..." + path[path.index("checks."):])
    return None


def test_every_schema_field_is_documented() -> None:
    # A plain mapping (metadata, spec.model, ...) is documented through its
    # fields; everything else, lists of objects included, has a row.
    missing = [
        path
        for path, raw in fields(SCHEMA)
        if row_for(path) is None and "properties" not in _resolve(raw)
        and ".match[]." not in path  # documented in the `split.match` row
    ]
    assert not missing, f"fields missing from docs/spec-reference.md: {missing}"


def test_documented_defaults_match_the_schema() -> None:
    for path, raw in fields(SCHEMA):
        default = raw.get("default")
        if default is None or isinstance(default, (dict, list)):
            continue
        cell = row_for(path)
        assert cell is not None
        shown = json.dumps(default) if not isinstance(default, str) else default
        assert shown.lower() in cell.lower(), (path, default, cell)


def test_no_documented_field_is_unknown_to_the_schema() -> None:
    known = {path for path, _ in fields(SCHEMA)}
    for documented in ROWS:
        if documented.startswith("..."):
            assert any(k.endswith(documented[3:]) for k in known), documented
        else:
            assert documented in known, documented


def _paths(value: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths of a parsed YAML document, lists of objects as `name[]`."""
    if isinstance(value, dict):
        for key, child in value.items():
            path = f"{prefix}{key}"
            yield path
            if isinstance(child, list) and child and isinstance(child[0], dict):
                for item in child:
                    yield from _paths(item, f"{path}[].")
            else:
                yield from _paths(child, f"{path}.")


def test_the_full_example_is_valid_and_sets_every_field() -> None:
    from ruamel.yaml import YAML

    from controller.spec.load import load_texts

    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", DOC, flags=re.S)
              if "kind: ModelRollout" in b]
    assert len(blocks) == 1
    result = load_texts([("docs/spec-reference.md", blocks[0])])
    assert result.problems == []
    written = set(_paths(YAML(typ="safe", pure=True).load(blocks[0])))
    # Label and match entries are data (user-chosen keys), not schema fields.
    known = {path for path, _ in fields(SCHEMA)}
    assert known - written == set(), "fields the full example does not show"
