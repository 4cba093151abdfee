"""Invalid specs: each yields its own message at the exact line:col; valid ones load."""

from __future__ import annotations

import pytest

from controller.spec.load import load_texts
from controller.spec.model import RolloutSpec, rule_violations

# Line numbers in the comments are what the cases below point at.
BASE = """\
apiVersion: rollouts/v1
kind: ModelRollout
metadata:
  name: demo
spec:
  model:
    name: demo_model
    basePath: demo
  stable: 1
  canary:
    version: 2
    split:
      hashKey: x-user-id
      match:
        - {header: x-canary, value: "1"}
    steps:
      - {weight: 10, hold: 2m}
      - {weight: 50, hold: 5m}
    analysis:
      interval: 30s
      minRequests: 100
      onNoData: pause
      failureLimit: 2
      checks:
        errorRate: {max: 0.01, maxIncrease: 0.005}
        latencyP99: {max: 250ms, maxRatio: 1.5}
    promotion: auto
  keep: [3]
  labels:
    previous: 3
"""
# line 9: "  stable: 1", 11: canary version, 13: hashKey, 15: match, 17/18: steps,
# 20-23: analysis scalars, 25: errorRate, 26: latencyP99, 27: promotion,
# 28: keep, 30: labels entry.

CHECKS = """\
      checks:
        errorRate: {max: 0.01, maxIncrease: 0.005}
        latencyP99: {max: 250ms, maxRatio: 1.5}
"""
STEPS = """\
    steps:
      - {weight: 10, hold: 2m}
      - {weight: 50, hold: 5m}
"""
MATCH = """\
      match:
        - {header: x-canary, value: "1"}
"""

