"""yamledit: promotion and canary edits change only the lines they must."""

from __future__ import annotations

import difflib
from typing import Any

import pytest
from ruamel.yaml import YAML

from controller.spec import yamledit

TWO_DOCS = """\
# Team rollouts. Keep this header.
apiVersion: rollouts/v1
kind: ModelRollout
metadata: {name: half-plus-two}   # flow map, kept as is
spec:
  model: {name: half_plus_two, basePath: half_plus_two, platform: tensorflow}
  transition: availability          # or: resource
  stable: 1    # what everyone gets
  # the canary (PR #12)
  canary:
    version: 2      # bumped by PR #12
    split: {hashKey: x-user-id, salt: "", match: [{header: x-canary, value: "1"}]}
    steps:
      - {weight: 10, hold: 2m}
      # then half
      - weight: 50
        hold: 5m

  # owner stays after the canary goes
  owner: 'ml-platform'
---
apiVersion: rollouts/v1
kind: ModelRollout
metadata:
    name: other
spec:
    model:
        name: other
    canary:
        version: 7
    stable: "6"
"""


def changes(before: str, after: str) -> list[str]:
    """The diff's changed lines, '-old' / '+new', without context."""
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and line[:3] not in ("---", "+++")]


def data(text: str) -> list[Any]:
    return list(YAML(typ="safe").load_all(text))


def test_promote_changes_only_the_stable_line_and_the_canary_block() -> None:
    after = yamledit.promote(TWO_DOCS, "half_plus_two")
    assert changes(TWO_DOCS, after) == [
        "-  stable: 1    # what everyone gets",
        "+  stable: 2    # what everyone gets",
        "-  canary:",
        "-    version: 2      # bumped by PR #12",
        '-    split: {hashKey: x-user-id, salt: "", match: [{header: x-canary, value: "1"}]}',
        "-    steps:",
        "-      - {weight: 10, hold: 2m}",
        "-      # then half",
        "-      - weight: 50",
        "-        hold: 5m",
    ]
    assert "# the canary (PR #12)\n\n  # owner stays" in after  # comments and spacing kept
    first, second = data(after)
    assert first["spec"]["stable"] == 2 and "canary" not in first["spec"]
    assert second == data(TWO_DOCS)[1]  # the other document is untouched


def test_promote_when_stable_follows_the_canary_and_is_quoted() -> None:
    after = yamledit.promote(TWO_DOCS, "other")
    assert changes(TWO_DOCS, after) == [
        "-    canary:",
        "-        version: 7",
        '-    stable: "6"',
        "+    stable: 7",
    ]


def test_promote_inserts_stable_where_the_canary_was() -> None:
    text = "spec:\n  model:\n    name: m\n  canary:\n    version: 4\n  tail: true # c\n"
    after = yamledit.promote(text, "m")
    assert after == "spec:\n  model:\n    name: m\n  stable: 4\n  tail: true # c\n"


def test_promote_of_a_last_block_without_final_newline() -> None:
    text = "spec:\n  model: {name: m}\n  stable: 1\n  canary:\n    version: 2"
    assert yamledit.promote(text, "m") == "spec:\n  model: {name: m}\n  stable: 2\n"


def test_flow_style_spec_falls_back_to_a_round_trip_with_the_same_data() -> None:
    text = "# keep me\nspec: {model: {name: m}, stable: 1, canary: {version: 2}}\n"
    after = yamledit.promote(text, "m")
    assert "# keep me" in after
    assert data(after) == [{"spec": {"model": {"name": "m"}, "stable": 2}}]


@pytest.mark.parametrize(
    ("text", "model", "message"),
    [
        (TWO_DOCS, "missing", "no document"),
        (TWO_DOCS + "---\nspec: {model: {name: other}}\n", "other", "2 documents"),
        ("spec: {model: {name: m}, stable: 1}\n", "m", "no canary"),
        ("spec: [unclosed\n", "m", "not valid YAML"),
    ],
)
def test_promote_errors(text: str, model: str, message: str) -> None:
    with pytest.raises(yamledit.YamlEditError, match=message):
        yamledit.promote(text, model)


def test_remove_canary_keeps_stable_and_is_idempotent() -> None:
    after = yamledit.remove_canary(TWO_DOCS, "half_plus_two")
    assert all(line.startswith("-") for line in changes(TWO_DOCS, after))
    assert data(after)[0]["spec"]["stable"] == 1 and "canary" not in data(after)[0]["spec"]
    assert yamledit.remove_canary(after, "half_plus_two") == after


def test_set_canary_edits_or_inserts_with_the_files_indentation() -> None:
    bumped = yamledit.set_canary(TWO_DOCS, "half_plus_two", 3)
    assert changes(TWO_DOCS, bumped) == [
        "-    version: 2      # bumped by PR #12",
        "+    version: 3      # bumped by PR #12",
    ]
    promoted = yamledit.promote(TWO_DOCS, "other")
    restarted = yamledit.set_canary(promoted, "other", 8)
    assert changes(promoted, restarted) == ["+    canary:", "+        version: 8"]
    assert yamledit.canary_version(restarted, "other") == 8
    assert yamledit.stable_version(restarted, "other") == 7


def test_version_readers() -> None:
    assert yamledit.canary_version(TWO_DOCS, "half_plus_two") == 2
    assert yamledit.stable_version(TWO_DOCS, "half_plus_two") == 1
    assert yamledit.stable_version(TWO_DOCS, "other") is None  # "6" is a string, not a version
    assert yamledit.canary_version(yamledit.remove_canary(TWO_DOCS, "other"), "other") is None
