"""The `tensorflow` platform: load a SavedModel version and run its signatures.

Every version runs as TF Serving runs it, in its own graph and Session
(session_servable), TF1 and TF2 SavedModels alike. A TF2 SavedModel (an
object graph, written by `tf.saved_model.save`) that a Session cannot load
falls back to `tf.saved_model.load` and its signature functions, here, and
the log says why. Either way the version is warmed up (warmup) before it is
declared AVAILABLE, and TensorFlow's runtime errors map the same way
(tf_errors).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import meta_graph_pb2  # noqa: E402
from tensorflow_serving.apis import get_model_metadata_pb2  # noqa: E402

from serving.core.status import Code, ServingError  # noqa: E402
from serving.loaders.base import Signature, check_input_names  # noqa: E402
from serving.loaders.meta_graph import (  # noqa: E402
    is_tf2,
    read_meta_graph,
    retained,
    signature_def_map,
    signatures_from_meta_graph,
)
from serving.loaders.options import DEFAULT_OPTIONS, SavedModelOptions  # noqa: E402
from serving.loaders.session_servable import SessionServable  # noqa: E402
from serving.loaders.tf_errors import clean_message, serving_error  # noqa: E402
from serving.loaders.warmup import run_warmup  # noqa: E402

log = logging.getLogger(__name__)


class TensorFlowServable:
    """A loaded SavedModel version; thread-safe for concurrent `run` calls."""

    def __init__(self, export_dir: str,
                 meta_graph: meta_graph_pb2.MetaGraphDef | None = None,
                 options: SavedModelOptions = DEFAULT_OPTIONS) -> None:
        self.export_dir = export_dir
        self._meta_graph = meta_graph or read_meta_graph(export_dir, options.tags)
        try:
            self._model = tf.saved_model.load(export_dir, tags=sorted(options.tags))
        except (tf.errors.OpError, ValueError, OSError) as exc:
            raise ServingError(Code.INTERNAL, f"Failed to load SavedModel at {export_dir}: "
                               f"{clean_message(str(exc))}") from exc
        self._functions: dict[str, Any] = dict(self._model.signatures)
        every = signatures_from_meta_graph(self._meta_graph)
        # Only signatures the loaded object can execute are servable; the
        # rest (e.g. __saved_model_init_op) stay visible in metadata only.
        self.signatures: Mapping[str, Signature] = {
            key: sig for key, sig in every.items() if key in self._functions
        }
        self._meta_graph = retained(self._meta_graph, options.remove_unused_meta_graph_fields)
        # Profiling showed the structured call (binding kwargs to the function
        # type, then flattening) costing more than the graph itself for small
        # models; bind once here and call the flat function per request.
        self._flat: dict[str, _FlatCall] = {}
        for key in self.signatures:
            flat = _FlatCall.of(self._functions[key], self.signatures[key])
            if flat is not None:
                self._flat[key] = flat

    @property
    def meta_graph(self) -> meta_graph_pb2.MetaGraphDef:
        """What this version keeps of its MetaGraphDef (meta_graph.retained)."""
        return self._meta_graph

    def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap:
        return signature_def_map(self._meta_graph)

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
            raise serving_error(exc) from exc
        return {key: results[key].numpy() for key in wanted}

    def _feeds(self, signature: Signature, inputs: Mapping[str, numpy.ndarray]) -> dict[str, Any]:
        check_input_names(signature, inputs)
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


def load_servable(
    export_dir: str, options: SavedModelOptions = DEFAULT_OPTIONS
) -> TensorFlowServable | SessionServable:
    """The version at `export_dir` in a Session; a TF2 SavedModel the Session
    path refuses, through its object graph instead."""
    meta_graph = read_meta_graph(export_dir, options.tags)
    try:
        return SessionServable(export_dir, meta_graph, options)
    except ServingError as exc:
        if not is_tf2(meta_graph):
            raise
        log.warning("SavedModel at %s does not load in a Session (%s); serving it through "
                    "tf.saved_model.load", export_dir, exc.message)
    return TensorFlowServable(export_dir, meta_graph, options)


class TensorFlowLoader:
    """Loads one SavedModel version directory (the core's `Loader` protocol)."""

    def __init__(self, export_dir: str, options: SavedModelOptions = DEFAULT_OPTIONS) -> None:
        self.export_dir = export_dir
        self.options = options
        self._servable: TensorFlowServable | SessionServable | None = None

    def load(self) -> TensorFlowServable | SessionServable:
        servable = load_servable(self.export_dir, self.options)
        if self.options.enable_warmup:
            try:
                run_warmup(servable, self.options.warmup_iterations)
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
