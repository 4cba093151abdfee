"""Regenerate serving/generated/ from serving/protos/*.proto (`make protos`).

`python -m serving.protos.build [OUT_DIR]`; run it in its own process: protoc
in a process that has already loaded TensorFlow's protobuf runtime can crash.

grpc_tools emits `import x_pb2` as a top-level module; we rewrite that one line
to a package-relative import so the generated code lives apart, in
`serving.generated`, without touching sys.path.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from grpc_tools import protoc

PROTO_DIR = Path(__file__).resolve().parent
OUT_DIR = PROTO_DIR.parent / "generated"


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
    return 0


if __name__ == "__main__":
    # An optional output directory (tests build into a temporary one).
    sys.exit(build(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR))
