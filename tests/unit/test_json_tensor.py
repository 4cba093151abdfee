from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tensorflow_serving.apis import classification_pb2, regression_pb2

from serving.core.status import Code, ServingError
from serving.rest import json_response as jr
from serving.rest import json_tensor as jt
from tests.unit.dataplane_fakes import DT_FLOAT, DT_STRING, TensorInfo

X = {"x": TensorInfo("x:0", DT_FLOAT, (-1,))}


def err(fn: object, *args: object) -> ServingError:
    with pytest.raises(ServingError) as e:
        fn(*args)  # type: ignore[operator]
    return e.value


def test_row_and_columnar_inputs() -> None:
    t, f = jt.predict_inputs({"instances": [2.0, 3.0, 4.0]}, X)
    assert f is jt.Format.ROW and t["x"].dtype == np.float32 and t["x"].tolist() == [2, 3, 4]
    t, f = jt.predict_inputs({"inputs": [[1, 2], [3, 4]]}, X)
    assert f is jt.Format.COLUMNAR and t["x"].shape == (2, 2)


def test_named_instances_and_b64() -> None:
    infos = {"a": TensorInfo("a", DT_FLOAT, None), "s_bytes": TensorInfo("s", DT_STRING, None)}
    t, _ = jt.predict_inputs(
        {"instances": [{"a": 1.0, "s_bytes": {"b64": "aGk="}}, {"a": 2, "s_bytes": "x"}]}, infos)
    assert t["a"].tolist() == [1.0, 2.0] and t["s_bytes"].tolist() == [b"hi", b"x"]


@pytest.mark.parametrize("doc, message", [
    ({"instances": [1.0, "a"]},
     "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value:"
     ' "a" Type: String is not of expected type: float'),
    ({"instances": [[1.0], [1.0, 2.0]]},
     "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT:"
     " Expecting tensor size: 1 but got: 2"),
    ({"inputs": [[1.0], [1.0, 2.0]]},
     "Encountered list at unexpected size: 2 at level: 1 expected size: 1"),
    ({"instances": []}, 'JSON Value: {\n    "instances": []\n} No values in \'instances\' array'),
    ({"x": 1}, "Missing 'inputs' or 'instances' key"),
])
def test_predict_input_errors(doc: dict, message: str) -> None:
    e = err(jt.predict_inputs, doc, X)
    assert e.code is Code.INVALID_ARGUMENT and e.message == message


def test_parse_errors_are_invalid_argument() -> None:
    assert err(jt.parse_json, b"").message == "JSON Parse error: The document is empty"
    assert err(jt.parse_json, b"{").message.startswith("JSON Parse error: ")
    assert err(jt.parse_json, b"[1]").message == "JSON Value: [1] Is not object"
    assert err(jt.parse_json, b"\xff").code is Code.INVALID_ARGUMENT
    assert err(jt.parse_json, b"[" * 100_000).code is Code.INVALID_ARGUMENT
    assert jt.parse_json(b'{"a": 1} trailing') == {"a": 1}  # rapidjson stops when done


def test_bad_base64() -> None:
    infos = {"s": TensorInfo("s", DT_STRING, None)}
    assert err(jt.predict_inputs, {"inputs": {"b64": "!!"}}, infos).message == (
        "Unable to base64 decode")


def test_output_formats() -> None:
    y = {"y": np.array([3.0, 3.5, 4.0], np.float32)}
    assert json.loads(jr.predict_response(y, jt.Format.ROW)) == {"predictions": [3.0, 3.5, 4.0]}
    assert json.loads(jr.predict_response(y, jt.Format.COLUMNAR)) == {"outputs": [3.0, 3.5, 4.0]}
    two = {"a": np.array([1, 2], np.int32), "b_bytes": np.array([b"hi", b"x"], dtype=object)}
    assert json.loads(jr.predict_response(two, jt.Format.ROW)) == {"predictions": [
        {"a": 1, "b_bytes": {"b64": "aGk="}}, {"a": 2, "b_bytes": {"b64": "eA=="}}]}
    assert jr.predict_response({"y": np.array([0.1, 2], np.float32)}, jt.Format.COLUMNAR) == (
        '{"outputs": [0.1, 2.0]}')


def test_examples_and_results() -> None:
    inp = jt.examples_input({"context": {"c": 1}, "examples": [{"x": 2.0, "s": "a"}]})
    ex = inp.example_list_with_context.examples[0]
    assert ex.features.feature["x"].float_list.value == [2.0]
    e = err(jt.examples_input, {"examples": [{"x": [1, "a"]}]})
    assert e.message == "Unexpected element type in feature: x expecting type: int64"
    c = classification_pb2.ClassificationResult()
    c.classifications.add().classes.add(label="", score=3.0)
    assert json.loads(jr.classification_response(c)) == {"results": [[["", 3.0]]]}
    r = regression_pb2.RegressionResult()
    r.regressions.add(value=3.0)
    assert json.loads(jr.regression_response(r)) == {"results": [3.0]}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=5), json_values, max_size=4))
def test_the_fast_parser_reads_what_the_stdlib_reads(doc: dict) -> None:
    body = json.dumps(doc).encode()
    assert jt.parse_json(body) == json.loads(body)


def test_what_the_fast_parser_refuses_still_parses_as_before() -> None:
    assert jt.parse_json(b'{"x": NaN, "y": Infinity}')["y"] == float("inf")
    assert jt.parse_json(b'{"x": "\\ud800"}') == {"x": "\ud800"}  # a lone surrogate
    # Beyond 64 bits an integer is a double, as in rapidjson.
    assert jt.parse_json(b'{"x": 18446744073709551616}') == {"x": 18446744073709551616.0}
