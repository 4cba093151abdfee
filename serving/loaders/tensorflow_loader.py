"""The `tensorflow` platform: load a SavedModel version and run its signatures.

Owns everything TensorFlow-specific about a model version: reading the
SignatureDefs from saved_model.pb, `tf.saved_model.load`, converting inputs to
the declared dtypes, mapping TensorFlow's runtime errors onto our error
taxonomy, and replaying TF Serving warmup records before the version is
declared AVAILABLE.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2,
    input_pb2,
    prediction_log_pb2,
)

from serving.core.status import Code, ServingError  # noqa: E402
from serving.example_results import serialized_examples  # noqa: E402
from serving.loaders.base import Signature, TensorInfo  # noqa: E402

log = logging.getLogger(__name__)

SERVE_TAG = "serve"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# TF Serving refuses warmup files longer than this (servables/tensorflow/util).
MAX_WARMUP_RECORDS = 1000

# TensorFlow errors a bad request can cause, as opposed to server faults.
_REQUEST_ERRORS: dict[type[Exception], Code] = {
    tf.errors.InvalidArgumentError: Code.INVALID_ARGUMENT,
    tf.errors.OutOfRangeError: Code.OUT_OF_RANGE,
    tf.errors.FailedPreconditionError: Code.FAILED_PRECONDITION,
    tf.errors.ResourceExhaustedError: Code.RESOURCE_EXHAUSTED,
    tf.errors.UnimplementedError: Code.UNIMPLEMENTED,
}

# Eager execution prefixes runtime errors with where the node was defined; the
# client only needs the op's own message.
_GRAPH_ERROR_PREFIX = re.compile(
    r"^Graph execution error:\s*(Detected at node .*?\n(<stack traces unavailable>\n)?)?", re.S
)


def _clean_message(message: str) -> str:
    return _GRAPH_ERROR_PREFIX.sub("", message).strip()


def _tensor_info(proto: meta_graph_pb2.TensorInfo) -> TensorInfo:
    shape: tuple[int, ...] | None
    if proto.tensor_shape.unknown_rank:
        shape = None
    else:
        shape = tuple(int(dim.size) for dim in proto.tensor_shape.dim)
    return TensorInfo(name=proto.name, dtype=int(proto.dtype), shape=shape)


def read_meta_graph(export_dir: str) -> meta_graph_pb2.MetaGraphDef:
    """The `serve` MetaGraphDef from saved_model.pb (SignatureDefs live here)."""
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(Path(export_dir, "saved_model.pb").read_bytes())
    for meta_graph in saved.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ServingError(
        Code.NOT_FOUND,
        f"Could not find meta graph def matching supplied tags: {{ {SERVE_TAG} }}. "
        f"To inspect available tag-sets in the SavedModel, please use the SavedModel CLI: "
        f"`saved_model_cli`",
    )


def signatures_from_meta_graph(meta_graph: meta_graph_pb2.MetaGraphDef) -> dict[str, Signature]:
    """Every SignatureDef of the meta graph as a neutral `Signature`."""
    return {
        key: Signature(
            key=key,
            method_name=sig.method_name,
            inputs={alias: _tensor_info(info) for alias, info in sig.inputs.items()},
            outputs={alias: _tensor_info(info) for alias, info in sig.outputs.items()},
        )
        for key, sig in meta_graph.signature_def.items()
    }


class TensorFlowServable:
    """A loaded SavedModel version; thread-safe for concurrent `run` calls."""

    def __init__(self, export_dir: str) -> None:
        self.export_dir = export_dir
        self._meta_graph = read_meta_graph(export_dir)
        try:
            self._model = tf.saved_model.load(export_dir, tags=[SERVE_TAG])
        except (tf.errors.OpError, ValueError, OSError) as exc:
            raise ServingError(Code.INTERNAL, f"Failed to load SavedModel at {export_dir}: "
                               f"{_clean_message(str(exc))}") from exc
        self._functions: dict[str, Any] = dict(self._model.signatures)
        every = signatures_from_meta_graph(self._meta_graph)
        # Only signatures the loaded object can execute are servable; the
        # rest (e.g. __saved_model_init_op) stay visible in metadata only.
        self.signatures: Mapping[str, Signature] = {
            key: sig for key, sig in every.items() if key in self._functions
        }
        # Profiling showed the structured call (binding kwargs to the function
        # type, then flattening) costing more than the graph itself for small
        # models; bind once here and call the flat function per request.
        self._flat: dict[str, _FlatCall] = {}
        for key in self.signatures:
            flat = _FlatCall.of(self._functions[key], self.signatures[key])
            if flat is not None:
                self._flat[key] = flat

    def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap:
        result = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in self._meta_graph.signature_def.items():
            result.signature_def[key].CopyFrom(sig)
        return result

    def run(
        self,
        signature_key: str,
        inputs: Mapping[str, numpy.ndarray],
        output_keys: Sequence[str] | None = None,
    ) -> dict[str, numpy.ndarray]:
        signature = self.signatures.get(signature_key)
        if signature is None:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"Serving signature key \"{signature_key}\" not found.",
            )
        feeds = self._feeds(signature, inputs)
        wanted = list(signature.outputs) if output_keys is None else list(output_keys)
        for key in wanted:
            if key not in signature.outputs:
                raise ServingError(
                    Code.INVALID_ARGUMENT, f"output tensor alias not found in signature: {key}"
                )
        flat = self._flat.get(signature_key)
        try:
            if flat is not None:
                results = flat(feeds)
            else:
                results = self._functions[signature_key](**feeds)
        except tf.errors.OpError as exc:
            code = next(
                (c for cls, c in _REQUEST_ERRORS.items() if isinstance(exc, cls)), Code.INTERNAL
            )
            raise ServingError(code, _clean_message(exc.message)) from exc
        return {key: results[key].numpy() for key in wanted}

    def _feeds(self, signature: Signature, inputs: Mapping[str, numpy.ndarray]) -> dict[str, Any]:
        missing = sorted(set(signature.inputs) - set(inputs))
        extra = sorted(set(inputs) - set(signature.inputs))
        if missing or extra:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"input size does not match signature: {len(inputs)}!={len(signature.inputs)} "
                f"len({{{', '.join(sorted(inputs))}}}) != "
                f"len({{{', '.join(sorted(signature.inputs))}}}). "
                f"Sent extra: {{{', '.join(extra)}}}. Missing but required: "
                f"{{{', '.join(missing)}}}.",
            )
        feeds: dict[str, Any] = {}
        for alias, value in inputs.items():
            dtype = tf.dtypes.as_dtype(signature.inputs[alias].dtype)
            try:
                feeds[alias] = tf.convert_to_tensor(value, dtype=dtype)
            except (TypeError, ValueError, tf.errors.OpError) as exc:
                raise ServingError(
                    Code.INVALID_ARGUMENT,
                    f"Expects arg[{alias}] to be {dtype.name} but got {value!r:.80}: {exc}",
                ) from exc
        return feeds

    def close(self) -> None:
        # Dropping the references lets Python and TF free the graph and variables.
        self._functions.clear()
        self._flat.clear()
        self._model = None


class _FlatCall:
    """A signature function called through its flat interface.

    `_arg_keywords` lists the aliases in the order of the function's flat
    inputs; the captured inputs (variable handles) stay valid as long as the
    model object lives, so they are read once. Shapes are not checked here,
    as TF Serving does not check them either: the graph's ops do.
    """

    def __init__(self, function: Any, order: list[str]) -> None:
        self._call_flat = function._call_flat
        self._captured = list(function.captured_inputs)
        self._order = order

    @classmethod
    def of(cls, function: Any, signature: Signature) -> _FlatCall | None:
        # A repeated proto field on loaded signatures, a list on traced ones.
        order = [str(alias) for alias in getattr(function, "_arg_keywords", None) or ()]
        if not hasattr(function, "_call_flat") or sorted(order) != sorted(signature.inputs):
            return None  # an unfamiliar function object: keep the structured call
        return cls(function, order)

    def __call__(self, feeds: Mapping[str, Any]) -> Any:
        return self._call_flat([feeds[alias] for alias in self._order], self._captured)


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


def run_warmup(servable: TensorFlowServable) -> int:
    """Replay assets.extra/tf_serving_warmup_requests; returns the record count."""
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
            servable.run(key, inputs)
    log.info("Finished reading warmup data for model at %s. Number of warmup records read: %d.",
             servable.export_dir, count)
    return count


class TensorFlowLoader:
    """Loads one SavedModel version directory (the core's `Loader` protocol)."""

    def __init__(self, export_dir: str) -> None:
        self.export_dir = export_dir
        self._servable: TensorFlowServable | None = None

    def load(self) -> TensorFlowServable:
        servable = TensorFlowServable(self.export_dir)
        try:
            run_warmup(servable)
        except ServingError:
            servable.close()
            raise
        self._servable = servable
        return servable

    def unload(self) -> None:
        if self._servable is not None:
            self._servable.close()
            self._servable = None
            _release_memory()


def _release_memory() -> None:
    """Give an unloaded model's memory back before the next load needs it.

    A loaded SavedModel's object graph has reference cycles, so its tensors
    are only freed by the cycle collector; and glibc only hands freed heap
    back for reuse by the next large load once trimmed. Measured
    (benchmarks/bench_memory.py): without both, a resource-preserving swap of
    a 100 MB model peaked at two models' worth of RSS, which is what that
    policy exists to avoid; with both, at one.
    """
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None  # absent on musl
    except OSError:
        return None


_LIBC = _load_libc()
