"""TF Serving's model warmup: replay assets.extra/tf_serving_warmup_requests.

Before a version is declared AVAILABLE, each PredictionLog record in that
TFRecord file (predict, classify, regress, multi-inference) is run against
the servable, `iterations` times (`--num_request_iterations_for_warmup`), so
the first real request does not pay for lazy initialisation. A failing record
fails the load. Works on any servable with `export_dir`, `signatures`, `run`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy
import tensorflow as tf
from tensorflow_serving.apis import input_pb2, prediction_log_pb2

from serving.core.status import Code, ServingError
from serving.example_results import serialized_examples

log = logging.getLogger(__name__)

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# TF Serving refuses warmup files longer than this (servables/tensorflow/util).
MAX_WARMUP_RECORDS = 1000


def warmup_runs(
    signatures: Mapping[str, Any], record: prediction_log_pb2.PredictionLog
) -> list[tuple[str, dict[str, numpy.ndarray]]]:
    """The signature calls one warmup record asks for (TF Serving's warmup_util:
    predict, classify, regress and multi-inference logs)."""
    kind = record.WhichOneof("log_type")
    if kind == "predict_log":
        request = record.predict_log.request
        key = request.model_spec.signature_name or "serving_default"
        return [(key, {alias: tf.make_ndarray(proto) for alias, proto in request.inputs.items()})]

    def examples_call(key: str, inp: input_pb2.Input) -> tuple[str, dict[str, numpy.ndarray]]:
        signature = signatures.get(key)
        alias = next(iter(signature.inputs)) if signature is not None else "inputs"
        return key, {alias: serialized_examples(inp)}

    if kind in ("classify_log", "regress_log"):
        request = getattr(record, kind).request
        return [examples_call(request.model_spec.signature_name or "serving_default",
                              request.input)]
    if kind == "multi_inference_log":
        request = record.multi_inference_log.request
        return [examples_call(task.model_spec.signature_name or "serving_default", request.input)
                for task in request.tasks]
    raise ServingError(Code.UNIMPLEMENTED, f"Unsupported log_type for warmup: {kind}")


def run_warmup(servable: Any, iterations: int = 1) -> int:
    """Replay the warmup file `iterations` times per record; returns the record count."""
    path = os.path.join(servable.export_dir, WARMUP_FILE)
    if not os.path.exists(path):
        return 0
    count = 0
    for raw in tf.data.TFRecordDataset(path):
        count += 1
        if count > MAX_WARMUP_RECORDS:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}",
            )
        record = prediction_log_pb2.PredictionLog()
        record.ParseFromString(raw.numpy())
        for key, inputs in warmup_runs(servable.signatures, record):
            for _ in range(max(iterations, 1)):
                servable.run(key, inputs)
    log.info("Finished reading warmup data for model at %s. Number of warmup records read: %d.",
             servable.export_dir, count)
    return count
