"""Edits of a rollout spec file that keep every comment and the formatting (pure).

The controller writes promotion and canary-removal commits into a person's repository,
so the diff must show only the lines that change: a reviewer reading
`git show` should see `stable: 2` and the canary block gone, nothing else.

How: ruamel.yaml's round-trip parser locates the nodes (line and column of each key
and value, stream-wide across the documents of a file), and the edit is made on the
text itself: one scalar token replaced, one block of lines removed or inserted. The
result is parsed again and must equal the intended data; if it does not (unusual
layouts such as a flow-style `spec: {...}`), the edit falls back to a full ruamel
round-trip dump of the changed data, which keeps comments but may reformat, and is
checked the same way.

A file may hold several documents; edits touch the one whose `spec.model.name` matches.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

__all__ = [
    "YamlEditError",
    "canary_version",
    "promote",
    "remove_canary",
    "set_canary",
    "set_canary_flag",
    "stable_version",
]


class YamlEditError(ValueError):
    """The edit cannot be made: unparsable text, no such model, or nothing to promote."""


# --- reading ---------------------------------------------------------------------------


def _load_docs(text: str) -> list[Any]:
    try:
        return list(YAML(typ="rt").load_all(text))
    except YAMLError as exc:
        raise YamlEditError(f"not valid YAML: {exc}") from exc


def _spec_of(docs: list[Any], model_name: str) -> tuple[int, CommentedMap]:
    found: list[tuple[int, CommentedMap]] = []
    for index, doc in enumerate(docs):
        spec = doc.get("spec") if isinstance(doc, CommentedMap) else None
        model = spec.get("model") if isinstance(spec, CommentedMap) else None
        if (
            isinstance(spec, CommentedMap)
            and isinstance(model, CommentedMap)
            and model.get("name") == model_name
        ):
            found.append((index, spec))
    if not found:
        raise YamlEditError(f"no document with spec.model.name == {model_name!r}")
    if len(found) > 1:
        raise YamlEditError(f"{len(found)} documents have spec.model.name == {model_name!r}")
    return found[0]


def _version_field(text: str, model_name: str, *keys: str) -> int | None:
    _, spec = _spec_of(_load_docs(text), model_name)
    node: Any = spec
    for key in keys:
        if not isinstance(node, CommentedMap) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, int) and not isinstance(node, bool) else None


def canary_version(text: str, model_name: str) -> int | None:
    """`spec.canary.version` of the model's document, or None when there is no canary."""
    return _version_field(text, model_name, "canary", "version")


def canary_run(text: str, model_name: str) -> tuple[int, int] | None:
    """(`spec.canary.version`, `spec.canary.attempt`, default 1) in one parse, or None
    without a canary: which analysis run of which version the file asks for."""
    _, spec = _spec_of(_load_docs(text), model_name)
    canary = spec.get("canary")
    version = canary.get("version") if isinstance(canary, CommentedMap) else None
    if not isinstance(version, int) or isinstance(version, bool):
        return None
    attempt = canary.get("attempt", 1)
    return version, attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else 1


def stable_version(text: str, model_name: str) -> int | None:
    """`spec.stable` of the model's document, or None when unset."""
    return _version_field(text, model_name, "stable")


def _plain(node: Any) -> Any:
    """Round-trip containers as plain dicts and lists, for comparing data, not layout."""
    if isinstance(node, CommentedMap):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(value) for value in node]
    return node


# --- text primitives -------------------------------------------------------------------


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block_end(lines: list[str], key_line: int, key_col: int) -> int:
    """Index just past the entry whose key sits at (key_line, key_col).

    The entry runs on while lines are blank or indented deeper than its key (comments
    included: a comment indented under `canary:` belongs to it). Trailing blank lines
    are not part of it, so the spacing before the next key survives a removal.
    """
    end = key_line + 1
    last_content = key_line + 1
    while end < len(lines):
        line = lines[end]
        if line.strip():
            if _indent(line) <= key_col:
                break
            last_content = end + 1
        end += 1
    return last_content


_PLAIN_SCALAR_END = re.compile(r"\s+#|\s*$")