# (id, old text, new text, line, col, message substring)
CASES: list[tuple[str, str, str, int, int, str]] = [
    (
        "unknown-key-typo",
        "  stable: 1",
        "  stabel: 1",
        9,
        3,
        "unknown field 'stabel'; did you mean 'stable'?",
    ),
    (
        "unknown-top-level",
        "kind: ModelRollout",
        "kinds: ModelRollout",
        2,
        1,
        "unknown field 'kinds'; did you mean 'kind'?",
    ),
    (
        "snake-case-key",
        "    basePath: demo",
        "    base_path: demo",
        8,
        5,
        "unknown field 'base_path'; did you mean 'basePath'?",
    ),
    (
        "unknown-step-key",
        "      - {weight: 10, hold: 2m}",
        "      - {weight: 10, hold: 2m, wait: 1m}",
        17,
        32,
        "unknown field 'wait'",
    ),
    (
        "api-version",
        "apiVersion: rollouts/v1",
        "apiVersion: rollouts/v2",
        1,
        13,
        "must be 'rollouts/v1'",
    ),
    ("kind", "kind: ModelRollout", "kind: Rollout", 2, 7, "must be 'ModelRollout'"),
    (
        "metadata-name",
        "  name: demo",
        "  name: Demo_X",
        4,
        9,
        "metadata.name 'Demo_X' is not valid",
    ),
    (
        "model-name",
        "    name: demo_model",
        "    name: demo model",
        7,
        11,
        "model name 'demo model' is not valid",
    ),
    (
        "base-path-absolute",
        "    basePath: demo",
        "    basePath: /abs/demo",
        8,
        15,
        "basePath must be a relative path",
    ),
    (
        "base-path-parent",
        "    basePath: demo",
        "    basePath: models/../../etc",
        8,
        15,
        "basePath must not contain '..'",
    ),
    (
        "platform",
        "    basePath: demo",
        "    basePath: demo\n    platform: pytorch",
        9,
        15,
        "must be 'tensorflow', got string 'pytorch'",
    ),
    (
        "transition",
        "  stable: 1",
        "  stable: 1\n  transition: fast",
        10,
        15,
        "must be 'availability' or 'resource'",
    ),
    ("stable-zero", "  stable: 1", "  stable: 0", 9, 11, "versions are positive integers, got 0"),
    (
        "stable-negative",
        "  stable: 1",
        "  stable: -3",
        9,
        11,
        "versions are positive integers, got -3",
    ),
    ("stable-quoted", "  stable: 1", '  stable: "1"', 9, 11, "expected an integer, got string '1'"),
    ("stable-float", "  stable: 1", "  stable: 1.5", 9, 11, "expected an integer, got number 1.5"),
    ("stable-missing", "  stable: 1\n", "", 5, 1, "missing required field 'stable' in spec"),
    (
        "canary-equals-stable",
        "    version: 2",
        "    version: 1",
        11,
        14,
        "version 1 is already spec.stable",
    ),
    (
        "canary-version-missing",
        "    version: 2",
        "    retry: true",
        10,
        3,
        "missing required field 'version' in spec.canary",
    ),
    (
        "retry-yes-is-a-string",
        "    version: 2",
        "    version: 2\n    retry: yes",
        12,
        12,
        "expected true or false, got string 'yes'",
    ),
    (
        "hash-key-space",
        "      hashKey: x-user-id",
        "      hashKey: x user",
        13,
        16,
        "header name 'x user' is not valid",
    ),
    (
        "hash-key-grpc",
        "      hashKey: x-user-id",
        "      hashKey: grpc-timeout",
        13,
        16,
        "grpc-* is reserved",
    ),
    (
        "match-value-number",
        '- {header: x-canary, value: "1"}',
        "- {header: x-canary, value: 1}",
        15,
        37,
        'expected a string, got integer 1 (quote it: "1")',
    ),
    (
        "weight-zero",
        "- {weight: 10, hold: 2m}",
        "- {weight: 0, hold: 2m}",
        17,
        18,
        "weight 0 sends the canary no traffic: set canary.shadow for a dark launch",
    ),
    (
        "weight-too-big",
        "- {weight: 50, hold: 5m}",
        "- {weight: 150, hold: 5m}",
        18,
        18,
        "step weights are percentages from 0 to 100, got 150",
    ),
    (
        "weights-not-increasing",
        "- {weight: 50, hold: 5m}",
        "- {weight: 10, hold: 5m}",
        18,
        18,
        "step weights must strictly increase: 10 follows 10",
    ),
    (
        "hold-number",
        "- {weight: 10, hold: 2m}",
        "- {weight: 10, hold: 120}",
        17,
        28,
        "durations are strings with a unit",
    ),
    (
        "hold-unit",
        "- {weight: 10, hold: 2m}",
        "- {weight: 10, hold: 2d}",
        17,
        28,
        "invalid duration '2d'",
    ),
    (
        "hold-shorter-than-interval",
        "- {weight: 10, hold: 2m}",
        "- {weight: 10, hold: 10s}",
        17,
        28,
        "10s is shorter than analysis.interval 30s",
    ),
    (
        "interval-too-short",
        "      interval: 30s",
        "      interval: 500ms",
        20,
        17,
        "must be at least 1s, got 500ms",
    ),
    (
        "min-requests-negative",
        "      minRequests: 100",
        "      minRequests: -1",
        21,
        20,
        "must be >= 0, got -1",
    ),
    (
        "on-no-data",
        "      onNoData: pause",
        "      onNoData: skip",
        22,
        17,
        "must be 'pause', 'fail' or 'pass'",
    ),
    (
        "failure-limit-zero",
        "      failureLimit: 2",
        "      failureLimit: 0",
        23,
        21,
        "must be >= 1, got 0",
    ),
    (
        "error-rate-percent",
        "{max: 0.01, maxIncrease: 0.005}",
        "{max: 5, maxIncrease: 0.005}",
        25,
        26,
        "fractions from 0 to 1 (0.01 means 1%), got 5",
    ),
    (
        "error-rate-empty",
        "{max: 0.01, maxIncrease: 0.005}",
        "{}",
        25,
        9,
        "set max, maxIncrease or both",
    ),
    (
        "latency-ratio-below-one",
        "maxRatio: 1.5",
        "maxRatio: 0.5",
        26,
        44,
        "maxRatio is canary p99 / stable p99 and must be >= 1",
    ),
    ("latency-max-bad", "{max: 250ms,", "{max: fast,", 26, 27, "invalid duration 'fast'"),
    ("checks-empty", CHECKS, "      checks: {}\n", 24, 7,
     "define errorRate, latencyP99, predictionDiff or several"),
    ("shadow-sample", "    promotion: auto", "    shadow: {sample: 1.5}\n    promotion: auto", 27,
     22, "shadow.sample is the fraction of requests also scored on the other version"),
    ("shadow-sample-zero", "    promotion: auto", "    shadow: {sample: 0}\n    promotion: auto",
     27, 22, "above 0 and at most 1 (0.25 means 25%), got 0"),
    ("prediction-diff-needs-shadow", "        latencyP99: {max: 250ms, maxRatio: 1.5}\n",
     "        latencyP99: {max: 250ms, maxRatio: 1.5}\n"
     "        predictionDiff: {maxDifferingRate: 0.01}\n", 27, 9,
     "predictionDiff compares answers from shadow scoring: set canary.shadow"),
    ("prediction-diff-rate-percent", "        latencyP99: {max: 250ms, maxRatio: 1.5}\n",
     "        latencyP99: {max: 250ms, maxRatio: 1.5}\n"
     "        predictionDiff: {maxDifferingRate: 5}\n", 27, 44,
     "fractions from 0 to 1 (0.01 means 1%), got 5"),
    ("prediction-diff-tolerance-negative", "        latencyP99: {max: 250ms, maxRatio: 1.5}\n",
     "        latencyP99: {max: 250ms, maxRatio: 1.5}\n"
     "        predictionDiff: {tolerance: -1, maxMeanAbs: 0.1}\n", 27, 37,
     "must be a number >= 0, got -1"),
    ("judge", "      failureLimit: 2", "      failureLimit: 2\n      judge: bayes", 24, 14,
     "judge"),
    ("confidence", "      failureLimit: 2", "      failureLimit: 2\n      confidence: 2", 24, 19,
     "confidence is a probability from 0.5 to below 1 (0.95 means 95%), got 2"),
    (
        "no-steps-no-match",
        STEPS,
        "",
        10,
        3,  # _variant also removes the match rule
        "a canary without steps gets traffic only from split.match",
    ),
    (
        "promotion",
        "    promotion: auto",
        "    promotion: yolo",
        27,
        16,
        "must be 'auto' or 'manual'",
    ),
    ("keep-duplicate", "  keep: [3]", "  keep: [3, 3]", 28, 13, "version 3 is listed twice"),
    ("keep-zero", "  keep: [3]", "  keep: [0]", 28, 10, "versions are positive integers, got 0"),
    ("label-reserved", "    previous: 3", "    stable: 3", 30, 5, "label 'stable' is reserved"),
    (
        "label-reserved-any-case",
        "    previous: 3",
        "    Canary: 3",
        30,
        5,
        "label 'Canary' is reserved",
    ),
    ("label-name", "    previous: 3", "    9lives: 3", 30, 5, "label '9lives' is not valid"),
    (
        "label-version",
        "    previous: 3",
        "    previous: three",
        30,
        15,
        "expected an integer, got string 'three'",
    ),
    (
        "duplicate-key",
        "  stable: 1",
        "  stable: 1\n  stable: 2",
        10,
        3,
        "duplicate key 'stable' (first at line 9)",
    ),
    ("tab-indent", "  stable: 1", "\tstable: 1", 9, 1, "tab character"),
    ("yaml-syntax", "    version: 2", "    version: [2", 12, 10, "YAML syntax error"),
    ("custom-tag", "  stable: 1", "  stable: !version 1", 9, 11, "unsupported YAML tag '!version'"),
    (
        "canary-is-a-list",
        "  canary:\n",
        "  canary: [2]\n  old:\n",
        10,
        11,
        "spec.canary: expected a mapping, got a list",
    ),
]
_ALSO_REMOVE_MATCH = {"no-steps-no-match"}


