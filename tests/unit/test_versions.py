"""Version discovery rules: parsing, duplicates, version policies, completeness."""

from __future__ import annotations

import pytest

from serving.core.versions import (
    DirSnapshot,
    VersionPolicy,
    index_children,
    parse_version,
    ready_versions,
    select_versions,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("1", 1),
        ("0", 0),
        ("007", 7),
        ("0001", 1),
        ("123456789", 123456789),
        ("9223372036854775807", 2**63 - 1),  # int64 max
        ("9223372036854775808", None),  # overflows int64
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1 ", None),
        ("1\n", None),
        ("", None),
        ("1.0", None),
        ("1e3", None),
        ("0x10", None),
        ("v1", None),
        ("١", None),  # a non-ASCII digit
        ("saved_model.pb", None),
        (".tmp", None),
    ],
)
def test_parse_version(name: str, expected: int | None) -> None:
    assert parse_version(name) == expected


def test_index_children_skips_non_versions() -> None:
    by_version, warnings = index_children(["3", "assets", "10", ".DS_Store", "1"])
    assert by_version == {1: "1", 3: "3", 10: "10"}
    assert warnings == []


def test_index_children_duplicates_pick_tf_servings_choice_and_warn() -> None:
    # TF Serving iterates children sorted and lets the later one win: "001" > "0001".
    for order in (["001", "0001", "1", "2"], ["1", "2", "0001", "001"]):
        by_version, warnings = index_children(order)
        assert by_version == {1: "1", 2: "2"}
        assert len(warnings) == 2
        assert all("Version 1" in w for w in warnings)
    by_version, warnings = index_children(["0001", "001"])
    assert by_version == {1: "001"}
    assert warnings == [
        "Duplicate version directories detected. Version 1 will be loaded from 001, "
        "0001 will be ignored."
    ]


@pytest.mark.parametrize(
    ("policy", "available", "expected"),
    [
        (VersionPolicy("latest"), [1, 2, 3], {3}),
        (VersionPolicy("latest", num_versions=2), [1, 5, 3], {5, 3}),
        (VersionPolicy("latest", num_versions=5), [1, 2], {1, 2}),
        (VersionPolicy("latest", num_versions=0), [1, 2], {2}),  # at least one, like TF Serving
        (VersionPolicy("latest"), [], set()),
        (VersionPolicy("all"), [1, 2, 3], {1, 2, 3}),
        (VersionPolicy("all"), [], set()),
        (VersionPolicy("specific", versions=(1, 3)), [1, 2, 3], {1, 3}),
        (VersionPolicy("specific", versions=(4,)), [1, 2, 3], set()),
        (VersionPolicy("specific", versions=(2, 9)), [1, 2, 3], {2}),
        (VersionPolicy("specific"), [1, 2], set()),
    ],
)
def test_select_versions(policy: VersionPolicy, available: list[int], expected: set[int]) -> None:
    assert select_versions(policy, available) == expected


def test_select_versions_accepts_any_iterable() -> None:
    assert select_versions(VersionPolicy("latest"), iter({7: "a", 9: "b"})) == {9}


A = DirSnapshot("aaa", has_saved_model=True)
A2 = DirSnapshot("aaa2", has_saved_model=True)
NO_PB = DirSnapshot("bbb", has_saved_model=False)


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        ({}, {1: A}, set()),  # seen once: not yet known to be stable
        ({1: A}, {1: A}, {1}),  # unchanged across two polls
        ({1: A}, {1: A2}, set()),  # still changing
        ({1: NO_PB}, {1: NO_PB}, set()),  # stable but no saved_model.pb
        ({1: NO_PB}, {1: A}, set()),  # saved_model.pb just appeared: changed
        ({1: A, 2: A}, {1: A, 2: A2, 3: A}, {1}),
        ({1: A}, {}, set()),  # removed
    ],
)
def test_ready_versions(
    previous: dict[int, DirSnapshot], current: dict[int, DirSnapshot], expected: set[int]
) -> None:
    assert ready_versions(previous, current) == expected
