"""Fakes shaped like serving.loaders.base and serving.server_core, for the data
plane's unit tests: a numpy half_plus_two with TF Serving's testdata signatures
and a core that hands out one servable per (model, version) with labels."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from tensorflow.core.example import example_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from serving.core.status import invalid_argument, not_found
from serving.generated import rollouts_serving_pb2
from serving.routing import route, shadow_peer
from serving.server_core import ShadowPeer

DT_FLOAT, DT_STRING = 1, 7


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: int
    shape: tuple[int, ...] | None


@dataclass(frozen=True)
class Signature:
    key: str
    method_name: str
    inputs: Mapping[str, TensorInfo]
    outputs: Mapping[str, TensorInfo]


class HalfPlusTwo:
    """y = 0.5 * x + offset, with TF Serving's half_plus_two signatures."""

    def __init__(self, offset: float = 2.0) -> None:
        self.offset = offset
        self.calls = 0
        x = TensorInfo("x:0", DT_FLOAT, (-1,))
        y = TensorInfo("y:0", DT_FLOAT, (-1,))
        ex = TensorInfo("tf_example:0", DT_STRING, (-1,))
        y2 = TensorInfo("y:0", DT_FLOAT, (-1, 1))
        self.signatures: dict[str, Signature] = {
            "serving_default": Signature("serving_default", "tensorflow/serving/predict",
                                         {"x": x}, {"y": y}),
            "classify_x_to_y": Signature("classify_x_to_y", "tensorflow/serving/classify",
                                         {"inputs": ex}, {"scores": y2}),
            "regress_x_to_y": Signature("regress_x_to_y", "tensorflow/serving/regress",
                                        {"inputs": ex}, {"outputs": y2}),
        }

    def _xs(self, records: np.ndarray) -> np.ndarray:
        xs = []
        for r in records:
            feature = example_pb2.Example.FromString(r).features.feature["x"]
            xs.append(feature.float_list.value[0] if feature.float_list.value else 0.0)
        return np.array(xs, dtype=np.float32)

    def run(self, signature_key: str, inputs: Mapping[str, np.ndarray],
            output_keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        self.calls += 1
        if signature_key == "serving_default":
            x = inputs["x"]
            if x.dtype != np.float32:
                raise invalid_argument(f"Expects arg[0] to be float but {x.dtype} is provided")
            return {"y": (0.5 * x + self.offset).astype(np.float32)}
        y = (0.5 * self._xs(inputs["inputs"]) + self.offset).reshape(-1, 1)
        key = "scores" if signature_key == "classify_x_to_y" else "outputs"
        return {key: y.astype(np.float32)}

    def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap:
        out = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in self.signatures.items():
            d = out.signature_def[key]
            d.method_name = sig.method_name
            for alias, info in sig.inputs.items():
                _info(d.inputs[alias], info)
            for alias, info in sig.outputs.items():
                _info(d.outputs[alias], info)
        return out


def _info(target: meta_graph_pb2.TensorInfo, info: TensorInfo) -> None:
    target.name = info.name
    target.dtype = info.dtype
    for d in info.shape or ():
        target.tensor_shape.dim.add().size = d


@dataclass(frozen=True)
class ServableHandle:
    model: str
    version: int
    label: str | None
    servable: HalfPlusTwo


@dataclass
class FakeCore:
    """versions: model -> {version: servable}; labels: model -> {label: version}."""

    versions: dict[str, dict[int, HalfPlusTwo]] = field(default_factory=dict)
    labels: dict[str, dict[str, int]] = field(default_factory=dict)
    splits: dict[str, rollouts_serving_pb2.Split] = field(default_factory=dict)
    router = staticmethod(route)
    in_flight: int = 0

    @contextlib.contextmanager
    def handle(self, model: str, version: int | None = None, label: str | None = None,
               headers: Mapping[str, str] | None = None,
               wait_s: float | None = None) -> Iterator[ServableHandle]:
        if not model:
            raise invalid_argument("Missing model name in request.")
        loaded = self.versions.get(model, {})
        labels = self.labels.get(model, {})
        if version is None and label is None and model in self.splits:
            label = self.router(self.splits[model], headers or {}, labels)
        if label is not None:
            if label not in labels:
                raise invalid_argument(
                    f"Unrecognized servable version label: {label}")
            version = labels[label]
        if version is None:
            if not loaded:
                raise not_found(f"Servable not found for request: Latest({model})")
            version = max(loaded)
        if version not in loaded:
            raise not_found(f"Servable not found for request: Specific({model}, {version})")
        self.in_flight += 1
        try:
            yield ServableHandle(model, version, label, loaded[version])
        finally:
            self.in_flight -= 1

    async def wait_for_version(self, model: str, version: int | None = None,
                               label: str | None = None,
                               headers: Mapping[str, str] | None = None,
                               wait_s: float | None = None) -> None:
        """Nothing here is ever loading."""

    def shadow_peer(self, model: str, served_label: str | None) -> ShadowPeer | None:
        split = self.splits.get(model)
        peer = shadow_peer(split, served_label) if split is not None else None
        version = self.labels.get(model, {}).get(peer) if peer is not None else None
        if split is None or version is None:
            return None
        return ShadowPeer(version, split.shadow.tolerance, tuple(split.shadow.outputs))

    def list_models(self) -> list[rollouts_serving_pb2.ModelInfo]:
        return [
            rollouts_serving_pb2.ModelInfo(
                name=m, labels=self.labels.get(m, {}),
                versions=[rollouts_serving_pb2.VersionInfo(version=v, state="AVAILABLE")
                          for v in sorted(vs)])
            for m, vs in sorted(self.versions.items())
        ]


def half_plus_two_core() -> FakeCore:
    """half_plus_two v1 (y=0.5x+2) and v2 (y=0.5x+3), labels stable=1, canary=2."""
    return FakeCore(
        versions={"half_plus_two": {1: HalfPlusTwo(2.0), 2: HalfPlusTwo(3.0)}},
        labels={"half_plus_two": {"stable": 1, "canary": 2}},
    )
