"""How the `tensorflow` platform loads a SavedModel: tags, session config, warmup.

A plain value built from the command line (`--saved_model_tags`,
`--enable_model_warmup`, `--num_request_iterations_for_warmup`,
`--remove_unused_fields_from_bundle_metagraph`, the session config flags) and
handed to every TensorFlow loader. Imports no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

SERVE_TAG = "serve"


@dataclass(frozen=True)
class SavedModelOptions:
    # The meta graph whose tag set is exactly this one is loaded (TF Serving's rule).
    tags: frozenset[str] = frozenset({SERVE_TAG})
    # A tensorflow ConfigProto for TF1 Sessions; None: TensorFlow's defaults.
    session_config: object | None = None
    enable_warmup: bool = True
    # How many times each warmup record is replayed (TF Serving's default: 1).
    warmup_iterations: int = 1
    # --remove_unused_fields_from_bundle_metagraph: keep only the SignatureDefs
    # of a loaded version's MetaGraphDef (meta_graph.retained).
    remove_unused_meta_graph_fields: bool = True


def parse_tags(text: str) -> frozenset[str]:
    """`--saved_model_tags` ("serve,gpu") as a tag set; empty entries are dropped."""
    return frozenset(tag.strip() for tag in text.split(",") if tag.strip())


DEFAULT_OPTIONS = SavedModelOptions()
