"""Rendering specs into the real ModelServerConfig proto and split rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from controller.cli.main import main
from controller.decide.desired import desired_from_tree
from controller.decide.fleet import SplitRule
from controller.decide.plan import entry_for
from controller.decide.render import (
    TRANSITION_POLICIES,
    base_path,
    config_text,
    model_server_config,
    policy_from_proto,
    policy_name,
    policy_proto,
    render_config,
    render_split,
    render_splits,
    render_transitions,
    split_from_proto,
    split_to_proto,
)
from controller.spec.load import load_texts
from controller.spec.model import RolloutSpec
from serving.generated import rollouts_serving_pb2

ZEBRA = """\
apiVersion: rollouts/v1
kind: ModelRollout
metadata: {name: zebra}
spec:
  model: {name: zebra, basePath: big/zebra}
  transition: resource
  stable: 8
  keep: [7, 5]
  labels: {previous: 7, old: 5}
"""
ALPHA = """\
apiVersion: rollouts/v1
kind: ModelRollout
metadata: {name: alpha}
spec:
  model: {name: alpha}
  stable: 1
  canary:
    version: 3
    split:
      hashKey: x-user-id
      salt: s1
      match: [{header: x-canary, value: "1"}]
    steps: [{weight: 10, hold: 1m}, {weight: 45, hold: 1m}]
