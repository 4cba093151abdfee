"""serving.shadow_compare: one request's answers from two versions, by table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from serving.shadow_compare import compare

F32 = np.float32
NAN, INF = float("nan"), float("inf")


def arr(values: Any, dtype: Any = F32) -> np.ndarray:
    return np.asarray(values, dtype=dtype)


CASES = [
    # (name, primary, shadow, tolerance, outputs, outcome, abs sum, abs count)
    ("equal floats", {"y": arr([1, 2])}, {"y": arr([1, 2])}, 0.0, (), "same", 0.0, 2),
    ("within tolerance", {"y": arr([1.0, 2.0])}, {"y": arr([1.0005, 2.0])}, 0.001, (),
     "same", 0.0005, 2),
    ("tolerance is inclusive", {"y": arr([1.0], np.float64)}, {"y": arr([1.5], np.float64)},
     0.5, (), "same", 0.5, 1),
    ("one element beyond", {"y": arr([1.0, 2.0])}, {"y": arr([1.0, 2.2])}, 0.001, (),
     "differs", 0.2, 2),
    ("offset everywhere", {"y": arr([[1.0], [2.0]])}, {"y": arr([[1.2], [2.2]])}, 0.01, (),
     "differs", 0.4, 2),
    ("zero tolerance, tiny diff", {"y": arr([1.0], np.float64)},
     {"y": arr([1.0 + 1e-12], np.float64)}, 0.0, (), "differs", 1e-12, 1),
    ("equal infinities", {"y": arr([INF, -INF])}, {"y": arr([INF, -INF])}, 0.0, (),
     "same", 0.0, 2),
    ("NaN on both sides", {"y": arr([NAN, 1.0])}, {"y": arr([NAN, 1.0])}, 0.0, (),
     "same", 0.0, 2),
    ("NaN on one side", {"y": arr([NAN, 1.0])}, {"y": arr([1.0, 1.0])}, 0.5, (),
     "differs", 0.0, 1),
    ("integers equal", {"c": arr([1, 2], np.int64)}, {"c": arr([1, 2], np.int64)}, 0.0, (),
     "same", 0.0, 0),
    ("integers ignore tolerance", {"c": arr([1, 2], np.int64)},
     {"c": arr([1, 3], np.int64)}, 10.0, (), "differs", 0.0, 0),
    ("strings equal", {"s": arr([b"a", b"b"], object)}, {"s": arr([b"a", b"b"], object)},
     0.0, (), "same", 0.0, 0),
    ("strings differ", {"s": arr([b"a", b"b"], object)}, {"s": arr([b"a", b"c"], object)},
     0.0, (), "differs", 0.0, 0),
    ("bools differ", {"b": arr([True], bool)}, {"b": arr([False], bool)}, 1.0, (),
     "differs", 0.0, 0),
    ("shape mismatch", {"y": arr([1.0, 2.0])}, {"y": arr([[1.0, 2.0]])}, 1.0, (),
     "mismatch", 0.0, 0),
    ("dtype mismatch", {"y": arr([1.0])}, {"y": arr([1.0], np.float64)}, 1.0, (),
     "mismatch", 0.0, 0),
    ("no output in common", {"a": arr([1.0])}, {"b": arr([1.0])}, 1.0, (),
     "mismatch", 0.0, 0),
    ("only common outputs compared", {"y": arr([1.0]), "extra": arr([5.0])},
     {"y": arr([1.0])}, 0.0, (), "same", 0.0, 1),
    ("listed output missing", {"y": arr([1.0])}, {"y": arr([1.0])}, 0.0, ("scores",),
     "mismatch", 0.0, 0),
    ("listed outputs only", {"y": arr([1.0]), "z": arr([9.0])},
     {"y": arr([1.0]), "z": arr([0.0])}, 0.0, ("y",), "same", 0.0, 1),
    ("mismatch wins over differs", {"a": arr([1.0]), "b": arr([1.0])},
     {"a": arr([2.0]), "b": arr([1.0, 1.0])}, 0.0, (), "mismatch", 0.0, 0),
    ("mixed outputs: float differs, string same",
     {"scores": arr([0.5]), "classes": arr([b"x"], object)},
     {"scores": arr([0.7]), "classes": arr([b"x"], object)}, 0.1, (), "differs", 0.2, 1),
    ("empty tensors", {"y": arr(np.zeros((0, 3)))}, {"y": arr(np.zeros((0, 3)))}, 0.0, (),
     "same", 0.0, 0),
]


@pytest.mark.parametrize(("name", "primary", "shadow", "tolerance", "outputs", "outcome",
                          "abs_sum", "abs_count"), CASES, ids=[c[0] for c in CASES])
def test_compare(name: str, primary: dict[str, np.ndarray], shadow: dict[str, np.ndarray],
                 tolerance: float, outputs: tuple[str, ...], outcome: str, abs_sum: float,
                 abs_count: int) -> None:
    result = compare(primary, shadow, tolerance, outputs)
    assert result.outcome == outcome, result.detail
    assert result.abs_diff_sum == pytest.approx(abs_sum, rel=1e-4, abs=1e-9)
    assert result.abs_diff_count == abs_count
    assert np.isfinite(result.abs_diff_sum)


def test_detail_names_the_output() -> None:
    result = compare({"scores": arr([1.0])}, {"scores": arr([1.0, 2.0])}, 0.0)
    assert "scores" in result.detail and "shape" in result.detail
