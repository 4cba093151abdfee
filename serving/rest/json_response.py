"""TF Serving's REST JSON responses: tensors, classify/regress results, metadata.

Mirrors the writing half of tensorflow_serving/util/json_tensor.cc: the
"predictions" (row) / "outputs" (columnar) shapes, one output as a bare value
and several as objects, `{"b64": ...}` for `_bytes` outputs, and WriteDecimal's
number text. Pure functions; an unwritable tensor is a ServingError.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    model_pb2,
    regression_pb2,
)

from serving import tensor_codec as tc
from serving.core.status import invalid_argument
from serving.rest.json_tensor import Format


def format_decimal(val: float, single: bool) -> str:
    """json_tensor.cc WriteDecimal: shortest %g that round-trips, then "x.0"."""
    if math.isnan(val):
        return "NaN"
    if math.isinf(val):
        return "-Infinity" if val < 0 else "Infinity"
    text = f"{val:g}"
    back = float(np.float32(float(text))) if single else float(text)
    if back != val:
        text = f"{val:.{9 if single else 17}g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


_INT_DTYPES = {np.dtype(t) for t in (np.int32, np.int16, np.int8, np.uint8, np.int64,
                                    np.uint32, np.uint64)}


def _scalar_writer(array: np.ndarray, name: str) -> Any:
    dt = array.dtype
    if dt == np.float32:
        return lambda v: format_decimal(float(v), True)
    if dt == np.float64:
        return lambda v: format_decimal(float(v), False)
    if dt in _INT_DTYPES:
        return lambda v: str(int(v))
    if dt == np.bool_:
        return lambda v: "true" if v else "false"
    if dt.kind in "OSU":
        if name.endswith("_bytes"):
            return lambda v: '{"b64": ' + json.dumps(
                base64.b64encode(tc._as_bytes(v)).decode()) + "}"
        return lambda v: json.dumps(tc._as_bytes(v).decode(errors="replace"), ensure_ascii=False)
    try:
        type_name = tc.dtype_name(tc.tf_dtype(array))
    except ValueError:
        type_name = str(dt)
    raise invalid_argument(f"Failed to write JSON value for tensor type: {type_name}")


def _tensor_json(array: np.ndarray, name: str) -> str:
    write = _scalar_writer(array, name)

    def nested(a: np.ndarray) -> str:
        if a.ndim == 0:
            return str(write(a.item() if a.dtype.kind != "O" else a[()]))
        # a[i, ...] stays an array even for object dtype, unlike a[i].
        return "[" + ", ".join(nested(a[i, ...]) for i in range(a.shape[0])) + "]"

    return nested(array)


def predict_response(outputs: Mapping[str, np.ndarray], fmt: Format) -> str:
    """{"predictions": ...} (row) or {"outputs": ...} (columnar) for output tensors."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    arrays = {n: np.asarray(outputs[n]) for n in names}
    several = len(names) > 1
    if fmt is Format.COLUMNAR:
        if not several:
            return '{"outputs": ' + _tensor_json(arrays[names[0]], names[0]) + "}"
        body = ", ".join(json.dumps(n) + ": " + _tensor_json(arrays[n], n) for n in names)
        return '{"outputs": {' + body + "}}"
    batch = -1
    for n in names:
        if arrays[n].ndim == 0:
            raise invalid_argument(f"Tensor name: {n} has no shape information ")
        size = arrays[n].shape[0]
        if batch >= 0 and size != batch:
            raise invalid_argument(
                f"Tensor name: {n} has inconsistent batch size: {size} expecting: {batch}"
            )
        batch = size
    rows = []
    for i in range(batch):
        if several:
            rows.append("{" + ", ".join(
                json.dumps(n) + ": " + _tensor_json(arrays[n][i, ...], n) for n in names) + "}")
        else:
            rows.append(_tensor_json(arrays[names[0]][i, ...], names[0]))
    return '{"predictions": [' + ", ".join(rows) + "]}"


def classification_response(result: classification_pb2.ClassificationResult) -> str:
    if not result.classifications:
        raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
    rows = []
    for classifications in result.classifications:
        classes = ", ".join(
            "[" + json.dumps(c.label, ensure_ascii=False) + ", "
            + format_decimal(c.score, True) + "]"
            for c in classifications.classes
        )
        rows.append("[" + classes + "]")
    return '{"results": [' + ", ".join(rows) + "]}"


def regression_response(result: regression_pb2.RegressionResult) -> str:
    if not result.regressions:
        raise invalid_argument("Cannot convert empty RegressionResults to JSON")
    values = ", ".join(format_decimal(r.value, True) for r in result.regressions)
    return '{"results": [' + values + "]}"


def metadata_response(
    model: str, version: int, signature_defs: get_model_metadata_pb2.SignatureDefMap
) -> str:
    """GET .../metadata: {"model_spec": ..., "metadata": {"signature_def": ...}}."""
    spec = model_pb2.ModelSpec(name=model)
    spec.version.value = version
    opts: dict[str, Any] = {
        "preserving_proto_field_name": True,
        "always_print_fields_with_no_presence": True,
    }
    return (
        '{"model_spec": ' + json_format.MessageToJson(spec, **opts)
        + ', "metadata": {"signature_def": '
        + json_format.MessageToJson(signature_defs, **opts) + "}}"
    )


def error_body(message: str) -> str:
    return json.dumps({"error": message})
