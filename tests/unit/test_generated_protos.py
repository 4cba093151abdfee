"""serving/generated/ is what `make protos` makes from serving/protos/ (and from the
installed tensorflow-serving-api's descriptors) today.

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
                   cwd=REPO, check=True, timeout=600)
    fresh = generated_modules(tmp_path)
    assert fresh == generated_modules(GENERATED), "run `make protos`"
    assert "tensorflow_serving/apis/model_service_pb2_grpc.py" in fresh
    assert "tensorflow_serving/config/model_server_config_pb2.py" in fresh
    for name in fresh:
        if name.endswith("_pb2.py"):
            assert descriptor(tmp_path / name) == descriptor(GENERATED / name), (
                f"{name} is stale: run `make protos`")
        if name.endswith("_pb2_grpc.py"):
            paths = rpc_paths(tmp_path / name)
            assert paths and paths == rpc_paths(GENERATED / name)
    assert "from . import" in (GENERATED / "rollouts_serving_pb2_grpc.py").read_text()


def generated_modules(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*_pb2*.py*")
                  if "__pycache__" not in p.parts)


def test_tf_serving_protos_are_the_installed_packages_own() -> None:
    # Byte-identical descriptors: a process importing both `tensorflow_serving.apis`
    # and the generated copies shares one pool entry and one class per message.
    code = (
        "from serving.generated.tensorflow_serving.apis import model_management_pb2 as ours\n"
        "from serving.generated.tensorflow_serving.config import model_server_config_pb2 as oc\n"
        "from tensorflow_serving.apis import model_management_pb2 as theirs\n"
        "from tensorflow_serving.config import model_server_config_pb2 as tc\n"
        "assert ours.ReloadConfigRequest is theirs.ReloadConfigRequest\n"
        "request = theirs.ReloadConfigRequest()\n"
        "request.config.CopyFrom(oc.ModelServerConfig())\n"
        "assert oc.ModelServerConfig is tc.ModelServerConfig\n"
        "print('same')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "same"


def test_generated_tf_serving_protos_import_no_tensorflow() -> None:
    code = (
        "import sys\n"
        "from serving.generated.tensorflow_serving.apis import model_service_pb2_grpc\n"
        "from serving.generated.tensorflow_serving.config import model_server_config_pb2\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tensorflow_serving', 'xla')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=600, check=True)
    assert done.stdout.strip() == "[]"
