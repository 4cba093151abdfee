"""Regenerate serving/generated/ from serving/protos/*.proto (`make protos`).

`python -m serving.protos.build [OUT_DIR]`; run it in its own process: protoc
in a process that has already loaded TensorFlow's protobuf runtime can crash.

grpc_tools emits `import x_pb2` as a top-level module; we rewrite that one line
to a package-relative import so the generated code lives apart, in
`serving.generated`, without touching sys.path.

The few TF Serving protos the controller speaks (ModelService, ModelServerConfig
and what they import) are generated too, into `serving/generated/tensorflow_serving/`
(and `tensorflow/`, `xla/` for the error codes they use): importing
`tensorflow_serving.apis` loads all of TensorFlow, seconds and hundreds of MB
the controller has no use for. Their source is the installed
`tensorflow-serving-api`'s own descriptors (`tf_serving_descriptors`), so the
two register identical files; imports between them are rewritten to
`serving.generated.<package>`.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PROTO_DIR = Path(__file__).resolve().parent
OUT_DIR = PROTO_DIR.parent / "generated"
# Top-level proto packages of the TF Serving files generated here.
TF_PACKAGES = ("tensorflow_serving", "tensorflow", "xla")
# `from pkg.mod import x_pb2` and a public import's `from pkg.mod.x_pb2 import *`.
_TF_IMPORT = re.compile(
    rf"^from ((?:{'|'.join(TF_PACKAGES)})(?:\.\w+)*) import (\w+_pb2|\*)", re.M
)


def build(out_dir: Path = OUT_DIR) -> int:
    protos = sorted(PROTO_DIR.glob("*.proto"))
    include = Path(protoc.__file__).resolve().parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p) for p in protos],
    ]
    rc = protoc.main(args)
    if rc != 0:
        return int(rc)
    for grpc_file in out_dir.glob("*_pb2_grpc.py"):
        text = grpc_file.read_text()
        text = re.sub(r"^import (\w+_pb2) as", r"from . import \1 as", text, flags=re.M)
        grpc_file.write_text(text)
    return build_tf_serving(out_dir)


def build_tf_serving(out_dir: Path) -> int:
    """Generate the TF Serving protos the controller needs, from the installed package."""
    from google.protobuf import descriptor_pb2

    from serving.protos.tf_serving_descriptors import generated_files

    with tempfile.TemporaryDirectory() as scratch:
        set_path = Path(scratch) / "tf_serving.binpb"
        # A child process: it imports TensorFlow, and protoc must not run beside it.
        subprocess.run(
            [sys.executable, "-m", "serving.protos.tf_serving_descriptors", str(set_path)],
            check=True,
            timeout=300,
        )
        fds = descriptor_pb2.FileDescriptorSet.FromString(set_path.read_bytes())
        files = generated_files(fds)
        rc = protoc.main([
            "protoc",
            f"--descriptor_set_in={set_path}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            *files,
        ])
    if rc != 0:
        return int(rc)
    for package in TF_PACKAGES:
        root = out_dir / package
        for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            if directory.name != "__pycache__":
                (directory / "__init__.py").touch()
        for module in sorted(root.rglob("*_pb2*.py*")):
            text = module.read_text()
            if module.name.endswith("_pb2_grpc.py") and "Stub" not in text:
                module.unlink()  # a file with no service: protoc's empty stub module
                continue
            module.write_text(_TF_IMPORT.sub(r"from serving.generated.\1 import \2", text))
    return 0


if __name__ == "__main__":
    # An optional output directory (tests build into a temporary one).
    sys.exit(build(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR))