def _replace_scalar(line: str, col: int, new_value: str) -> str:
    """`line` with the scalar token starting at `col` replaced; comments after it kept."""
    rest = line[col:]
    if rest[:1] in ("'", '"'):
        quote = rest[0]
        index = 1
        while index < len(rest):
            if rest[index] == "\\" and quote == '"':
                index += 2
                continue
            if rest[index] == quote:
                if quote == "'" and rest[index + 1 : index + 2] == "'":
                    index += 2  # '' is an escaped quote inside a single-quoted scalar
                    continue
                break
            index += 1
        end = index + 1
    else:
        match = _PLAIN_SCALAR_END.search(rest.rstrip("\r\n"))
        end = match.start() if match else len(rest.rstrip("\r\n"))
    return line[:col] + new_value + rest[end:]


def _ensure_newline(lines: list[str], index: int) -> None:
    if 0 <= index < len(lines) and not lines[index].endswith("\n"):
        lines[index] += "\n"


# --- the edit driver -------------------------------------------------------------------

# A text edit gets the model's spec node and the file's lines, and edits the lines.
_TextEdit = Callable[[CommentedMap, list[str]], None]
# A data edit changes the spec mapping in place (used for the expected result and the
# round-trip fallback).
_DataEdit = Callable[[CommentedMap], None]


def _edit(text: str, model_name: str, text_edit: _TextEdit, data_edit: _DataEdit) -> str:
    docs = _load_docs(text)
    index, spec = _spec_of(docs, model_name)
    expected_docs = [_plain(doc) for doc in docs]
    expected_spec = _load_docs(text)[index]["spec"]
    data_edit(expected_spec)
    expected_docs[index]["spec"] = _plain(expected_spec)

    if not spec.fa.flow_style():
        lines = text.splitlines(keepends=True)
        text_edit(spec, lines)
        candidate = "".join(lines)
        if _data_of(candidate) == expected_docs:
            return candidate
    candidate = _round_trip(docs, index, data_edit)
    if _data_of(candidate) != expected_docs:
        raise YamlEditError(f"could not edit {model_name!r} without changing other data")
    return candidate


def _data_of(text: str) -> list[Any] | None:
    try:
        return [_plain(doc) for doc in _load_docs(text)]
    except YamlEditError:
        return None


def _round_trip(docs: list[Any], index: int, data_edit: _DataEdit) -> str:
    data_edit(docs[index]["spec"])
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line that a person wrote on one line
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    yaml.dump_all(docs, out)
    return out.getvalue()


def _remove_block(spec: CommentedMap, key: str, lines: list[str]) -> int:
    """Remove `key`'s entry from the lines; returns the line index where it started."""
    line, col = spec.lc.key(key)
    del lines[line : _block_end(lines, line, col)]
    return int(line)


def _child_col(spec: CommentedMap) -> int:
    return int(spec.lc.col)


# --- public edits ----------------------------------------------------------------------


def promote(text: str, model_name: str) -> str:
    """Set `spec.stable` to the canary's version and remove `spec.canary`.

    Raises YamlEditError when the model's document has no canary version to promote.
    """
    version = canary_version(text, model_name)
    if version is None:
        raise YamlEditError(f"{model_name!r} has no canary.version to promote")

    def text_edit(spec: CommentedMap, lines: list[str]) -> None:
        canary_line, _ = spec.lc.key("canary")
        has_scalar_stable = "stable" in spec and not isinstance(
            spec["stable"], CommentedMap | CommentedSeq
        )
        if has_scalar_stable:
            stable_line, stable_col = spec.lc.value("stable")
        # Bottom-up, so the earlier edit's line numbers stay valid.
        if has_scalar_stable and stable_line > canary_line:
            lines[stable_line] = _replace_scalar(lines[stable_line], stable_col, str(version))
        start = _remove_block(spec, "canary", lines)
        if has_scalar_stable and stable_line < canary_line:
            lines[stable_line] = _replace_scalar(lines[stable_line], stable_col, str(version))
        elif not has_scalar_stable:
            _ensure_newline(lines, start - 1)
            lines.insert(start, " " * _child_col(spec) + f"stable: {version}\n")

    def data_edit(spec: CommentedMap) -> None:
        if "stable" in spec:
            spec["stable"] = version
            del spec["canary"]
        else:
            position = list(spec.keys()).index("canary")
            del spec["canary"]
            spec.insert(position, "stable", version)

    return _edit(text, model_name, text_edit, data_edit)


