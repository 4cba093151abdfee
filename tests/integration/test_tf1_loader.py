"""SavedModels through the tensorflow loader's Session path, TF1 and TF2.

TF1 exports (SavedModelBuilder, graph mode) and TF2 ones (tf.saved_model.save)
load into their own Graph and Session with the requested tags, with the init
op (__saved_model_init_op, main_op or legacy_init_op) run and asset paths fed
in, and each signature runs through a Session callable; a TF2 export the
Session refuses falls back to the object-graph path. The legacy model is one
TF2's loader rejects outright.
"""

from __future__ import annotations

from pathlib import Path

import numpy
import pytest
import tensorflow as tf

from serving.core.status import Code, ServingError
from serving.loaders import tensorflow_loader
from serving.loaders.options import SavedModelOptions
from serving.loaders.session_servable import SessionServable, session_settings
from serving.loaders.tensorflow_loader import TensorFlowLoader, TensorFlowServable
from serving.loaders.warmup import run_warmup
from tests.models import WARMUP_RECORDS, make_half_plus_two, make_tf1_half_plus_two

pytestmark = pytest.mark.integration


def examples(*xs: float) -> numpy.ndarray:
    records = []
    for x in xs:
        feature = tf.train.Feature(float_list=tf.train.FloatList(value=[x]))
        records.append(tf.train.Example(
            features=tf.train.Features(feature={"x": feature})).SerializeToString())
    return numpy.array(records, dtype=object)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tf1")
    return {
        "tf1": make_tf1_half_plus_two(root / "tf1", 1),
        "legacy": make_tf1_half_plus_two(root / "legacy", 1, offset=3.0, legacy=True),
        "warm": make_tf1_half_plus_two(root / "warm", 1, warmup=True),
    }


@pytest.mark.parametrize("name, offset", [("tf1", 2.0), ("legacy", 3.0)])
def test_every_signature_runs_in_a_session(models: dict[str, Path], name: str,
                                           offset: float) -> None:
    loader = TensorFlowLoader(str(models[name]))
    servable = loader.load()
    try:
        assert isinstance(servable, SessionServable)
        assert {k: s.method_name for k, s in servable.signatures.items()} == {
            "serving_default": "tensorflow/serving/predict",
            "classify_x_to_y": "tensorflow/serving/classify",
            "regress_x_to_y": "tensorflow/serving/regress",
        }
        y = servable.run("serving_default", {"x": numpy.array([2.0, 4.0], numpy.float32)})
        assert y["y"].reshape(-1).tolist() == [1.0 + offset, 2.0 + offset]
        # Variables restored, asset path fed to the table's initializer, init op run:
        # classes come from the asset file's lines through the table.
        got = servable.run("classify_x_to_y", {"inputs": examples(0.0, 6.0)})
        assert got["scores"].tolist() == [[offset], [3.0 + offset]]
        assert got["classes"].tolist() == [[b"high" if offset > 3.0 else b"low"], [b"high"]]
        only_scores = servable.run("classify_x_to_y", {"inputs": examples(2.0)}, ["scores"])
        assert list(only_scores) == ["scores"]
        assert servable.run("regress_x_to_y", {"inputs": examples(2.0)})["outputs"].tolist() \
            == [[1.0 + offset]]
        metadata = servable.signature_def_map().signature_def
        assert metadata["serving_default"].inputs["x"].name == "x:0"
    finally:
        loader.unload()


def test_legacy_export_is_one_the_tf2_loader_rejects(models: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="Shape must be rank 1 but is rank 0"):
        tf.saved_model.load(str(models["legacy"]))
    # Its Predict input is declared [None, 1]; TF Serving's clients send [N].
    loader = TensorFlowLoader(str(models["legacy"]))
    servable = loader.load()
    try:
        assert servable.signatures["serving_default"].inputs["x"].shape == (-1, 1)
        assert servable.run("serving_default", {"x": numpy.array([2.0])})["y"].tolist() == [4.0]
    finally:
        loader.unload()


