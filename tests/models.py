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
from tensorflow.core.framework import types_pb2  # noqa: E402
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


# ------------------------------------------------------------ TF1 SavedModels

TF1_LABELS = ("low", "high")  # the asset file's lines: class label by index


def make_tf1_half_plus_two(
    base: Path,
    version: int,
    *,
    offset: float = 2.0,
    warmup: bool = False,
    legacy: bool = False,
) -> Path:
    """A TF1 SavedModel (SavedModelBuilder, graph mode, no object graph) at
    base/<version>, computing y = 0.5 * x + offset like make_half_plus_two.

    Placeholders `x` (float, [None]) and `tf_example` (serialized tf.Examples,
    parsed with tf.io.parse_example), variables a and b, and an asset file
    of class labels read by a table that the model's init op initializes:
    `classify_x_to_y` answers scores y and classes "high" when y > 3 else
    "low", so a wrong asset path or a skipped init op fails every classify.

    `legacy` writes the model as TF Serving's saved_model_half_plus_three
    was written by an old exporter: the init op under `legacy_init_op`; a
    GraphDef of producer version 21 whose tf.Example placeholder has an
    empty shape attr (then "any shape", now "a scalar"); the v1 ParseExample
    op; and Predict's input `x` the parsed feature (shape [None, 1], fed [N]
    by TF Serving's test) rather than a placeholder. TF2's loader prunes each
    signature into a function, re-creates that placeholder as a scalar and
    rejects the parse op ("Shape must be rank 1 but is rank 0"); a Session
    feeding by tensor name runs it. Its signatures also declare the
    tf.Example input without a shape and as DT_FLOAT, as half_plus_three's
    do.
    """
    export_dir = Path(base) / str(version)
    staging = Path(base) / f".tf1-assets-{version}"
    staging.mkdir(parents=True, exist_ok=True)
    labels_file = staging / "labels.txt"
    labels_file.write_text("".join(f"{label}\n" for label in TF1_LABELS))
    v1 = tf.compat.v1
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as session:
        serialized = v1.placeholder(tf.string, None, name="tf_example")
        a = v1.Variable(0.5, name="a")
        b = v1.Variable(offset, name="b")
        if legacy:
            # The v1 op old exporters wrote (its shape function wants a vector),
            # and x is the parsed feature, not a placeholder: Predict feeds x
            # and cuts the graph there, as Estimator exports are served.
            parsed = tf.raw_ops.ParseExample(
                serialized=serialized, names=tf.constant([], tf.string), sparse_keys=[],
                dense_keys=[tf.constant("x")], dense_defaults=[tf.constant([], tf.float32)],
                dense_shapes=[[1]], sparse_types=[]).dense_values[0]
            x = tf.identity(parsed, name="x")
            y = y_examples = tf.add(tf.multiply(a, x), b, name="y")
        else:
            x = v1.placeholder(tf.float32, [None], name="x")
            y = tf.add(tf.multiply(a, x), b, name="y")
            parsed = tf.io.parse_example(
                serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]
            y_examples = tf.add(tf.multiply(a, parsed), b, name="y_examples")
        asset = tf.constant(str(labels_file), name="labels_path")
        v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, asset)
        labels = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                asset, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
                tf.string, tf.lookup.TextFileIndex.WHOLE_LINE),
            default_value="unknown")
        classes = labels.lookup(tf.cast(y_examples > 3.0, tf.int64), name="classes")
        session.run(v1.global_variables_initializer())

        info = v1.saved_model.utils.build_tensor_info
        signatures = {
            "serving_default": v1.saved_model.signature_def_utils.build_signature_def(
                {"x": info(x)}, {"y": info(y)}, PREDICT),
            "classify_x_to_y": v1.saved_model.signature_def_utils.build_signature_def(
                {"inputs": info(serialized)},
                {"scores": info(y_examples), "classes": info(classes)}, CLASSIFY),
            "regress_x_to_y": v1.saved_model.signature_def_utils.build_signature_def(
                {"inputs": info(serialized)}, {"outputs": info(y_examples)}, REGRESS),
        }
        builder = v1.saved_model.Builder(str(export_dir))
        builder.add_meta_graph_and_variables(
            session, [tf.saved_model.SERVING], signature_def_map=signatures,
            assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
            main_op=v1.tables_initializer(), strip_default_attrs=True)
        builder.save()
    labels_file.unlink()
    staging.rmdir()
    if legacy:
        _as_legacy_export(export_dir)
    if warmup:
        _write_warmup(export_dir, Path(base).name)
    return export_dir


