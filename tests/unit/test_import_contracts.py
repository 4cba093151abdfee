"""The import-linter contracts in pyproject.toml hold on the tree, stay complete as
serving grows, and catch the violations they exist for (each is run on a copy of
the tree with one bad import added)."""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACTS: list[dict[str, Any]] = tomllib.loads((ROOT / "pyproject.toml").read_text())[
    "tool"
]["importlinter"]["contracts"]


def contract(contract_id: str) -> dict[str, Any]:
    (found,) = [c for c in CONTRACTS if c["id"] == contract_id]
    return found


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env,
        capture_output=True, text=True, timeout=600, check=False,
    )


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


def test_the_controller_may_import_only_the_generated_api_of_serving() -> None:
    # The contract lists what is forbidden; a module added to serving must be added there.
    import serving

    children = {f"serving.{m.name}" for m in pkgutil.iter_modules(serving.__path__)}
    forbidden = set(contract("controller-uses-generated-api")["forbidden_modules"])
    assert children - forbidden == {"serving.generated"}
    assert forbidden <= children


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    for package in ("controller", "serving"):
        shutil.copytree(ROOT / package, root / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.proto"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


BAD_IMPORTS = [
    ("serving/core/manager.py", "import grpc", "serving-core-neutral"),
    ("serving/core/states.py", "from serving.loaders import base", "serving-core-neutral"),
    ("serving/config/flags.py", "import tensorflow", "serving-config-pure"),
    ("controller/decide/plan.py", "import git", "controller-decide-pure"),
    ("controller/decide/fleet.py", "from controller.adapters import redact",
     "controller-layers"),
    ("controller/spec/model.py", "import rich", "controller-decide-pure"),
    ("controller/adapters/targets.py", "from serving import server_core",
     "controller-uses-generated-api"),
    ("controller/cli/validate.py", "from serving import main",
     "controller-uses-generated-api"),
    ("serving/routing.py", "from controller.decide import fleet",
     "serving-independent-of-controller"),
    ("controller/runtime/webhook.py", "from controller.runtime import runner", "no-cycles"),
    ("controller/adapters/targets.py", "from tensorflow_serving.apis import model_pb2",
     "controller-without-tensorflow"),
    ("controller/decide/render.py", "import tensorflow", "controller-without-tensorflow"),
]


@pytest.mark.parametrize(("path", "line", "contract_id"), BAD_IMPORTS)
def test_a_bad_import_breaks_its_contract(
    tree_copy: Path, path: str, line: str, contract_id: str
) -> None:
    module = tree_copy / path
    original = module.read_text()
    module.write_text(f"{original}\n{line}  # noqa\n")
    try:
        result = lint_imports(tree_copy)
    finally:
        module.write_text(original)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{contract(contract_id)['name']} BROKEN" in " ".join(result.stdout.split())


def test_docs_architecture_lists_every_contract_and_subpackage() -> None:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    assert [c["id"] for c in CONTRACTS if f"`{c['id']}`" not in text] == []
    for package in ("controller", "serving"):
        subpackages = sorted(p.parent.name for p in (ROOT / package).glob("*/__init__.py"))
        missing = [s for s in subpackages if f"{package}/{s}/" not in text]
        assert missing == [], package