def test_bad_input_is_invalid_argument(models: dict[str, Path]) -> None:
    loader = TensorFlowLoader(str(models["tf1"]))
    servable = loader.load()
    try:
        with pytest.raises(ServingError) as err:
            servable.run("serving_default", {"x": numpy.array(["a"])})
        assert err.value.code is Code.INVALID_ARGUMENT
        assert "arg[x]" in err.value.message
        with pytest.raises(ServingError) as err:
            servable.run("classify_x_to_y", {"inputs": numpy.array([b"not an example"])})
        assert err.value.code is Code.INVALID_ARGUMENT
        with pytest.raises(ServingError) as err:
            servable.run("serving_default", {"x": numpy.array([1.0]), "z": numpy.array([1.0])})
        assert (err.value.code, "Sent extra: {z}" in err.value.message) == (
            Code.INVALID_ARGUMENT, True)
    finally:
        loader.unload()


def test_warmup_replays_on_a_session_model(models: dict[str, Path]) -> None:
    loader = TensorFlowLoader(str(models["warm"]))
    servable = loader.load()
    try:
        assert isinstance(servable, SessionServable)
        calls: list[str] = []
        real_run = servable.run

        def spy(key: str, inputs: object, output_keys: object = None) -> object:
            calls.append(key)
            return real_run(key, inputs, output_keys)  # type: ignore[arg-type]

        servable.run = spy  # type: ignore[method-assign,assignment]
        assert run_warmup(servable, iterations=2) == WARMUP_RECORDS
        # predict, classify, regress, then multi-inference's two tasks; each twice.
        assert calls == [k for k in ["serving_default", "classify_x_to_y", "regress_x_to_y",
                                     "classify_x_to_y", "regress_x_to_y"] for _ in range(2)]
    finally:
        loader.unload()


def test_warmup_off_skips_the_records(tmp_path: Path) -> None:
    # A warmup file whose records fail: loading succeeds only if it is skipped.
    path = make_half_plus_two(tmp_path / "w", 1, fail_above=0.5, warmup=True)
    with pytest.raises(ServingError):
        TensorFlowLoader(str(path)).load()
    loader = TensorFlowLoader(str(path), SavedModelOptions(enable_warmup=False))
    assert isinstance(loader.load(), SessionServable)
    loader.unload()


def test_tags_must_match_a_meta_graph(models: dict[str, Path]) -> None:
    with pytest.raises(ServingError) as err:
        TensorFlowLoader(str(models["tf1"]),
                         SavedModelOptions(tags=frozenset({"serve", "gpu"}))).load()
    assert err.value.code is Code.NOT_FOUND
    assert err.value.message.startswith(
        "Could not find meta graph def matching supplied tags: { gpu serve }.")


def test_session_config_reaches_the_session(models: dict[str, Path]) -> None:
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1,
                                      inter_op_parallelism_threads=1)
    loader = TensorFlowLoader(str(models["tf1"]), SavedModelOptions(session_config=config))
    servable = loader.load()
    try:
        assert isinstance(servable, SessionServable)
        assert servable.session_config == config
        assert servable.run("serving_default", {"x": numpy.array([2.0])})["y"].tolist() == [3.0]
    finally:
        loader.unload()


def test_unload_closes_the_session(models: dict[str, Path]) -> None:
    loader = TensorFlowLoader(str(models["tf1"]))
    servable = loader.load()
    loader.unload()
    with pytest.raises(ServingError, match="Session has been closed"):
        servable.run("serving_default", {"x": numpy.array([2.0])})


def test_tf2_models_run_in_a_session_too(tmp_path: Path) -> None:
    loader = TensorFlowLoader(str(make_half_plus_two(tmp_path / "tf2", 1)))
    servable = loader.load()
    try:
        assert isinstance(servable, SessionServable)
        # The initializer is run at load and listed in metadata, never called.
        assert set(servable.signatures) == {"serving_default", "classify_x_to_y",
                                            "regress_x_to_y"}
        assert "__saved_model_init_op" in servable.signature_def_map().signature_def
        y = servable.run("serving_default", {"x": numpy.array([[2.0], [4.0]], numpy.float32)})
        assert y["y"].tolist() == [[3.0], [4.0]]
        got = servable.run("regress_x_to_y", {"inputs": examples(2.0)})
        assert got["outputs"].reshape(-1).tolist() == [3.0]
    finally:
        loader.unload()