def _as_legacy_export(export_dir: Path) -> None:
    pb_path = export_dir / "saved_model.pb"
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(pb_path.read_bytes())
    for meta_graph in saved.meta_graphs:
        collections = meta_graph.collection_def
        collections["legacy_init_op"].CopyFrom(collections["saved_model_main_op"])
        del collections["saved_model_main_op"]
        # A graph from before GraphDef version 22, where a Placeholder's empty
        # shape attr meant "unknown" (now: a scalar). The graph importer reads
        # it by the producer version; TF2's function wrapping does not.
        meta_graph.graph_def.versions.producer = 21
        for node in meta_graph.graph_def.node:
            if node.name == "tf_example":
                node.attr["shape"].shape.Clear()
        # Its SignatureDefs recorded no shape (read today as a scalar, which
        # TF2's loader feeds into the parse op) and, as half_plus_three's do,
        # DT_FLOAT for the serialized-Example input: a Session feeds by name.
        for signature in meta_graph.signature_def.values():
            if "inputs" in signature.inputs:
                signature.inputs["inputs"].tensor_shape.Clear()
                signature.inputs["inputs"].dtype = types_pb2.DT_FLOAT
    pb_path.write_bytes(saved.SerializeToString())


# ------------------------------------------------------------ row-wise models (batching)

ROW_WIDTH = 4
MLP_IN, MLP_HIDDEN, MLP_OUT = 32, 64, 10


def _sleep(micros: int) -> tf.Tensor:
    """A graph-serializable sleep of `micros` (see _HalfPlus._compute)."""
    return tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).apply(
        data_testing.sleep(micros)).reduce(tf.constant(0, tf.int64), lambda acc, v: acc + v)


class _RowWise(tf.Module):
    """Each output row depends on every value of its own input row, and on no
    other row: y = x / sum(|x|) per row, top = argmax per row. A NaN fails the
    call (check_numerics), as a real model's input validation would."""

    def __init__(self, slow_seconds: float) -> None:
        super().__init__()
        self._slow_micros = int(slow_seconds * 1_000_000)

    def _rows(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        checks = [tf.debugging.check_numerics(x, "x has NaN or Inf values")]
        if self._slow_micros:
            checks.append(_sleep(self._slow_micros))
        with tf.control_dependencies(checks):
            y = x / tf.reduce_sum(tf.abs(x), axis=1, keepdims=True)
            return {"y": y, "top": tf.argmax(x, axis=1)}

    @tf.function(input_signature=[tf.TensorSpec([None, ROW_WIDTH], tf.float32, name="x")])
    def predict(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._rows(x)

    @tf.function(input_signature=[tf.TensorSpec([2, ROW_WIDTH], tf.float32, name="x")])
    def fixed(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._rows(x)


def make_rowwise(base: Path, version: int, *, slow_seconds: float = 0.0) -> Path:
    """A row-wise SavedModel (`_RowWise`) at base/<version>: `serving_default`
    takes x [None, 4] (batched opportunistically), `fixed` x [2, 4] (never)."""
    export_dir = Path(base) / str(version)
    module = _RowWise(slow_seconds)
    tf.saved_model.save(module, str(export_dir), signatures={
        "serving_default": module.predict.get_concrete_function(),
        "fixed": module.fixed.get_concrete_function()})
    return export_dir


class _Mlp(tf.Module):
    """x [None, 32] -> relu(x W1 + b1) W2 + b2 [None, 10], fixed random weights."""

    def __init__(self, slow_seconds: float) -> None:
        super().__init__()
        rng = tf.random.Generator.from_seed(7)
        self.w1 = tf.Variable(rng.normal([MLP_IN, MLP_HIDDEN]))
        self.b1 = tf.Variable(rng.normal([MLP_HIDDEN]))
        self.w2 = tf.Variable(rng.normal([MLP_HIDDEN, MLP_OUT]))
        self.b2 = tf.Variable(rng.normal([MLP_OUT]))
        self._slow_micros = int(slow_seconds * 1_000_000)

    @tf.function(input_signature=[tf.TensorSpec([None, MLP_IN], tf.float32, name="x")])
    def predict(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        checks = [_sleep(self._slow_micros)] if self._slow_micros else []
        with tf.control_dependencies(checks):
            hidden = tf.nn.relu(tf.matmul(x, self.w1) + self.b1)
            return {"logits": tf.matmul(hidden, self.w2) + self.b2}


def make_mlp(base: Path, version: int, *, slow_seconds: float = 0.0) -> Path:
    """A small MLP SavedModel (`_Mlp`) at base/<version>, batched opportunistically."""
    export_dir = Path(base) / str(version)
    module = _Mlp(slow_seconds)
    tf.saved_model.save(module, str(export_dir),
                        signatures={"serving_default": module.predict.get_concrete_function()})
    return export_dir
