from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tensorflow.core.framework import tensor_pb2

from serving.core.status import Code, ServingError
from serving.tensor_codec import from_ndarray, parse_tensor, to_ndarray


def proto(dtype: int, shape: list[int], **fields: object) -> tensor_pb2.TensorProto:
    p = tensor_pb2.TensorProto(dtype=dtype, **fields)
    for d in shape:
        p.tensor_shape.dim.add().size = d
    return p


@given(hnp.arrays(st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.uint8,
                                   np.int8, np.bool_, np.uint64, np.float16]),
                  hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)))
def test_round_trip(array: np.ndarray) -> None:
    back = to_ndarray(from_ndarray(array))
    assert back is not None and back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_strings_are_object_arrays_of_bytes() -> None:
    back = to_ndarray(from_ndarray(np.array([b"a", "\u00e9"], dtype=object)))
    assert back is not None and back.tolist() == [b"a", "\u00e9".encode()]


def test_short_value_list_repeats_last_and_empty_means_zeros() -> None:
    assert parse_tensor(proto(1, [3], float_val=[1.0, 2.0]), 'x').tolist() == [1.0, 2.0, 2.0]
    assert parse_tensor(proto(3, [2]), 'x').tolist() == [0, 0]


def test_tensor_content() -> None:
    raw = np.array([1.5, 2.5], np.float32).tobytes()
    assert parse_tensor(proto(1, [2], tensor_content=raw), 'x').tolist() == [1.5, 2.5]
    assert to_ndarray(proto(1, [3], tensor_content=raw)) is None


@pytest.mark.parametrize("bad", [
    proto(0, [1]),  # DT_INVALID
    proto(1, [-1], float_val=[1.0]),
    proto(1, [1 << 20, 1 << 20], float_val=[1.0]),  # refused, not allocated
])
def test_unparseable_is_tf_servings_error(bad: tensor_pb2.TensorProto) -> None:
    with pytest.raises(ServingError) as e:
        parse_tensor(bad, "x")
    assert e.value.code is Code.INVALID_ARGUMENT
    assert e.value.message == "tensor parsing error: x"
