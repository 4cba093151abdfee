"""The platform-neutral view of a loaded model: signatures and a `run` call.

Everything above the loaders (data plane, metadata, gRPC and REST adapters)
talks to a `Servable`; only the platform loaders know how a model is executed.
Nothing here imports TensorFlow, so the core and the adapters stay light.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy

from serving.core.status import Code, ServingError


@dataclass(frozen=True)
class TensorInfo:
    """One signature input or output as the SavedModel declares it."""

    name: str
    dtype: int  # tensorflow DataType enum value (types_pb2), e.g. 1 = DT_FLOAT
    shape: tuple[int, ...] | None  # -1 for an unknown dim; None for an unknown rank


@dataclass(frozen=True)
class Signature:
    """A SignatureDef: its method (predict/classify/regress) and tensors by alias."""

    key: str
    method_name: str
    inputs: Mapping[str, TensorInfo]
    outputs: Mapping[str, TensorInfo]


class Servable(Protocol):
    """A loaded model version ready to answer requests."""

    signatures: Mapping[str, Signature]

    def run(
        self,
        signature_key: str,
        inputs: Mapping[str, numpy.ndarray],
        output_keys: Sequence[str] | None = None,
    ) -> dict[str, numpy.ndarray]:
        """Run one signature; raises ServingError (INVALID_ARGUMENT for bad input)."""
        ...

    def signature_def_map(self) -> Any:
        """A tensorflow.serving.SignatureDefMap proto, for GetModelMetadata."""
        ...


def check_input_names(signature: Signature, inputs: Mapping[str, object]) -> None:
    """Every input of the signature and nothing else, or INVALID_ARGUMENT naming both."""
    missing = sorted(set(signature.inputs) - set(inputs))
    extra = sorted(set(inputs) - set(signature.inputs))
    if missing or extra:
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"input size does not match signature: {len(inputs)}!={len(signature.inputs)} "
            f"len({{{', '.join(sorted(inputs))}}}) != "
            f"len({{{', '.join(sorted(signature.inputs))}}}). "
            f"Sent extra: {{{', '.join(extra)}}}. Missing but required: "
            f"{{{', '.join(missing)}}}.",
        )