def _variant(case_id: str, old: str, new: str) -> str:
    assert old in BASE, f"{case_id}: {old!r} not in BASE"
    text = BASE.replace(old, new, 1)
    if case_id in _ALSO_REMOVE_MATCH:
        text = text.replace(MATCH, "")
    return text


def test_base_is_valid() -> None:
    result = load_texts([("demo.yaml", BASE)])
    assert result.problems == []
    assert [doc.spec.metadata.name for doc in result.documents] == ["demo"]


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    ("case_id", "old", "new", "line", "col", "message"), CASES, ids=[case[0] for case in CASES]
)
def test_invalid_spec(case_id: str, old: str, new: str, line: int, col: int, message: str) -> None:
    result = load_texts([("demo.yaml", _variant(case_id, old, new))])
    matching = [p for p in result.problems if message in p.message]
    assert len(matching) == 1, [str(p) for p in result.problems]
    assert (matching[0].line, matching[0].col) == (line, col), str(matching[0])
    assert matching[0].path == "demo.yaml"
    assert result.documents == []  # an invalid document is never handed on


def test_all_problems_are_reported_not_just_the_first() -> None:
    text = (
        BASE.replace("  stable: 1", "  stable: 0")
        .replace("hold: 5m", "hold: 5")
        .replace("onNoData: pause", "onNoData: later")
    )
    result = load_texts([("demo.yaml", text)])
    assert [(p.line, p.col) for p in result.problems] == [(9, 11), (18, 28), (22, 17)]


