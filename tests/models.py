"""Real SavedModels for tests, shaped like TF Serving's half_plus_two testdata.

`make_half_plus_two` writes `<base>/<version>` with the three signatures of
tensorflow_serving/servables/tensorflow/testdata/saved_model_half_plus_two_cpu:
`serving_default` (predict, x -> y), `classify_x_to_y` (tf.Example strings ->
scores) and `regress_x_to_y` (tf.Example strings -> outputs), all computing
y = 0.5 * x + offset. Knobs make a version slow, failing, or warmed up.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402
from tensorflow.python.data.experimental.ops import testing as data_testing  # noqa: E402

PREDICT = "tensorflow/serving/predict"
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"


class _HalfPlus(tf.Module):
    def __init__(self, offset: float, slow_seconds: float, fail_above: float | None) -> None:
        super().__init__()
        # Variables, like the testdata model, so loading restores a checkpoint.
        self.a = tf.Variable(0.5, name="a")
        self.b = tf.Variable(offset, name="b")
        self._slow_micros = int(slow_seconds * 1_000_000)
        self._fail_above = fail_above

    def _compute(self, x: tf.Tensor) -> tf.Tensor:
        checks = []
        if self._fail_above is not None:
            checks.append(
                tf.debugging.assert_less(
                    x, tf.constant(self._fail_above, tf.float32),
                    message=f"x must be below {self._fail_above}",
                )
            )
        if self._slow_micros > 0:
            # A graph-serializable sleep (tf.py_function would not survive a
            # reload in another process): a one-element dataset that sleeps.
            slept = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).apply(
                data_testing.sleep(self._slow_micros)
            ).reduce(tf.constant(0, tf.int64), lambda acc, v: acc + v)
            checks.append(slept)
        with tf.control_dependencies(checks):
            return tf.add(tf.multiply(self.a, x), self.b)

    def _parse(self, serialized: tf.Tensor) -> tf.Tensor:
        features = {"x": tf.io.FixedLenFeature([1], tf.float32)}
        return tf.io.parse_example(serialized, features)["x"]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def predict(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": self._compute(x)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def predict_two(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": self._compute(x), "double": tf.multiply(x, 2.0)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"scores": self._compute(self._parse(inputs))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"outputs": self._compute(self._parse(inputs))}


_METHODS = {"serving_default": PREDICT, "classify_x_to_y": CLASSIFY, "regress_x_to_y": REGRESS}


def _set_method_names(export_dir: Path) -> None:
    # tf.saved_model.save marks every signature as predict; TF Serving's
    # classify/regress APIs need the method names the testdata model carries.
    pb_path = export_dir / "saved_model.pb"
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(pb_path.read_bytes())
    for meta_graph in saved.meta_graphs:
        for key, method in _METHODS.items():
            if key in meta_graph.signature_def:
                meta_graph.signature_def[key].method_name = method
    pb_path.write_bytes(saved.SerializeToString())


WARMUP_RECORDS = 4  # one of each kind TF Serving replays


def _write_warmup(export_dir: Path, model_name: str) -> None:
    """One warmup record of each kind: predict, classify, regress, multi-inference."""
    from tensorflow_serving.apis import (
        classification_pb2,
        inference_pb2,
        input_pb2,
        predict_pb2,
        prediction_log_pb2,
        regression_pb2,
    )

    def examples() -> input_pb2.Input:
        inp = input_pb2.Input()
        example = inp.example_list.examples.add()
        example.features.feature["x"].float_list.value.append(1.0)
        return inp

    predict = predict_pb2.PredictRequest()
    predict.model_spec.name = model_name
    predict.model_spec.signature_name = "serving_default"
    predict.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0, 2.0], tf.float32))
    classify = classification_pb2.ClassificationRequest(input=examples())
    classify.model_spec.signature_name = "classify_x_to_y"
    regress = regression_pb2.RegressionRequest(input=examples())
    regress.model_spec.signature_name = "regress_x_to_y"
    multi = inference_pb2.MultiInferenceRequest(input=examples())
    for signature in ("classify_x_to_y", "regress_x_to_y"):
        multi.tasks.add().model_spec.signature_name = signature
    logs = [
        prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=predict)),
        prediction_log_pb2.PredictionLog(
            classify_log=prediction_log_pb2.ClassifyLog(request=classify)),
        prediction_log_pb2.PredictionLog(
            regress_log=prediction_log_pb2.RegressLog(request=regress)),
        prediction_log_pb2.PredictionLog(
            multi_inference_log=prediction_log_pb2.MultiInferenceLog(request=multi)),
    ]
    assert len(logs) == WARMUP_RECORDS
    extra = export_dir / "assets.extra"
    extra.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(extra / "tf_serving_warmup_requests")) as writer:
        for log in logs:
            writer.write(log.SerializeToString())


def make_half_plus_two(
    base: Path,
    version: int,
    *,
    offset: float = 2.0,
    slow_seconds: float = 0.0,
    fail_above: float | None = None,
    warmup: bool = False,
    two_outputs: bool = False,
) -> Path:
    """Write a half_plus_<offset> SavedModel at base/<version> and return that path.

    `two_outputs` adds a "two_outputs" predict signature: y and double (2x)."""
    export_dir = Path(base) / str(version)
    module = _HalfPlus(offset, slow_seconds, fail_above)
    signatures = {
        "serving_default": module.predict.get_concrete_function(),
        "classify_x_to_y": module.classify.get_concrete_function(),
        "regress_x_to_y": module.regress.get_concrete_function(),
    }
    if two_outputs:
        signatures["two_outputs"] = module.predict_two.get_concrete_function()
    tf.saved_model.save(module, str(export_dir), signatures=signatures)
    _set_method_names(export_dir)
    if warmup:
        _write_warmup(export_dir, Path(base).name)
    return export_dir
