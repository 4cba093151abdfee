"""SavedModels served the way TF Serving serves them: a graph and a Session.

Every SavedModel, TF1 (SavedModelBuilder, Estimator exports) or TF2
(`tf.saved_model.save`), is imported into its own `tf.Graph` and
`tf.compat.v1.Session` with the requested tags; the loader restores the
variables and runs the model's init op (`__saved_model_init_op`, `main_op`
or `legacy_init_op`: table initializers, asset paths). Each
signature runs through a Session callable built from the signature's tensor
names, which is TensorFlow's Session::MakeCallable: it feeds and fetches by
name without the Python-side feed shape checks of `Session.run`, so a graph
whose placeholders declare tighter shapes than its ops need (TF Serving's
`saved_model_half_plus_three`) answers as it does under TF Serving. The
graph is never traced into a TF2 function, whose shape inference rejects
such parse ops.

Unless the session settings name an inter-op thread count, a call's ops run
in the calling thread (`session_settings`): profiled, handing each call to
TensorFlow's inter-op pool and waiting for it cost more than half-plus-two's
whole graph, and requests already run in parallel on the server's threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
from tensorflow.python.util import deprecation
from tensorflow_serving.apis import get_model_metadata_pb2

from serving.core.status import Code, ServingError
from serving.loaders.base import Signature, check_input_names
from serving.loaders.meta_graph import retained, signature_def_map, signatures_from_meta_graph
from serving.loaders.options import DEFAULT_OPTIONS, SavedModelOptions
from serving.loaders.tf_errors import clean_message, serving_error

_Callable = Callable[..., list[numpy.ndarray]]

# A TF2 SavedModel's initializer, listed among its SignatureDefs; the loader
# runs it, and it stays visible in metadata, but it is not a signature to call.
INIT_OP_SIGNATURE_KEY = "__saved_model_init_op"


def session_settings(config: Any) -> config_pb2.ConfigProto:
    """The ConfigProto a version's Session is made with: `config` (None: the
    defaults) with an unset inter-op thread count (0: TensorFlow's choice) made
    -1, DirectSession's "run in the caller's thread". Measured (benchmarks/
    RESULTS.md): half_plus_two's call 9 us instead of 43, the MLP's 33 us
    instead of 85, and twice that saved when the pool's threads were asleep."""
    settings = config_pb2.ConfigProto()
    if config is not None:
        settings.CopyFrom(config)
    if settings.inter_op_parallelism_threads == 0:
        settings.inter_op_parallelism_threads = -1
    return settings


