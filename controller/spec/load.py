"""Loading rollout specs from YAML text with a file:line:col for every problem.

Owns: reading spec files (or in-memory texts from git trees), splitting them
into YAML documents, turning each document into plain data plus a position
index (every key and value -> line:col), validating it against `spec`, and
mapping every error (YAML syntax, tabs, duplicate keys, wrong types, unknown
keys, rules, duplicate names across files) back to a position. It never raises
for bad input: everything becomes a `Problem`.

YAML is composed with PyYAML's libyaml-backed composer (C speed) and the
scalars are resolved here with the YAML 1.2 core schema (the schema ruamel.yaml
uses), so `yes` stays a string and `0o17` is an int, exactly as the
round-trip editor that writes promotion commits will read the same file.
ruamel.yaml's pure-Python parser alone costs ~3 ms per spec, which breaks the
1,000-files-in-2-seconds budget of `rollouts validate`.
"""

from __future__ import annotations

import difflib
import math
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel

from controller.spec.model import DEFER_RULES, Loc, RolloutSpec, format_loc, rule_violations

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SPEC_SUFFIXES = (".yaml", ".yml")
# Alias expansion can grow a small file exponentially ("billion laughs"); no
# real spec comes close to this many nodes.
MAX_NODES = 100_000
SettingsModel = TypeVar("SettingsModel", bound=BaseModel)