def test_syntax_error_in_one_document_keeps_the_earlier_ones() -> None:
    text = BASE + "---\nkey: [unclosed\n"
    result = load_texts([("demo.yaml", text)])
    assert [doc.spec.metadata.name for doc in result.documents] == ["demo"]
    assert len(result.problems) == 1 and "YAML syntax error" in result.problems[0].message


def test_document_must_be_a_mapping() -> None:
    result = load_texts([("list.yaml", "- a\n- b\n")])
    assert [(p.line, p.col, p.message) for p in result.problems] == [
        (1, 1, "a rollout document must be a mapping")
    ]


def test_missing_top_level_field_points_at_the_document() -> None:
    text = "apiVersion: rollouts/v1\nkind: ModelRollout\nmetadata: {name: x}\n"
    result = load_texts([("x.yaml", text)])
    assert [(p.line, p.col, p.message) for p in result.problems] == [
        (1, 1, "missing required field 'spec' in the document")
    ]


def test_names_are_unique_across_files_and_documents() -> None:
    other = BASE.replace("name: demo_model", "name: other_model")
    same_model = BASE.replace("  name: demo\n", "  name: demo-two\n")
    result = load_texts([("a.yaml", BASE), ("b.yaml", other + "---\n" + same_model)])
    messages = sorted((p.path, p.line, p.col, p.message) for p in result.problems)
    assert messages == [
        ("b.yaml", 4, 9, "metadata.name 'demo' is already used at a.yaml:4:9"),
        ("b.yaml", 38, 11, "spec.model.name 'demo_model' is already used at a.yaml:7:11"),
    ]
    assert [doc.path for doc in result.documents] == ["a.yaml"]


def test_several_documents_per_file_and_empty_ones() -> None:
    second = BASE.replace("  name: demo\n", "  name: demo-b\n").replace("demo_model", "b")
    result = load_texts(
        [("multi.yaml", "---\n" + BASE + "---\n# nothing\n---\n" + second + "---\n")]
    )
    assert result.problems == []
    assert [(doc.index, doc.line) for doc in result.documents] == [(0, 2), (2, 35)]