class SessionServable:
    """A loaded SavedModel version; thread-safe for concurrent `run` calls."""

    def __init__(self, export_dir: str, meta_graph: meta_graph_pb2.MetaGraphDef,
                 options: SavedModelOptions = DEFAULT_OPTIONS) -> None:
        self.export_dir = export_dir
        self._meta_graph = meta_graph
        self.session_config = options.session_config
        self._graph = tf.Graph()
        self._session: Any = tf.compat.v1.Session(
            graph=self._graph, config=session_settings(options.session_config))
        try:
            # silence(): the v1 loader is TF Serving's path, not a mistake to
            # warn about on every version's load.
            with self._graph.as_default(), deprecation.silence():
                # Imports the graph, restores variables, runs the init op
                # with the asset files' paths fed in.
                tf.compat.v1.saved_model.load(self._session, sorted(options.tags), export_dir)
        except (tf.errors.OpError, ValueError, OSError, RuntimeError, KeyError) as exc:
            self._session.close()
            raise ServingError(Code.INTERNAL, f"Failed to load SavedModel at {export_dir}: "
                               f"{clean_message(str(exc))}") from exc
        self.signatures: Mapping[str, Signature] = {
            key: sig for key, sig in signatures_from_meta_graph(meta_graph).items()
            if key != INIT_OP_SIGNATURE_KEY}
        self._meta_graph = retained(meta_graph, options.remove_unused_meta_graph_fields)
        self._lock = threading.Lock()
        # One callable per (signature, outputs); every signature's full output
        # list is built now so the first request does not pay for it, and a
        # signature naming tensors the graph lacks fails the load, not a call.
        self._callables: dict[tuple[str, tuple[str, ...]], _Callable] = {}
        # Feeds take the graph's own dtypes: a SignatureDef may declare another
        # (half_plus_three's tf.Example input says DT_FLOAT on a string
        # placeholder), and TF Serving feeds by tensor name regardless.
        self._feed_dtypes: dict[str, dict[str, Any]] = {}
        try:
            for key, signature in self.signatures.items():
                self._feed_dtypes[key] = {
                    alias: self._graph_dtype(key, info.name)
                    for alias, info in signature.inputs.items()}
                self._callable(key, tuple(signature.outputs))
        except ServingError:
            self.close()
            raise

    def _graph_dtype(self, key: str, tensor_name: str) -> Any:
        try:
            return self._graph.get_tensor_by_name(tensor_name).dtype
        except (KeyError, ValueError) as exc:
            raise ServingError(
                Code.INTERNAL,
                f"Signature {key} of the SavedModel at {self.export_dir} names tensor"
                f" {tensor_name}, which is not in its graph") from exc

    @property
    def meta_graph(self) -> meta_graph_pb2.MetaGraphDef:
        """What this version keeps of its MetaGraphDef (meta_graph.retained)."""
        return self._meta_graph

    def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap:
        return signature_def_map(self._meta_graph)

    def _callable(self, key: str, outputs: tuple[str, ...]) -> _Callable:
        found = self._callables.get((key, outputs))
        if found is not None:
            return found
        signature = self.signatures[key]
        options = config_pb2.CallableOptions(
            feed=[signature.inputs[alias].name for alias in sorted(signature.inputs)],
            fetch=[signature.outputs[alias].name for alias in outputs],
        )
        with self._lock:
            found = self._callables.get((key, outputs))
            if found is None:
                try:
                    # Session::MakeCallable; the public make_callable with a
                    # feed list goes through Session.run and its shape checks.
                    found = self._session._make_callable_from_options(options)
                except (tf.errors.OpError, ValueError, KeyError) as exc:
                    raise ServingError(
                        Code.INTERNAL,
                        f"Signature {key} of the SavedModel at {self.export_dir} cannot run:"
                        f" {clean_message(str(exc))}") from exc
                self._callables[(key, outputs)] = found
        return found

    def run(
        self,
        signature_key: str,
        inputs: Mapping[str, numpy.ndarray],
        output_keys: Sequence[str] | None = None,
    ) -> dict[str, numpy.ndarray]:
        signature = self.signatures.get(signature_key)
        if signature is None:
            raise ServingError(
                Code.INVALID_ARGUMENT, f"Serving signature key \"{signature_key}\" not found.")
        check_input_names(signature, inputs)
        wanted = tuple(signature.outputs) if output_keys is None else tuple(output_keys)
        for key in wanted:
            if key not in signature.outputs:
                raise ServingError(
                    Code.INVALID_ARGUMENT, f"output tensor alias not found in signature: {key}")
        dtypes = self._feed_dtypes[signature_key]
        feeds = [_as_dtype(alias, inputs[alias], dtypes[alias])
                 for alias in sorted(signature.inputs)]
        call = self._callable(signature_key, wanted)
        try:
            results = call(*feeds)
        except tf.errors.OpError as exc:
            raise serving_error(exc) from exc
        return dict(zip(wanted, results, strict=True))

    def close(self) -> None:
        self._callables.clear()
        self._session.close()
        self._graph = tf.Graph()


def _as_dtype(alias: str, value: numpy.ndarray, dtype: Any) -> numpy.ndarray:
    try:
        return numpy.asarray(value, dtype=dtype.as_numpy_dtype)
    except (TypeError, ValueError) as exc:
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"Expects arg[{alias}] to be {dtype.name} but got {value!r:.80}: {exc}",
        ) from exc
