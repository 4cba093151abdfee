"""The example-based calls' work on a servable: Classify and Regress as
tasks (serialized tf.Examples in, one result out), MultiInference's per-task
plan, and how each finished call is replayed on another version's handle for
shadow scoring (Predict's replay too). The DataPlane takes the handle and
records the call; these only run it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from tensorflow_serving.apis import input_pb2

from serving.core.status import Code, ServingError, invalid_argument
from serving.example_results import (
    classification_outputs,
    regression_outputs,
    serialized_examples,
)
from serving.request_checks import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    REGRESS_METHOD,
    check_method_name,
    examples_signature,
    predict_inputs,
)

Result = TypeVar("Result")

Replay = Callable[[Any], Mapping[str, np.ndarray]]
"""A finished call replayed on another version's handle (shadow scoring)."""
Example = tuple[Result, dict[str, np.ndarray], Replay]
"""What a Classify or Regress task gives: its result, raw outputs and replay."""


def predict_replay(key: str, tensors: Mapping[str, np.ndarray], output_filter: Sequence[str],
                   missing_signature: Callable[[str], ServingError],
                   ) -> Replay:
    """The same Predict on another handle, with that version's own checks."""

    def replay(h: Any) -> Mapping[str, np.ndarray]:
        checked = predict_inputs(h, key, tensors, output_filter, missing_signature)
        return h.servable.run(key, checked, list(output_filter) or None)  # type: ignore[no-any-return]

    return replay


def example_task(
    outputs: Callable[..., Any], result: Callable[..., Result],
) -> Callable[..., Example[Result]]:
    """Classify and regress alike: serialized tf.Examples in, one result list out.
    `make` also returns the raw outputs and how to replay the call on another
    version's handle (for shadow scoring)."""

    def make(servable: Any, key: str, sig: Any, inp: input_pb2.Input) -> Example[Result]:
        fetch = outputs(servable, key, sig)
        records = serialized_examples(inp)
        out = servable.run(key, {"inputs": records}, fetch)

        def replay(h: Any) -> Mapping[str, np.ndarray]:
            other = h.servable
            wanted = outputs(other, key, examples_signature(h, key))
            return other.run(key, {"inputs": records}, wanted)  # type: ignore[no-any-return]

        return result(out, len(records)), out, replay

    return make


def plan_tasks(servable: Any, tasks: Sequence[tuple[str, str]], method_name_check: bool,
               ) -> list[tuple[str, str, list[str]]]:
    """multi_inference.cc's per-task checks, before anything runs: per task
    its signature key, method and the outputs to fetch."""
    seen: set[str] = set()
    plan = []
    for signature_name, method in tasks:
        key = signature_name or DEFAULT_SIGNATURE
        if key in seen:
            raise invalid_argument(f"Duplicate evaluation of signature: {key}")
        seen.add(key)
        sig = servable.signatures.get(key)
        if sig is None:
            raise invalid_argument(f"Requested signature not found in model graph: {key}")
        if method in (CLASSIFY_METHOD, REGRESS_METHOD) and method_name_check:
            check_method_name(sig, "Classify" if method == CLASSIFY_METHOD else "Regress")
        if method == CLASSIFY_METHOD:
            fetch = classification_outputs(servable, key, sig)
        elif method == REGRESS_METHOD:
            fetch = regression_outputs(servable, key, sig)
        else:
            raise ServingError(Code.UNIMPLEMENTED,
                               f"Unsupported signature method_name: {method}")
        plan.append((key, method, fetch))
    return plan