"""


def _specs(*texts: str) -> list[RolloutSpec]:
    result = load_texts([(f"{i}.yaml", text) for i, text in enumerate(texts)])
    assert result.problems == []
    return [doc.spec for doc in result.documents]


EXPECTED = """
model_config_list {
  config {
    name: "alpha" base_path: "/models/alpha" model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 3 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 3 }
  }
  config {
    name: "zebra" base_path: "/models/big/zebra" model_platform: "tensorflow"
    model_version_policy { specific { versions: 5 versions: 7 versions: 8 } }
    version_labels { key: "stable" value: 8 }
    version_labels { key: "previous" value: 7 }
    version_labels { key: "old" value: 5 }
  }
}
"""


def test_config_parses_back_into_the_real_proto() -> None:
    text = config_text(render_config(_specs(ZEBRA, ALPHA), "/models"))
    parsed = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    expected = text_format.Parse(EXPECTED, model_server_config_pb2.ModelServerConfig())
    assert parsed == expected
    assert [c.name for c in parsed.model_config_list.config] == ["alpha", "zebra"]


def test_output_is_deterministic_regardless_of_input_order() -> None:
    one = config_text(render_config(_specs(ZEBRA, ALPHA), "/m"))
    two = config_text(render_config(_specs(ALPHA, ZEBRA), "/m"))
    assert one == two


def test_base_path_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = render_config(_specs(ZEBRA), "models")
    assert config.model_config_list.config[0].base_path == str(tmp_path / "models/big/zebra")
    assert base_path("gs://bucket/models/", "a/b") == "gs://bucket/models/a/b"


def test_empty_spec_set_renders_an_empty_list() -> None:
    config = render_config([], "/m")
    assert config.WhichOneof("config") == "model_config_list"
    assert len(config.model_config_list.config) == 0


def test_split_of_a_canary_uses_the_first_step() -> None:
    [alpha] = _specs(ALPHA)
    rule = render_split(alpha)
    assert rule == SplitRule(
        canary_weight_bp=1000,
        hash_key="x-user-id",
        salt="s1",
        match=(("x-canary", "1"),),
    )
    assert render_split(alpha, step=1).canary_weight_bp == 4500


def test_split_without_canary_or_steps_has_no_weight() -> None:
    no_steps = ALPHA.replace("    steps: [{weight: 10, hold: 1m}, {weight: 45, hold: 1m}]\n", "")
    splits = render_splits(_specs(ZEBRA, no_steps))
    assert list(splits) == ["alpha", "zebra"]
    assert splits["zebra"] == SplitRule(canary_weight_bp=0)
    assert splits["alpha"].canary_weight_bp == 0
    assert splits["alpha"].match == (("x-canary", "1"),)


def test_split_to_proto() -> None:
    [alpha] = _specs(ALPHA)
    proto = split_to_proto("alpha", render_split(alpha))
    assert proto == rollouts_serving_pb2.Split(
        model_name="alpha",
        stable_label="stable",
        canary_label="canary",
        canary_weight_bp=1000,
        hash_key="x-user-id",
        salt="s1",
        match=[rollouts_serving_pb2.HeaderMatch(header="x-canary", value="1")],
    )
    # What a target reports back reads as the same rule.
    assert split_from_proto(proto) == render_split(alpha)
    assert split_from_proto(rollouts_serving_pb2.Split(model_name="alpha")) == SplitRule()


def test_the_pushed_config_is_the_rendered_config() -> None:
    """The controller pushes `model_server_config` of the planner's entries: once every
    label is ready, that is exactly what `rollouts render` prints for the same specs."""
    texts = [("zebra.yaml", ZEBRA), ("alpha.yaml", ALPHA)]
    snapshot, problems = desired_from_tree(texts, "c1", "/models")
    assert snapshot is not None and not problems
    entries = [entry_for(model, None, model.labels) for model in snapshot.desired.models.values()]
    pushed = model_server_config(entries)
    assert config_text(pushed) == config_text(render_config(_specs(ZEBRA, ALPHA), "/models"))


def test_zero_models_push_an_empty_list_not_an_unset_config() -> None:
    # An unset config is "no action" to TF Serving: the fleet would keep serving.
    config = model_server_config([])
    assert config.WhichOneof("config") == "model_config_list"
    assert config_text(config).strip() == "model_config_list {\n}"


def test_one_transition_policy_table() -> None:
    for policy in TRANSITION_POLICIES:
        assert policy_name(policy.spec) == policy.name
        assert policy_proto(policy.name) == policy.proto
        assert policy_from_proto(policy.proto) == policy.name
    assert policy_from_proto(rollouts_serving_pb2.TRANSITION_POLICY_UNSPECIFIED) is None
    assert {p.spec for p in TRANSITION_POLICIES} == {"availability", "resource"}


def test_transitions() -> None:
    assert render_transitions(_specs(ZEBRA, ALPHA)) == {
        "alpha": "availability",
        "zebra": "resource",
    }


def test_cli_text_matches_render_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text(ALPHA + "---\n" + ZEBRA)
    assert main(["render", str(tmp_path), "--model-root", "/models"]) == 0
    parsed = text_format.Parse(capsys.readouterr().out, model_server_config_pb2.ModelServerConfig())
    assert parsed == text_format.Parse(EXPECTED, model_server_config_pb2.ModelServerConfig())


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text(ALPHA + "---\n" + ZEBRA)
    assert main(["render", str(tmp_path), "--model-root", "/models", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    configs = out["config"]["model_config_list"]["config"]
    assert [c["name"] for c in configs] == ["alpha", "zebra"]
    assert configs[1]["model_version_policy"] == {"specific": {"versions": ["5", "7", "8"]}}
    assert out["splits"]["alpha"]["canary_weight_bp"] == 1000
    assert out["splits"]["zebra"] == {
        "model_name": "zebra",
        "stable_label": "stable",
        "canary_label": "canary",
        "canary_weight_bp": 0,
        "hash_key": "",
        "salt": "",
        "match": [],
    }
    assert out["transitions"] == {"alpha": "availability", "zebra": "resource"}


def test_cli_refuses_invalid_specs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "a.yaml"
    bad.write_text(ALPHA.replace("version: 3", "version: 1"))
    assert main(["render", str(bad), "--model-root", "/m"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{bad}:8:14: error: spec.canary.version: version 1 is already spec.stable" in err


def test_cli_needs_model_root(tmp_path: Path) -> None:
    assert main(["render", str(tmp_path)]) == 2
