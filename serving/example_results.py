"""Classify and Regress: tf.Examples in, TF Serving's result protos out.

Mirrors classifier.cc and regressor.cc: the checks a signature must pass to
classify or regress (with their error texts), the serialized-Example string
tensor util.cc builds from an Input, and the post-processing of the output
tensors into ClassificationResult / RegressionResult. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
from tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2

from serving import tensor_codec as tc
from serving.core.status import invalid_argument


class SignatureLike(Protocol):
    @property
    def inputs(self) -> Mapping[str, Any]: ...
    @property
    def outputs(self) -> Mapping[str, Any]: ...


def serialized_examples(inp: input_pb2.Input) -> np.ndarray:
    """One serialized tf.Example per example (context bytes prepended), as
    util.cc InputToSerializedExampleTensor builds the string input tensor."""
    kind = inp.WhichOneof("kind")
    if kind == "example_list":
        records = [e.SerializeToString() for e in inp.example_list.examples]
    elif kind == "example_list_with_context":
        context = inp.example_list_with_context.context.SerializeToString()
        records = [context + e.SerializeToString() for e in inp.example_list_with_context.examples]
    else:
        records = []
    if not records:
        raise invalid_argument("Input is empty.")
    return np.array(records, dtype=object)


def _debug(servable: Any, key: str) -> str:
    try:
        return str(servable.signature_def_map().signature_def[key])
    except Exception:  # only decorates a message; never mask the real error
        return key


def _dt(a: np.ndarray) -> str:
    """TensorFlow's DataType_Name of an array's dtype ("DT_FLOAT")."""
    try:
        return "DT_" + tc.dtype_name(tc.tf_dtype(a)).upper()
    except ValueError:
        return str(a.dtype)


def _shape(a: np.ndarray) -> str:
    return "[" + ",".join(map(str, a.shape)) + "]"


def classification_outputs(servable: Any, key: str, signature: SignatureLike) -> list[str]:
    """classifier.cc PreProcessClassification: the output aliases to fetch."""
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise invalid_argument(
            f"Expected one or two output Tensors, found {len(signature.outputs)}"
        )
    if "inputs" not in signature.inputs:
        raise invalid_argument(
            f"No classification inputs found in SignatureDef: {_debug(servable, key)}"
        )
    outputs = [k for k in ("classes", "scores") if k in signature.outputs]
    if not outputs:
        raise invalid_argument(
            'Expected classification signature outputs to contain at least one of "classes"'
            f' or "scores". Signature was: {_debug(servable, key)}'
        )
    return outputs


def regression_outputs(servable: Any, key: str, signature: SignatureLike) -> list[str]:
    """regressor.cc PreProcessRegression."""
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    if "inputs" not in signature.inputs:
        raise invalid_argument(
            f"No regression inputs found in SignatureDef: {_debug(servable, key)}"
        )
    if "outputs" not in signature.outputs:
        raise invalid_argument(
            f"No regression outputs found in SignatureDef: {_debug(servable, key)}"
        )
    return ["outputs"]


def _check_batch(name: str, t: np.ndarray, dtype_ok: bool, dtype_text: str, n: int) -> None:
    if t.ndim != 2:
        raise invalid_argument(
            f"Expected Tensor shape: [batch_size num_classes] but got {_shape(t)}"
        )
    if not dtype_ok:
        raise invalid_argument(f"Expected {name} Tensor of {dtype_text}. Got: {_dt(t)}")
    if t.shape[0] != n:
        raise invalid_argument(f"Expected {name} output batch size of {n}. Got: {t.shape[0]}")


def classification_result(
    outputs: Mapping[str, np.ndarray], num_examples: int
) -> classification_pb2.ClassificationResult:
    """classifier.cc PostProcessClassificationResult."""
    classes = outputs.get("classes")
    scores = outputs.get("scores")
    if classes is not None:
        classes = np.asarray(classes)
        _check_batch("classes", classes, classes.dtype.kind in "OSU", "DT_STRING", num_examples)
    if scores is not None:
        scores = np.asarray(scores)
        _check_batch("scores", scores, scores.dtype == np.float32, "DT_FLOAT", num_examples)
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid_argument(
            "Tensors class and score should match in dim_size(1). Got"
            f" {classes.shape[1]} vs. {scores.shape[1]}"
        )
    present = classes if classes is not None else scores
    num_classes = present.shape[1] if present is not None else 0
    result = classification_pb2.ClassificationResult()
    for i in range(num_examples):
        row = result.classifications.add()
        for c in range(num_classes):
            cl = row.classes.add()
            if classes is not None:
                v = classes[i, c]
                cl.label = v.decode(errors="replace") if isinstance(v, bytes) else str(v)
            if scores is not None:
                cl.score = float(scores[i, c])
    return result


def regression_result(
    outputs: Mapping[str, np.ndarray], num_examples: int
) -> regression_pb2.RegressionResult:
    """regressor.cc PostProcessRegressionResult."""
    if "outputs" not in outputs:
        raise invalid_argument("Could not find output tensor 'outputs'")
    t = np.asarray(outputs["outputs"])
    if not (t.ndim == 1 or (t.ndim == 2 and t.shape[1] == 1)):
        raise invalid_argument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1]"
            f" but got {_shape(t)}"
        )
    if t.shape[0] != num_examples:
        raise invalid_argument(
            f"Input batch size did not match output batch size: {num_examples} vs. {t.shape[0]}"
        )
    if t.dtype != np.float32:
        raise invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {_dt(t)}")
    result = regression_pb2.RegressionResult()
    for v in t.reshape(-1):
        result.regressions.add().value = float(v)
    return result
