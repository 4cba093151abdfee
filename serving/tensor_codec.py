"""TensorProto <-> numpy, with TensorFlow's parsing rules.

Decoding follows tensorflow::Tensor::FromProto: `tensor_content` must hold
exactly the shape's bytes; typed value fields may be shorter than the shape (an
empty field means zeros, a short one is padded with its last value); a bad
dtype or shape is a parse failure, reported as TF Serving does:
"tensor parsing error: <alias>". Encoding writes typed value fields (TF
Serving's default `AsProtoField`), or with `as_content` the raw little-endian
bytes in `tensor_content` (`--enable_serialization_as_tensor_content`, TF
Serving's `AsProtoTensorContent`); strings stay in `string_val` either way,
the one form every client (tf.make_ndarray included) decodes. DT_STRING is a
numpy object array of bytes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

from serving.core.status import invalid_argument

# tensorflow/core/framework/types.proto values.
DT_INVALID, DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT16, DT_INT8 = 0, 1, 2, 3, 4, 5, 6
DT_STRING, DT_COMPLEX64, DT_INT64, DT_BOOL = 7, 8, 9, 10
DT_BFLOAT16, DT_UINT16, DT_COMPLEX128, DT_HALF = 14, 17, 18, 19
DT_UINT32, DT_UINT64 = 22, 23

# A shape whose element count exceeds this is refused before allocating: a
# ten-byte proto must not make the server allocate terabytes.
MAX_ELEMENTS = 1 << 28

# dtype -> (numpy dtype, TensorProto repeated field holding its values).
_NUMERIC: dict[int, tuple[np.dtype, str]] = {
    DT_FLOAT: (np.dtype(np.float32), "float_val"),
    DT_DOUBLE: (np.dtype(np.float64), "double_val"),
    DT_INT32: (np.dtype(np.int32), "int_val"),
    DT_UINT8: (np.dtype(np.uint8), "int_val"),
    DT_INT16: (np.dtype(np.int16), "int_val"),
    DT_INT8: (np.dtype(np.int8), "int_val"),
    DT_UINT16: (np.dtype(np.uint16), "int_val"),
    DT_INT64: (np.dtype(np.int64), "int64_val"),
    DT_BOOL: (np.dtype(np.bool_), "bool_val"),
    DT_UINT32: (np.dtype(np.uint32), "uint32_val"),
    DT_UINT64: (np.dtype(np.uint64), "uint64_val"),
    DT_HALF: (np.dtype(np.float16), "half_val"),
    DT_COMPLEX64: (np.dtype(np.complex64), "scomplex_val"),
    DT_COMPLEX128: (np.dtype(np.complex128), "dcomplex_val"),
}

# TensorFlow's DataTypeString names, used in client-visible messages.
DTYPE_NAMES: dict[int, str] = {
    DT_INVALID: "invalid", DT_FLOAT: "float", DT_DOUBLE: "double", DT_INT32: "int32",
    DT_UINT8: "uint8", DT_INT16: "int16", DT_INT8: "int8", DT_STRING: "string",
    DT_COMPLEX64: "complex64", DT_INT64: "int64", DT_BOOL: "bool", DT_BFLOAT16: "bfloat16",
    DT_UINT16: "uint16", DT_COMPLEX128: "complex128", DT_HALF: "half",
    DT_UINT32: "uint32", DT_UINT64: "uint64",
}


def dtype_name(dtype: int) -> str:
    return DTYPE_NAMES.get(dtype, f"unknown dtype enum ({dtype})")


def numpy_dtype(dtype: int) -> np.dtype:
    """The numpy dtype for a TensorFlow DataType (object for DT_STRING)."""
    if dtype == DT_STRING:
        return np.dtype(object)
    if dtype in _NUMERIC:
        return _NUMERIC[dtype][0]
    raise ValueError(f"unsupported dtype {dtype_name(dtype)}")


def tf_dtype(array: np.ndarray) -> int:
    """The TensorFlow DataType of a numpy array."""
    if array.dtype.kind in "OSU":
        return DT_STRING
    for enum, (np_dtype, _) in _NUMERIC.items():
        if array.dtype == np_dtype:
            return enum
    raise ValueError(f"no TensorFlow dtype for numpy dtype {array.dtype}")


def _shape(proto: tensor_shape_pb2.TensorShapeProto) -> tuple[int, ...] | None:
    if proto.unknown_rank or any(d.size < 0 for d in proto.dim):
        return None
    return tuple(d.size for d in proto.dim)


def _typed_values(proto: tensor_pb2.TensorProto, dtype: int) -> np.ndarray:
    if dtype == DT_STRING:
        return np.array(list(proto.string_val), dtype=object)
    np_dtype, field = _NUMERIC[dtype]
    values = getattr(proto, field)
    if dtype == DT_HALF:  # half_val carries the float16 bit patterns
        return np.array(values, dtype=np.uint16).view(np.float16)
    if dtype in (DT_COMPLEX64, DT_COMPLEX128):  # interleaved real, imaginary
        flat = np.array(values, dtype=np_dtype.type(0).real.dtype)
        if flat.size % 2:
            flat = flat[:-1]
        return flat[0::2] + 1j * flat[1::2]
    return np.array(values).astype(np_dtype)


def to_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray | None:
    """The array a TensorProto holds, or None where TensorFlow would refuse it."""
    dtype = proto.dtype
    if dtype != DT_STRING and dtype not in _NUMERIC:
        return None
    shape = _shape(proto.tensor_shape)
    if shape is None:
        return None
    count = math.prod(shape)  # exact on Python ints, and far cheaper than np.prod here
    if count > MAX_ELEMENTS:
        return None
    if proto.tensor_content:
        if dtype == DT_STRING:
            return None
        np_dtype = _NUMERIC[dtype][0]
        if len(proto.tensor_content) != count * np_dtype.itemsize:
            return None
        return np.frombuffer(proto.tensor_content, dtype=np_dtype).reshape(shape).copy()
    values = _typed_values(proto, dtype)
    if count == 0:
        return np.empty(shape, dtype=numpy_dtype(dtype))
    if values.size == 0:
        filled = np.zeros(count, dtype=numpy_dtype(dtype))
        if dtype == DT_STRING:
            filled[:] = b""
        return filled.reshape(shape)
    if values.size >= count:
        return values[:count].reshape(shape)
    # Shorter than the shape: TensorFlow repeats the last value.
    pad = np.full(count - values.size, values[-1], dtype=values.dtype)
    return np.concatenate([values, pad]).reshape(shape)


def parse_tensor(proto: tensor_pb2.TensorProto, alias: str) -> np.ndarray:
    """Decode a request input, raising TF Serving's INVALID_ARGUMENT on failure."""
    array = to_ndarray(proto)
    if array is None:
        raise invalid_argument(f"tensor parsing error: {alias}")
    return array


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, np.bytes_ | np.str_):
        return _as_bytes(value.item())
    return str(value).encode()


def from_ndarray(array: np.ndarray, as_content: bool = False) -> tensor_pb2.TensorProto:
    """A TensorProto holding `array`: typed value fields, or `tensor_content`."""
    array = np.asarray(array)
    try:
        dtype = tf_dtype(array)
    except ValueError as e:
        raise invalid_argument(str(e)) from e
    proto = tensor_pb2.TensorProto(dtype=dtype)
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
    flat = array.reshape(-1)
    if dtype == DT_STRING:
        proto.string_val.extend(_as_bytes(v) for v in flat)
        return proto
    np_dtype, field = _NUMERIC[dtype]
    if as_content:
        proto.tensor_content = np.ascontiguousarray(flat, dtype=np_dtype.newbyteorder("<")
                                                    ).tobytes()
        return proto
    if dtype == DT_HALF:
        values: list[Any] = flat.view(np.uint16).tolist()
    elif dtype in (DT_COMPLEX64, DT_COMPLEX128):
        values = np.stack([flat.real, flat.imag], axis=-1).reshape(-1).tolist()
    else:
        values = flat.tolist()
    getattr(proto, field).extend(values)
    return proto
