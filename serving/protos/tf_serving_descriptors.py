"""Dump the TF Serving protos the controller needs as a FileDescriptorSet.

`python -m serving.protos.tf_serving_descriptors OUT` (run by `make protos` in a
child process: importing `tensorflow_serving.apis` loads TensorFlow). The
descriptors come from the installed `tensorflow-serving-api`, the package the
server itself uses, so the code generated from them registers byte-identical
files: a process that imports both shares one descriptor pool entry per file.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor

# The roots the controller uses; their dependencies come along.
ROOT_MODULES = (
    "tensorflow_serving.apis.model_service_pb2",
    "tensorflow_serving.config.model_server_config_pb2",
)
# Shipped with the protobuf runtime itself: never generated here.
RUNTIME_PREFIX = "google/protobuf/"


def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """The roots and their dependencies, dependencies first (protoc needs that order)."""
    ordered: list[FileDescriptor] = []
    seen: set[str] = set()

    def visit(file: FileDescriptor) -> None:
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            visit(dependency)
        ordered.append(file)

    for name in ROOT_MODULES:
        visit(importlib.import_module(name).DESCRIPTOR)
    result = descriptor_pb2.FileDescriptorSet()
    for file in ordered:
        proto = result.file.add()
        file.CopyToProto(proto)
    return result


def generated_files(fds: descriptor_pb2.FileDescriptorSet) -> list[str]:
    return [f.name for f in fds.file if not f.name.startswith(RUNTIME_PREFIX)]


if __name__ == "__main__":
    Path(sys.argv[1]).write_bytes(descriptor_set().SerializeToString())
