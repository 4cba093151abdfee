"""trailers: building commit messages the controller can read back, and reading them."""

from __future__ import annotations

import pytest

from controller.decide import trailers as t


def test_build_then_parse_round_trips() -> None:
    summary = t.RolloutTrailers(
        model="m",
        verdict="fail",
        canary_version=3,
        reverted_version=3,
        canary_commit="abc123",
        extra=(("Rollouts-Error-Rate", "0.2 > 0.01"),),
    )
    message = t.build_message("rollouts: revert m canary 3\n\nbody line", summary.to_pairs())
    assert message.startswith("rollouts: revert m canary 3\n\nbody line\n\nRollouts-Model: m\n")
    assert t.RolloutTrailers.from_message(message) == summary


def test_values_are_folded_onto_one_line_and_keys_checked() -> None:
    assert t.format_trailers([("Rollouts-Why", "a\nb  c")]) == "Rollouts-Why: a b c"
    with pytest.raises(ValueError):
        t.format_trailers([("Bad Key", "x")])
    with pytest.raises(ValueError):
        t.build_message("\n\n", [])


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("subject only", []),
        ("Rollouts-Model: m", []),  # a subject is never a trailer block
        (
            "s\n\nRollouts-Model: m\nSigned-off-by: A <a@b>\n",
            [("Rollouts-Model", "m"), ("Signed-off-by", "A <a@b>")],
        ),
        ("s\n\nRollouts-Model: m\n\nprose after the block\n", []),  # only the last paragraph
        ("s\n\nNote: this is prose\nthat wraps onto a second line\n", []),
        ("s\n\nRollouts-Why: first\n  continued\n", [("Rollouts-Why", "first continued")]),
        ("s\n\n\n\nrollouts-model:m\n\n\n", [("rollouts-model", "m")]),
    ],
)
def test_parse_trailers(message: str, expected: list[tuple[str, str]]) -> None:
    assert t.parse_trailers(message) == expected


def test_trailer_values_compare_keys_case_insensitively() -> None:
    message = "s\n\nrollouts-verdict: fail\nRollouts-Verdict: pass\n"
    assert t.trailer_values(message, t.VERDICT) == ["fail", "pass"]


def test_malformed_numbers_read_as_absent() -> None:
    parsed = t.RolloutTrailers.from_message(
        "s\n\nRollouts-Model: m\nRollouts-Reverted-Version: x\n"
    )
    assert parsed.model == "m" and parsed.reverted_version is None


def test_auto_reverted_versions() -> None:
    messages = [
        "revert\n\nRollouts-Model: a\nRollouts-Reverted-Version: 3\n",
        "revert\n\nRollouts-Model: a\nRollouts-Reverted-Version: 5\n",
        "revert\n\nRollouts-Model: b\nRollouts-Reverted-Version: 2\n",
        "promote\n\nRollouts-Model: a\nRollouts-Promoted-Version: 4\n",
        'Revert "canary 7"\n\nThis reverts commit abc.\n',  # a person's revert: a choice
        "revert\n\nRollouts-Reverted-Version: 9\n",  # no model: cannot be attributed
    ]
    assert t.auto_reverted_versions(messages) == {
        "a": frozenset({3, 5}),
        "b": frozenset({2}),
    }
