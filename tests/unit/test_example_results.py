"""Tables for Classify/Regress post-processing: TF Serving's shapes, types and texts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import input_pb2

from serving.core.status import Code, ServingError
from serving.example_results import (
    classification_outputs,
    classification_result,
    regression_outputs,
    regression_result,
    serialized_examples,
)


@dataclass
class Sig:
    inputs: dict[str, Any] = field(default_factory=lambda: {"inputs": None})
    outputs: dict[str, Any] = field(default_factory=dict)


class NoServable:
    def signature_def_map(self) -> Any:
        raise RuntimeError("only decorates messages")


def error(call: Any) -> str:
    with pytest.raises(ServingError) as err:
        call()
    assert err.value.code == Code.INVALID_ARGUMENT
    return err.value.message


def test_classification_result_pairs_classes_with_scores() -> None:
    result = classification_result(
        {"classes": np.array([[b"a", b"b"]], dtype=object),
         "scores": np.array([[0.25, 0.75]], np.float32)}, 1)
    assert [(c.label, c.score) for c in result.classifications[0].classes] == [
        ("a", 0.25), ("b", 0.75)]
    only_scores = classification_result({"scores": np.array([[3.0]], np.float32)}, 1)
    assert [(c.label, c.score) for c in only_scores.classifications[0].classes] == [("", 3.0)]


@pytest.mark.parametrize(
    ("outputs", "n", "message"),
    [
        ({"scores": np.array([1.0], np.float32)}, 1,
         "Expected Tensor shape: [batch_size num_classes] but got [1]"),
        ({"scores": np.array([[1.0]], np.float64)}, 1,
         "Expected scores Tensor of DT_FLOAT. Got: DT_DOUBLE"),
        ({"classes": np.array([[1.0]], np.float32)}, 1,
         "Expected classes Tensor of DT_STRING. Got: DT_FLOAT"),
        ({"scores": np.array([[1.0]], np.float32)}, 2,
         "Expected scores output batch size of 2. Got: 1"),
        ({"classes": np.array([[b"a", b"b"]], dtype=object),
          "scores": np.array([[1.0]], np.float32)}, 1,
         "Tensors class and score should match in dim_size(1). Got 2 vs. 1"),
    ],
)
def test_classification_result_errors(outputs: dict[str, Any], n: int, message: str) -> None:
    assert error(lambda: classification_result(outputs, n)) == message


def test_regression_result_takes_batch_or_batch_by_one() -> None:
    for shape in ((2,), (2, 1)):
        values = np.array([1.5, 2.5], np.float32).reshape(shape)
        result = regression_result({"outputs": values}, 2)
        assert [r.value for r in result.regressions] == [1.5, 2.5]


@pytest.mark.parametrize(
    ("outputs", "n", "message"),
    [
        ({}, 1, "Could not find output tensor 'outputs'"),
        ({"outputs": np.zeros((1, 2), np.float32)}, 1,
         "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got [1,2]"),
        ({"outputs": np.zeros((2,), np.float32)}, 3,
         "Input batch size did not match output batch size: 3 vs. 2"),
        ({"outputs": np.zeros((1,), np.int64)}, 1,
         "Expected output Tensor of DT_FLOAT.  Got: DT_INT64"),
    ],
)
def test_regression_result_errors(outputs: dict[str, Any], n: int, message: str) -> None:
    assert error(lambda: regression_result(outputs, n)) == message


@pytest.mark.parametrize(
    ("sig", "message"),
    [
        (Sig(inputs={"a": 1, "b": 2}), "Expected one input Tensor."),
        (Sig(outputs={}), "Expected one or two output Tensors, found 0"),
        (Sig(inputs={"x": 1}, outputs={"scores": 1}),
         "No classification inputs found in SignatureDef: k"),
        (Sig(outputs={"y": 1}),
         'Expected classification signature outputs to contain at least one of "classes" or '
         '"scores". Signature was: k'),
    ],
)
def test_classification_signature_checks(sig: Sig, message: str) -> None:
    assert error(lambda: classification_outputs(NoServable(), "k", sig)) == message


def test_classification_fetches_what_the_signature_has() -> None:
    sig = Sig(outputs={"scores": 1, "classes": 2})
    assert classification_outputs(NoServable(), "k", sig) == ["classes", "scores"]


@pytest.mark.parametrize(
    ("sig", "message"),
    [
        (Sig(outputs={"outputs": 1, "b": 2}), "Expected one output Tensor."),
        (Sig(inputs={"x": 1}, outputs={"outputs": 1}),
         "No regression inputs found in SignatureDef: k"),
        (Sig(outputs={"y": 1}), "No regression outputs found in SignatureDef: k"),
    ],
)
def test_regression_signature_checks(sig: Sig, message: str) -> None:
    assert error(lambda: regression_outputs(NoServable(), "k", sig)) == message


def example(x: float) -> example_pb2.Example:
    return example_pb2.Example(features=feature_pb2.Features(feature={
        "x": feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[x]))}))


def test_serialized_examples_prepend_the_context() -> None:
    plain = input_pb2.Input()
    plain.example_list.examples.extend([example(1.0), example(2.0)])
    assert list(serialized_examples(plain)) == [example(1.0).SerializeToString(),
                                                example(2.0).SerializeToString()]
    with_context = input_pb2.Input()
    with_context.example_list_with_context.context.CopyFrom(example(9.0))
    with_context.example_list_with_context.examples.append(example(1.0))
    assert list(serialized_examples(with_context)) == [
        example(9.0).SerializeToString() + example(1.0).SerializeToString()]
    assert error(lambda: serialized_examples(input_pb2.Input())) == "Input is empty."
