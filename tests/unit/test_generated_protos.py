"""serving/generated/ is what `make protos` makes from serving/protos/ today.

The generated files carry the protoc version in comments and version checks, so
the comparison is of what matters: the serialized proto descriptor each `_pb2`
module registers, and the services and methods each `_pb2_grpc` module defines.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from serving.protos import build

GENERATED = build.OUT_DIR
REPO = Path(__file__).resolve().parents[2]


def descriptor(pb2: Path) -> bytes:
    """The bytes literal passed to AddSerializedFile in a generated _pb2 module."""
    for node in ast.walk(ast.parse(pb2.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "AddSerializedFile"):
            value = ast.literal_eval(node.args[0])
            assert isinstance(value, bytes)
            return value
    raise AssertionError(f"no AddSerializedFile in {pb2}")


def rpc_paths(grpc_module: Path) -> list[str]:
    return sorted(set(re.findall(r"'(/[\w.]+/\w+)'", grpc_module.read_text())))


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    # In a child process: protoc next to TensorFlow's protobuf runtime (loaded in
    # this worker by other tests) can crash the process.
    subprocess.run([sys.executable, "-m", "serving.protos.build", str(tmp_path)],
                   cwd=REPO, check=True, timeout=120)
    fresh = sorted(p.name for p in tmp_path.glob("*_pb2*.py*"))
    assert fresh == sorted(p.name for p in GENERATED.glob("*_pb2*.py*"))
    for pb2 in tmp_path.glob("*_pb2.py"):
        assert descriptor(pb2) == descriptor(GENERATED / pb2.name), (
            f"{pb2.name} is stale: run `make protos`")
    for grpc_module in tmp_path.glob("*_pb2_grpc.py"):
        paths = rpc_paths(grpc_module)
        assert paths and paths == rpc_paths(GENERATED / grpc_module.name)
        assert "from . import" in (GENERATED / grpc_module.name).read_text()