def test_yaml_1_2_scalars() -> None:
    text = BASE.replace("  stable: 1", "  stable: 0o7").replace("  keep: [3]", "  keep: [0x3]")
    [doc] = load_texts([("demo.yaml", text)]).documents
    assert (doc.spec.spec.stable, doc.spec.spec.keep) == (7, [3])


def test_alias_bombs_are_refused() -> None:
    # ten aliases per level, seven levels: 10**7 nodes once expanded
    lines = ["a0: &a0 [" + ", ".join(["x"] * 10) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 7)]
    result = load_texts([("bomb.yaml", "\n".join(lines) + "\n")])
    assert any("too large" in p.message for p in result.problems)


def test_valid_spec_defaults() -> None:
    text = (
        "apiVersion: rollouts/v1\nkind: ModelRollout\nmetadata: {name: m}\n"
        "spec:\n  model: {name: m}\n  stable: 1\n  canary:\n    version: 2\n"
        "    steps: [{weight: 20}]\n"
    )
    [doc] = load_texts([("m.yaml", text)]).documents
    body = doc.spec.spec
    assert body.model.path == "m" and body.model.platform == "tensorflow"
    assert body.transition == "availability"
    assert body.canary is not None
    assert body.canary.steps[0].hold == 300.0
    assert body.canary.analysis.interval == 30.0
    assert body.canary.analysis.checks.error_rate is not None
    assert body.canary.analysis.checks.error_rate.max == 0.01
    assert (body.canary.promotion, body.canary.retry) == ("auto", False)
    assert doc.where(("spec", "canary", "steps", 0, "weight")) == (9, 22)


def test_programmatic_construction_enforces_the_rules() -> None:
    data = load_texts([("demo.yaml", BASE)]).documents[0].spec.model_dump(mode="json")
    data["spec"]["canary"]["version"] = 1
    with pytest.raises(ValueError, match="already spec.stable"):
        RolloutSpec.model_validate(data)
    spec = RolloutSpec.model_validate(load_texts([("d.yaml", BASE)]).documents[0].spec.model_dump())
    assert rule_violations(spec) == []


DARK_LAUNCH = BASE.replace("- {weight: 10, hold: 2m}", "- {weight: 0, hold: 2m}").replace(
    "    promotion: auto", "    shadow: {sample: 0.25}\n    promotion: auto")


def test_weight_zero_with_shadow_is_a_valid_dark_launch() -> None:
    text = DARK_LAUNCH.replace(
        "        latencyP99: {max: 250ms, maxRatio: 1.5}\n",
        "        latencyP99: {max: 250ms, maxRatio: 1.5}\n"
        "        predictionDiff: {tolerance: 0.001, maxDifferingRate: 0.01, maxMeanAbs: 0.05,"
        " outputs: [y]}\n")
    result = load_texts([("demo.yaml", text)])
    assert result.problems == []
    canary = result.documents[0].spec.spec.canary
    assert canary is not None and canary.shadow is not None and canary.shadow.sample == 0.25
    assert [step.weight for step in canary.steps] == [0, 50]
    diff = canary.analysis.checks.prediction_diff
    assert diff is not None and (diff.tolerance, diff.max_differing_rate, diff.max_mean_abs,
                                 diff.outputs) == (0.001, 0.01, 0.05, ["y"])
    assert (canary.analysis.judge, canary.analysis.confidence) == ("threshold", 0.95)


def test_prediction_diff_without_a_limit_is_refused_at_its_key() -> None:
    text = DARK_LAUNCH.replace(
        "        latencyP99: {max: 250ms, maxRatio: 1.5}\n",
        "        latencyP99: {max: 250ms, maxRatio: 1.5}\n"
        "        predictionDiff: {tolerance: 0.1}\n")
    result = load_texts([("demo.yaml", text)])
    assert [(p.line, p.col, p.message) for p in result.problems] == [
        (27, 9, "spec.canary.analysis.checks.predictionDiff: "
                "set maxDifferingRate, maxMeanAbs or both")]
