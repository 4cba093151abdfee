"""Every module `rollouts` imports at run time comes with a plain `pip install .`.

Walks every import statement (top-level and inside functions) of controller/
and serving/ and maps each third-party module to the distribution that provides
it: that distribution must be in pyproject.toml's main `dependencies`, not only
in the `test` extras.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Development tools, not commands: `make protos` needs grpcio-tools.
DEV_ONLY = {REPO / "serving" / "protos" / "build.py"}
OWN = {"controller", "serving", "benchmarks", "tests"}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def main_dependencies() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {_normal(re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0])
            for spec in project["dependencies"]}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_runtime_import_is_a_main_dependency() -> None:
    providers = packages_distributions()
    declared = main_dependencies()
    undeclared: dict[str, set[str]] = {}
    files = [p for root in ("controller", "serving") for p in (REPO / root).rglob("*.py")
             if "generated" not in p.parts and p not in DEV_ONLY]
    assert len(files) > 50
    for path in files:
        for module in imported_modules(path) - OWN:
            if module in sys.stdlib_module_names or module == "__future__":
                continue
            dists = {_normal(d) for d in providers.get(module, [])}
            assert dists, f"{path.relative_to(REPO)}: no installed distribution provides {module}"
            if not dists & declared:
                undeclared.setdefault(module, set()).add(str(path.relative_to(REPO)))
    assert not undeclared, f"imported but not in [project] dependencies: {undeclared}"


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    import httpx\n    from rich.table import Table\n")
    assert imported_modules(source) == {"httpx", "rich"}
