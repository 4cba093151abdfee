"""`rollouts validate`: every problem in a set of spec files, and model-dir checks.

Owns the checks beyond the spec itself: with a model root, each version a spec
references (stable, canary, keep, label targets) must exist on disk as a
SavedModel directory. Schema and rule checks live in `spec`, positions in
`load`; this module only combines them and adds the filesystem view.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from controller.adapters.history import history_problems
from controller.spec.load import LoadedSpec, Problem, load_specs, sort_problems
from controller.spec.model import Loc

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


@dataclass(frozen=True)
class Report:
    files: int
    documents: list[LoadedSpec]  # the valid ones
    problems: list[Problem]

    @property
    def exit_code(self) -> int:
        """0 all valid, 1 some spec invalid, 2 a path or file could not be read."""
        if any(problem.kind == "io" for problem in self.problems):
            return 2
        return 1 if self.problems else 0


def validate(paths: Iterable[str | Path], model_root: str | Path | None = None) -> Report:
    """Load and check the spec files under `paths` (and their model dirs)."""
    paths = list(paths)
    result = load_specs(paths)
    problems = list(result.problems)
    problems.extend(history_problems(result.documents, paths))
    if model_root is not None:
        root = Path(model_root)
        if not root.is_dir():
            problems.append(Problem(str(model_root), 0, 0, "model root is not a directory", "io"))
        else:
            for document in result.documents:
                problems.extend(model_dir_problems(document, root))
    return Report(result.files, result.documents, sort_problems(problems))


def validate_paths(
    paths: Iterable[str | Path], model_root: str | Path | None = None
) -> list[Problem]:
    """All problems in the spec files under `paths`, in a stable order."""
    return validate(paths, model_root).problems


def referenced_versions(document: LoadedSpec) -> list[tuple[int, Loc]]:
    """Each version the spec needs on disk, with the YAML location naming it."""
    body = document.spec.spec
    refs: list[tuple[int, Loc]] = [(body.stable, ("spec", "stable"))]
    if body.canary is not None:
        refs.append((body.canary.version, ("spec", "canary", "version")))
    refs.extend((version, ("spec", "keep", i)) for i, version in enumerate(body.keep))
    refs.extend((version, ("spec", "labels", label)) for label, version in body.labels.items())
    return refs


def model_dir_problems(document: LoadedSpec, root: Path) -> list[Problem]:
    """Versions whose directory is missing or holds no SavedModel."""
    base = root / document.spec.spec.model.path
    problems: list[Problem] = []
    checked: dict[int, str | None] = {}
    for version, loc in referenced_versions(document):
        if version not in checked:
            checked[version] = _saved_model_problem(base / str(version))
        message = checked[version]
        if message is not None:
            line, col = document.where(loc)
            problems.append(Problem(document.path, line, col, f"version {version}: {message}"))
    return problems


def _saved_model_problem(directory: Path) -> str | None:
    if not directory.is_dir():
        return f"{directory} does not exist"
    if not any((directory / name).is_file() for name in SAVED_MODEL_FILES):
        return f"{directory} holds no SavedModel (saved_model.pb)"
    return None