ProblemKind = Literal["spec", "io"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong, at a 1-based line:col of a file (0:0 = the whole file).

    kind "io" means the file could not be read at all (CLI exit code 2).
    """

    path: str
    line: int
    col: int
    message: str
    kind: ProblemKind = "spec"

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.col}" if self.line else self.path
        return f"{where}: error: {self.message}"


@dataclass(frozen=True)
class Place:
    """Where a node sits: its key (None for list items and roots) and its value."""

    key: tuple[int, int] | None
    value: tuple[int, int]
    collection: bool = False  # a mapping or list: rules about it point at its key


@dataclass(frozen=True)
class LoadedSpec:
    """A valid document and where it came from."""

    spec: RolloutSpec
    path: str
    index: int  # 0-based document number within the file
    line: int  # 1-based line where the document starts
    places: Mapping[Loc, Place] = field(repr=False, compare=False)

    def where(self, loc: Loc, key: bool = False) -> tuple[int, int]:
        """line:col of the value (or key) at `loc`, or of its nearest ancestor."""
        return _locate(self.places, loc, key)


@dataclass(frozen=True)
class LoadResult:
    documents: list[LoadedSpec]
    problems: list[Problem]
    files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


# --- public entry points -------------------------------------------------------


def load_specs(paths: Iterable[str | Path]) -> LoadResult:
    """Load spec files; directories are searched recursively for *.yaml / *.yml."""
    files, problems = discover(paths)
    items: list[tuple[str, str]] = []
    for path in files:
        try:
            items.append((path, Path(path).read_text(encoding="utf-8")))
        except UnicodeDecodeError as exc:
            problems.append(Problem(path, 0, 0, f"not UTF-8 text: {exc.reason}", "io"))
        except OSError as exc:
            problems.append(Problem(path, 0, 0, f"cannot read: {exc.strerror or exc}", "io"))
    result = load_texts(items)
    return LoadResult(result.documents, sort_problems(problems + result.problems), len(files))


def load_texts(items: Iterable[tuple[str, str]]) -> LoadResult:
    """Load specs from (path, text) pairs, e.g. blobs read from a git tree."""
    loader = _Loading()
    paths: list[str] = []
    for path, text in items:
        paths.append(path)
        loader.load_file(path, text)
    return LoadResult(loader.documents, sort_problems(loader.problems), len(paths))


def discover(paths: Iterable[str | Path]) -> tuple[list[str], list[Problem]]:
    """Spec files named by `paths`, in a stable order; missing paths are problems."""
    files: list[str] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                str(child)
                for child in path.rglob("*")
                if child.suffix in SPEC_SUFFIXES and child.is_file()
            )
            if not found:
                problems.append(Problem(str(raw), 0, 0, "no *.yaml or *.yml files found", "io"))
            files.extend(found)
        elif path.exists():
            files.append(str(raw))
        else:
            problems.append(Problem(str(raw), 0, 0, "no such file or directory", "io"))
    unique = list(dict.fromkeys(files))  # a file named twice is loaded once
    return unique, problems


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """The one stable order of problems: by path, then position, then text."""
    return sorted(problems, key=lambda p: (p.path, p.line, p.col, p.message))


def load_settings_file(
    path: str, text: str, model: type[SettingsModel]
) -> tuple[SettingsModel | None, list[Problem]]:
    """One YAML mapping validated against `model`, with the same file:line:col
    problems and "did you mean" hints as a spec (a controller config file)."""
    try:
        nodes = [n for n in yaml.compose_all(text, Loader=_Loader) if n is not None]
    except yaml.MarkedYAMLError as exc:
        return None, [_yaml_problem(path, text, exc)]
    except yaml.YAMLError as exc:
        return None, [Problem(path, 1, 1, f"YAML error: {exc}")]
    if len(nodes) > 1:
        return None, [Problem(path, *_pos(nodes[1]), "expected one document, found several")]
    if not nodes or (isinstance(nodes[0], yaml.ScalarNode) and not nodes[0].value):
        nodes = []
    tree = _Tree()
    data = tree.convert(nodes[0], ()) if nodes else {}
    problems = [Problem(path, line, col, message) for (line, col), message in tree.problems]
    if not isinstance(data, dict):
        problems.append(Problem(path, *_pos(nodes[0]), "expected a mapping of settings"))
    if problems:
        return None, problems
    try:
        return model.model_validate(data, by_alias=True, by_name=False), []
    except ValidationError as exc:
        return None, sort_problems(_pydantic_problem(path, tree.places, error, model)
                                   for error in exc.errors(include_url=False))


# --- per-document work ---------------------------------------------------------------


class _Loading:
    """Accumulates documents and problems across files (names must be unique)."""

    def __init__(self) -> None:
        self.documents: list[LoadedSpec] = []
        self.problems: list[Problem] = []
        # name -> "path:line:col" of its first use, per kind of name
        self._first: dict[str, dict[str, str]] = {"metadata.name": {}, "spec.model.name": {}}

    def load_file(self, path: str, text: str) -> None:
        try:
            for index, node in enumerate(yaml.compose_all(text, Loader=_Loader)):
                if node is not None:
                    self._load_document(path, index, node)
        except yaml.MarkedYAMLError as exc:
            self.problems.append(_yaml_problem(path, text, exc))
        except yaml.YAMLError as exc:  # unmarked errors, e.g. a bad byte order mark
            self.problems.append(Problem(path, 1, 1, f"YAML error: {exc}"))

    def _load_document(self, path: str, index: int, node: yaml.Node) -> None:
        tree = _Tree()
        data = tree.convert(node, ())
        start = (node.start_mark.line + 1, node.start_mark.column + 1)
        problems = [Problem(path, line, col, message) for (line, col), message in tree.problems]
        if isinstance(node, yaml.ScalarNode) and data is None:
            return  # an empty document, e.g. after a trailing `---`
        if not isinstance(data, dict):
            problems.append(Problem(path, *start, "a rollout document must be a mapping"))
        if problems:
            self.problems.extend(problems)
            return
        problems = self._check_names(path, data, tree.places)
        spec = _validate(path, data, tree.places, problems)
        self.problems.extend(problems)
        if spec is not None and not problems:
            self.documents.append(LoadedSpec(spec, path, index, start[0], tree.places))

    def _check_names(
        self, path: str, data: dict[str, Any], places: Mapping[Loc, Place]
    ) -> list[Problem]:
        problems = []
        for what, loc in (
            ("metadata.name", ("metadata", "name")),
            ("spec.model.name", ("spec", "model", "name")),
        ):
            name = _dig(data, loc)
            if not isinstance(name, str):
                continue  # absent or mistyped: schema validation reports it
            line, col = _locate(places, loc, key=False)
            first = self._first[what].setdefault(name, f"{path}:{line}:{col}")
            if first != f"{path}:{line}:{col}":
                problems.append(
                    Problem(path, line, col, f"{what} {name!r} is already used at {first}")
                )
        return problems


def _dig(data: Any, loc: Loc) -> Any:
    for part in loc:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _validate(
    path: str, data: dict[str, Any], places: Mapping[Loc, Place], problems: list[Problem]
) -> RolloutSpec | None:
    try:
        spec = RolloutSpec.model_validate(
            data, by_alias=True, by_name=False, context={DEFER_RULES: True}
        )
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems.append(_pydantic_problem(path, places, error))
        return None
    for violation in rule_violations(spec):
        place = places.get(violation.loc)
        line, col = _locate(places, violation.loc, key=place is not None and place.collection)
        problems.append(Problem(path, line, col, f"{violation.where}: {violation.message}"))
    return spec


# --- YAML nodes -> plain data + positions ------------------------------------------------

_NULL = re.compile(r"~|null|Null|NULL|")
_TRUE = re.compile(r"true|True|TRUE")
_FALSE = re.compile(r"false|False|FALSE")
_INT = re.compile(r"[-+]?[0-9]+")
_INT_OCT = re.compile(r"0o[0-7]+")
_INT_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")
_STANDARD_TAG = "tag:yaml.org,2002:"


def resolve_plain(text: str) -> Any:
    """A plain (unquoted) scalar under the YAML 1.2 core schema."""
    if _NULL.fullmatch(text):
        return None
    if _TRUE.fullmatch(text):
        return True
    if _FALSE.fullmatch(text):
        return False
    if _INT.fullmatch(text):
        return int(text)
    if _INT_OCT.fullmatch(text):
        return int(text[2:], 8)
    if _INT_HEX.fullmatch(text):
        return int(text[2:], 16)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _INF.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.fullmatch(text):
        return math.nan
    return text


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Tree:
    """Converts one composed document, recording a Place for every node."""

    def __init__(self) -> None:
        self.places: dict[Loc, Place] = {}
        self.problems: list[tuple[tuple[int, int], str]] = []
        self._nodes = 0
        self._stack: set[int] = set()  # ids of nodes being converted (alias cycles)

    def convert(self, node: yaml.Node, loc: Loc, key: yaml.Node | None = None) -> Any:
        self.places[loc] = Place(
            _pos(key) if key is not None else None,
            _pos(node),
            not isinstance(node, yaml.ScalarNode),
        )
        self._nodes += 1
        if self._nodes > MAX_NODES:
            if self._nodes == MAX_NODES + 1:
                self.problems.append((_pos(node), "document too large (alias expansion?)"))
            return None
        if not node.tag.startswith(_STANDARD_TAG) and node.tag != "!":
            self.problems.append((_pos(node), f"unsupported YAML tag {node.tag!r}"))
        if isinstance(node, yaml.ScalarNode):
            # libyaml reports plain style as "", the pure-Python parser as None
            return node.value if node.style else resolve_plain(node.value)
        if id(node) in self._stack:
            self.problems.append((_pos(node), "recursive YAML alias"))
            return None
        self._stack.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(item, (*loc, i)) for i, item in enumerate(node.value)]
            return self._mapping(node, loc)
        finally:
            self._stack.discard(id(node))

    def _mapping(self, node: yaml.Node, loc: Loc) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        first_seen: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append((_pos(key_node), "mapping keys must be plain strings"))
                continue
            key = key_node.value if key_node.style else resolve_plain(key_node.value)
            if isinstance(key, float) and math.isnan(key):
                key = key_node.value
            if key in first_seen:
                line = first_seen[key].start_mark.line + 1
                message = f"duplicate key {key!r} (first at line {line})"
                self.problems.append((_pos(key_node), message))
                continue
            first_seen[key] = key_node
            result[key] = self.convert(value_node, (*loc, key), key_node)
        return result


def _yaml_problem(path: str, text: str, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    if mark is not None and 0 <= mark.index < len(text) and text[mark.index] == "\t":
        return Problem(path, line, col, "tab character: YAML indentation must use spaces")
    message = " ".join(part for part in (exc.context, exc.problem) if part)
    return Problem(path, line, col, f"YAML syntax error: {message}")


def _locate(places: Mapping[Loc, Place], loc: Loc, key: bool) -> tuple[int, int]:
    while loc not in places and loc:
        loc, key = loc[:-1], True  # an ancestor: point at its key, the field that holds it
    place = places.get(loc)
    if place is None:
        return 1, 1
    return place.key if key and place.key is not None else place.value


# --- pydantic errors -> messages ---------------------------------------------------------

_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
    "list_type": "a list",
}


def _pydantic_problem(
    path: str, places: Mapping[Loc, Place], error: Any, root: type[BaseModel] = RolloutSpec
) -> Problem:
    loc: Loc = tuple(error["loc"])
    kind: str = error["type"]
    if loc and loc[-1] == "[key]":  # a bad dict key: point at the key itself
        line, col = _locate(places, loc[:-1], key=True)
        return Problem(path, line, col, f"{format_loc(loc[:-2])}: {error['msg']}")
    if kind == "extra_forbidden":
        line, col = _locate(places, loc, key=True)
        return Problem(path, line, col, _unknown_field(loc, root))
    if kind == "missing":
        parent = loc[:-1]
        line, col = _locate(places, parent, key=True)
        where = format_loc(parent) or "the document"
        return Problem(path, line, col, f"missing required field {loc[-1]!r} in {where}")
    line, col = _locate(places, loc, key=False)
    return Problem(path, line, col, f"{format_loc(loc)}: {_message(kind, error)}")


def _message(kind: str, error: Any) -> str:
    value = error.get("input")
    if kind in _EXPECTED:
        hint = ""
        if kind == "string_type" and isinstance(value, int | float):
            hint = f' (quote it: "{str(value).lower()}")'
        return f"expected {_EXPECTED[kind]}, got {_describe(value)}{hint}"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", error["ctx"]["expected"])
        text = f"must be {error['ctx']['expected']}, got {_describe(value)}"
        return text + _suggest(str(value), choices) if isinstance(value, str) else text
    if kind == "value_error":
        return str(error["ctx"]["error"])
    return str(error["msg"])


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    return "a list" if isinstance(value, list) else "a mapping"


def _unknown_field(loc: Loc, root: type[BaseModel] = RolloutSpec) -> str:
    name = str(loc[-1])
    known = _known_keys(loc[:-1], root)
    camel = to_camel(name)
    hint = f"; did you mean {camel!r}?" if camel != name and camel in known else ""
    return f"unknown field {name!r}" + (hint or _suggest(name, known))


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _known_keys(loc: Loc, root: type[BaseModel] = RolloutSpec) -> list[str]:
    """The keys the model accepts at `loc`, in declaration order."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {info.alias or name: info for name, info in current.model_fields.items()}
            if not isinstance(part, str) or part not in fields:
                return []
            current = fields[part].annotation
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [info.alias or name for name, info in current.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the type that matters."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            annotation = members[0]
        else:
            return annotation
