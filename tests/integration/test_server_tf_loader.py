"""The TensorFlow loader on real SavedModels: signatures, run, error mapping, warmup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy
import pytest

from serving.core.status import Code, ServingError
from serving.loaders.registry import PlatformRegistry
from serving.loaders.tensorflow_loader import TensorFlowServable
from serving.loaders.warmup import run_warmup, warmup_runs
from tests.models import WARMUP_RECORDS

pytestmark = pytest.mark.integration


def example(x: float) -> bytes:
    import tensorflow as tf

    feature = tf.train.Feature(float_list=tf.train.FloatList(value=[x]))
    return tf.train.Example(
        features=tf.train.Features(feature={"x": feature})
    ).SerializeToString()


def test_half_plus_two_signatures_and_run(tmp_path: Path, make_model: Any) -> None:
    path = make_model(tmp_path / "hp", 1, warmup=True)
    loader = PlatformRegistry().factory("hp", "tensorflow")(str(path))
    servable: Any = loader.load()
    try:
        sigs = servable.signatures
        assert sigs["serving_default"].method_name == "tensorflow/serving/predict"
        assert sigs["classify_x_to_y"].method_name == "tensorflow/serving/classify"
        assert sigs["regress_x_to_y"].method_name == "tensorflow/serving/regress"
        assert sigs["serving_default"].inputs["x"].shape == (-1,)
        assert sigs["serving_default"].inputs["x"].dtype == 1  # DT_FLOAT
        y = servable.run("serving_default", {"x": numpy.array([2.0, 3.0, 4.0])})["y"]
        assert y.tolist() == [3.0, 3.5, 4.0]
        scores = servable.run("classify_x_to_y", {"inputs": numpy.array([example(2.0)])})
        assert scores["scores"].tolist() == [[3.0]]
        outputs = servable.run("regress_x_to_y", {"inputs": numpy.array([example(2.0)])})
        assert outputs["outputs"].tolist() == [[3.0]]
        metadata = servable.signature_def_map()
        assert metadata.signature_def["serving_default"].outputs["y"].dtype == 1
        with pytest.raises(ServingError) as err:
            servable.run("serving_default", {"x": numpy.array(["a"])})
        assert err.value.code is Code.INVALID_ARGUMENT
    finally:
        loader.unload()


def test_runtime_assertion_is_invalid_argument(tmp_path: Path, make_model: Any) -> None:
    path = make_model(tmp_path / "f", 1, fail_above=10.0)
    loader = PlatformRegistry().factory("f", "tensorflow")(str(path))
    servable: Any = loader.load()
    with pytest.raises(ServingError) as err:
        servable.run("serving_default", {"x": numpy.array([20.0])})
    assert err.value.code is Code.INVALID_ARGUMENT
    assert "x must be below 10.0" in err.value.message
    assert not err.value.message.startswith("Graph execution error")
    loader.unload()


def test_warmup_replays_every_kind_of_record(tmp_path: Path, make_model: Any) -> None:
    path = make_model(tmp_path / "hp", 1, warmup=True)
    servable = TensorFlowServable(str(path))
    calls: list[tuple[str, list[str]]] = []
    real_run = servable.run

    def spy(key: str, inputs: Any, output_keys: Any = None) -> Any:
        calls.append((key, sorted(inputs)))
        return real_run(key, inputs, output_keys)

    servable.run = spy  # type: ignore[method-assign,assignment]
    try:
        assert run_warmup(servable) == WARMUP_RECORDS
    finally:
        servable.close()
    assert calls == [
        ("serving_default", ["x"]),
        ("classify_x_to_y", ["inputs"]),
        ("regress_x_to_y", ["inputs"]),
        ("classify_x_to_y", ["inputs"]), ("regress_x_to_y", ["inputs"]),  # multi-inference
    ]


def test_warmup_record_of_an_unknown_kind_is_unimplemented() -> None:
    from tensorflow_serving.apis import prediction_log_pb2

    record = prediction_log_pb2.PredictionLog()
    record.session_run_log.SetInParent()
    with pytest.raises(ServingError) as err:
        warmup_runs({}, record)
    assert (err.value.code, err.value.message) == (
        Code.UNIMPLEMENTED, "Unsupported log_type for warmup: session_run_log")


def test_failing_warmup_fails_the_load(tmp_path: Path, make_model: Any) -> None:
    path = make_model(tmp_path / "w", 1, fail_above=0.5, warmup=True)
    loader = PlatformRegistry().factory("w", "tensorflow")(str(path))
    with pytest.raises(ServingError) as err:
        loader.load()
    assert err.value.code is Code.INVALID_ARGUMENT


def test_unknown_platform() -> None:
    with pytest.raises(ServingError) as err:
        PlatformRegistry().factory("m", "onnx")
    assert (err.value.code, err.value.message) == (
        Code.INVALID_ARGUMENT, "Model m requests unsupported platform onnx"
    )
