"""The TensorFlow loader on real SavedModels: signatures, run, error mapping, warmup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy
import pytest

from serving.core.status import Code, ServingError
from serving.loaders.registry import PlatformRegistry

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