class _Labels(tf.Module):
    """A TF2 module whose table is filled from an asset file by its init op."""

    def __init__(self, vocabulary: Path) -> None:
        super().__init__()
        self.vocabulary = tf.saved_model.Asset(str(vocabulary))
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                self.vocabulary, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
                tf.string, tf.lookup.TextFileIndex.WHOLE_LINE),
            default_value="?")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="ids")])
    def lookup(self, ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"labels": self.table.lookup(ids)}


def test_a_tf2_table_is_filled_from_its_asset_in_the_session(tmp_path: Path) -> None:
    vocabulary = tmp_path / "vocabulary.txt"
    vocabulary.write_text("cat\ndog\n")
    module = _Labels(vocabulary)
    export = tmp_path / "labels" / "1"
    tf.saved_model.save(module, str(export), signatures={"serving_default": module.lookup})
    vocabulary.unlink()  # only the SavedModel's own copy of the asset is left
    loader = TensorFlowLoader(str(export))
    servable = loader.load()
    try:
        assert isinstance(servable, SessionServable)
        got = servable.run("serving_default", {"ids": numpy.array([1, 0, 7])})
        assert got["labels"].tolist() == [b"dog", b"cat", b"?"]
    finally:
        loader.unload()


def test_a_tf2_model_a_session_refuses_is_served_through_its_object_graph(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        models: dict[str, Path]) -> None:
    def refuse(export_dir: str, *args: object) -> SessionServable:
        raise ServingError(Code.INTERNAL, f"no Session for {export_dir}")

    monkeypatch.setattr(tensorflow_loader, "SessionServable", refuse)
    path = make_half_plus_two(tmp_path / "tf2", 1)
    loader = TensorFlowLoader(str(path))
    with caplog.at_level("WARNING", logger=tensorflow_loader.__name__):
        servable = loader.load()
    try:
        assert isinstance(servable, TensorFlowServable)
        assert servable.run("serving_default", {"x": numpy.array([2.0], numpy.float32)}
                            )["y"].tolist() == [3.0]
        assert [r.getMessage() for r in caplog.records] == [
            f"SavedModel at {path} does not load in a Session (no Session for {path}); "
            "serving it through tf.saved_model.load"]
    finally:
        loader.unload()
    # A TF1 export has no other path: the Session's error is the load's.
    with pytest.raises(ServingError, match="no Session for"):
        TensorFlowLoader(str(models["tf1"])).load()


def test_an_unset_inter_op_count_becomes_run_in_the_callers_thread() -> None:
    assert session_settings(None).inter_op_parallelism_threads == -1
    given = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=3,
                                     allow_soft_placement=True)
    settings = session_settings(given)
    assert (settings.inter_op_parallelism_threads, settings.intra_op_parallelism_threads,
            settings.allow_soft_placement) == (-1, 3, True)
    assert given.inter_op_parallelism_threads == 0  # the caller's message is not changed
    pinned = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=2)
    assert session_settings(pinned).inter_op_parallelism_threads == 2


@pytest.mark.parametrize("name", ["tf1", "tf2"])
@pytest.mark.parametrize("remove_unused", [True, False])
def test_a_loaded_version_keeps_only_its_signatures_unless_told(
        models: dict[str, Path], tmp_path: Path, name: str, remove_unused: bool) -> None:
    # --remove_unused_fields_from_bundle_metagraph (default true): the GraphDef,
    # often megabytes, is not held for the version's lifetime; metadata is unchanged.
    path = models["tf1"] if name == "tf1" else make_half_plus_two(tmp_path / "tf2", 1)
    loader = TensorFlowLoader(
        str(path), SavedModelOptions(remove_unused_meta_graph_fields=remove_unused))
    servable = loader.load()
    try:
        assert isinstance(servable, (SessionServable, TensorFlowServable))
        kept = servable.meta_graph
        assert kept.HasField("graph_def") is not remove_unused
        assert (kept.meta_info_def.tags == ["serve"]) is not remove_unused
        assert "serving_default" in servable.signature_def_map().signature_def
        assert set(kept.signature_def) >= set(servable.signatures)
        y = servable.run("serving_default", {"x": numpy.array([2.0], numpy.float32)})
        assert y["y"].reshape(-1).tolist() == [3.0]
    finally:
        loader.unload()
