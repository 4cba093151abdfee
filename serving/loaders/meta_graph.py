"""What a SavedModel declares, read from saved_model.pb without executing it.

The MetaGraphDef whose tag set matches the requested tags (TF Serving's
rule: the same set, not a superset), its SignatureDefs as neutral
`Signature`s, the SignatureDefMap GetModelMetadata returns, and whether it
is a TF2 SavedModel (an object graph) or a TF1 one (graph and Session only).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from serving.core.status import Code, ServingError
from serving.loaders.base import Signature, TensorInfo
from serving.loaders.options import SERVE_TAG


def _tensor_info(proto: meta_graph_pb2.TensorInfo) -> TensorInfo:
    shape: tuple[int, ...] | None
    if proto.tensor_shape.unknown_rank:
        shape = None
    else:
        shape = tuple(int(dim.size) for dim in proto.tensor_shape.dim)
    return TensorInfo(name=proto.name, dtype=int(proto.dtype), shape=shape)


def read_meta_graph(
    export_dir: str, tags: Iterable[str] = (SERVE_TAG,)
) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraphDef tagged with exactly `tags`, or TensorFlow's NOT_FOUND."""
    wanted = frozenset(tags)
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(Path(export_dir, "saved_model.pb").read_bytes())
    for meta_graph in saved.meta_graphs:
        if frozenset(meta_graph.meta_info_def.tags) == wanted:
            return meta_graph
    raise ServingError(
        Code.NOT_FOUND,
        f"Could not find meta graph def matching supplied tags: {{ {' '.join(sorted(wanted))} }}."
        f" To inspect available tag-sets in the SavedModel, please use the SavedModel CLI: "
        f"`saved_model_cli`",
    )


def is_tf2(meta_graph: meta_graph_pb2.MetaGraphDef) -> bool:
    """tf.saved_model.save writes an object graph; SavedModelBuilder and
    Estimator exports (TF1) have only the graph, run through a Session."""
    return len(meta_graph.object_graph_def.nodes) > 0


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


def retained(meta_graph: meta_graph_pb2.MetaGraphDef,
             remove_unused_fields: bool) -> meta_graph_pb2.MetaGraphDef:
    """What a loaded version keeps of its MetaGraphDef for its lifetime.

    With --remove_unused_fields_from_bundle_metagraph (TF Serving's default),
    only the SignatureDefs: metadata is all a loaded version reads from it,
    and the GraphDef can be megabytes per version. A fresh message, so the
    parsed SavedModel it came from can be freed.
    """
    if not remove_unused_fields:
        return meta_graph
    kept = meta_graph_pb2.MetaGraphDef()
    for key, sig in meta_graph.signature_def.items():
        kept.signature_def[key].CopyFrom(sig)
    return kept


def signature_def_map(
    meta_graph: meta_graph_pb2.MetaGraphDef,
) -> get_model_metadata_pb2.SignatureDefMap:
    result = get_model_metadata_pb2.SignatureDefMap()
    for key, sig in meta_graph.signature_def.items():
        result.signature_def[key].CopyFrom(sig)
    return result