def remove_canary(text: str, model_name: str) -> str:
    """Remove `spec.canary` from the model's document; the text is unchanged if it has none."""
    _, spec = _spec_of(_load_docs(text), model_name)
    if "canary" not in spec:
        return text

    def text_edit(spec: CommentedMap, lines: list[str]) -> None:
        _remove_block(spec, "canary", lines)

    def data_edit(spec: CommentedMap) -> None:
        del spec["canary"]

    return _edit(text, model_name, text_edit, data_edit)


def set_canary(text: str, model_name: str, version: int) -> str:
    """Set `spec.canary.version`, adding `canary: {version: N}` after `stable` if absent.

    For tests and the demo: a person's pull request that starts a canary.
    """

    def text_edit(spec: CommentedMap, lines: list[str]) -> None:
        existing = spec.get("canary")
        if isinstance(existing, CommentedMap) and "version" in existing:
            line, col = existing.lc.value("version")
            lines[line] = _replace_scalar(lines[line], col, str(version))
            return
        if existing is not None:
            return  # an odd canary layout: leave it to the round-trip fallback
        anchor = "stable" if "stable" in spec else list(spec.keys())[-1]
        line, col = spec.lc.key(anchor)
        at = _block_end(lines, line, col)
        _ensure_newline(lines, at - 1)
        child = " " * _child_step(spec)
        lines[at:at] = [" " * col + "canary:\n", " " * col + child + f"version: {version}\n"]

    def data_edit(spec: CommentedMap) -> None:
        existing = spec.get("canary")
        if isinstance(existing, CommentedMap):
            existing["version"] = version
        else:
            keys = list(spec.keys())
            position = keys.index("stable") + 1 if "stable" in spec else len(keys)
            spec.insert(position, "canary", CommentedMap([("version", version)]))

    return _edit(text, model_name, text_edit, data_edit)


def set_canary_flag(text: str, model_name: str, key: str, value: bool | int) -> str:
    """Set a boolean or integer of the canary block (`retry`, `paused`, `attempt`),
    added after `version` if absent.

    Raises YamlEditError when the model's document has no canary block.
    """
    _, found = _spec_of(_load_docs(text), model_name)
    if not isinstance(found.get("canary"), CommentedMap):
        raise YamlEditError(f"{model_name!r} has no canary block")
    literal = ("true" if value else "false") if isinstance(value, bool) else str(value)

    def text_edit(spec: CommentedMap, lines: list[str]) -> None:
        canary = spec["canary"]
        if canary.fa.flow_style():
            return  # `canary: {...}`: left to the round-trip fallback
        if key in canary and not isinstance(canary[key], CommentedMap | CommentedSeq):
            line, col = canary.lc.value(key)
            lines[line] = _replace_scalar(lines[line], col, literal)
            return
        anchor = "version" if "version" in canary else list(canary.keys())[0]
        line, col = canary.lc.key(anchor)
        at = _block_end(lines, line, col)
        _ensure_newline(lines, at - 1)
        lines.insert(at, " " * col + f"{key}: {literal}\n")

    def data_edit(spec: CommentedMap) -> None:
        canary = spec["canary"]
        if key in canary:
            canary[key] = value
        else:
            keys = list(canary.keys())
            position = keys.index("version") + 1 if "version" in canary else len(keys)
            canary.insert(position, key, value)

    return _edit(text, model_name, text_edit, data_edit)


def _child_step(spec: CommentedMap) -> int:
    """The file's indentation step, read from a nested block mapping of the spec (else 2)."""
    for value in spec.values():
        if isinstance(value, CommentedMap) and not value.fa.flow_style() and len(value):
            step = int(value.lc.col) - int(spec.lc.col)
            if step > 0:
                return step
    return 2
