"""Compare one request's answers from two versions (shadow scoring), purely.

`compare(primary, shadow, tolerance, outputs)` looks at every output both
versions returned under the same key (or only `outputs`, when given):

- floating-point (and complex) outputs: the elementwise absolute difference;
  the request "differs" when any element differs by more than `tolerance`.
  Equal values (equal infinities too) differ by 0; NaN against NaN is equal,
  NaN against a number differs (and is left out of the mean, which must stay
  finite).
- integer, boolean, string and bytes outputs: exact equality.
- a different shape or dtype, a listed output missing on either side, or no
  common output at all: "mismatch", an outcome of its own (the numbers cannot
  be compared).

The absolute differences of the floating-point elements compared feed the
mean absolute difference (sum and count), whatever the outcome but mismatch.
An error on the shadow side never reaches this module: the scorer records it
as the outcome "error".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Outcome = Literal["same", "differs", "mismatch", "error", "dropped"]
OUTCOMES: tuple[Outcome, ...] = ("same", "differs", "mismatch", "error", "dropped")


@dataclass(frozen=True)
class Comparison:
    """One request's verdict and its floating-point absolute differences."""

    outcome: Outcome
    abs_diff_sum: float = 0.0
    abs_diff_count: int = 0
    detail: str = ""  # why: the first output that mismatched or differed


def _mismatch(detail: str) -> Comparison:
    return Comparison("mismatch", detail=detail)


def _float_diff(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    """|a - b| where both are numbers (0 where equal, infinities included), and
    how many elements have a NaN on exactly one side."""
    a64 = a.astype(np.complex128 if a.dtype.kind == "c" else np.float64, copy=False)
    b64 = b.astype(a64.dtype, copy=False)
    nan_a, nan_b = np.isnan(a64), np.isnan(b64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(a64 == b64, 0.0, np.abs(a64 - b64))
    diff = np.where(nan_a | nan_b, 0.0, diff)
    return diff.astype(np.float64), int(np.count_nonzero(nan_a ^ nan_b))


def compare(primary: Mapping[str, np.ndarray], shadow: Mapping[str, np.ndarray],
            tolerance: float, outputs: Sequence[str] = ()) -> Comparison:
    """The verdict on one request: see the module docstring."""
    if outputs:
        missing = [k for k in outputs if k not in primary or k not in shadow]
        if missing:
            return _mismatch(f"output {missing[0]} missing on one side")
        keys = list(outputs)
    else:
        keys = sorted(set(primary) & set(shadow))
        if not keys:
            return _mismatch("no output in common")
    total, count = 0.0, 0
    differs = ""
    for key in keys:
        a, b = np.asarray(primary[key]), np.asarray(shadow[key])
        if a.shape != b.shape:
            return _mismatch(f"output {key}: shape {list(a.shape)} != {list(b.shape)}")
        if a.dtype != b.dtype:
            return _mismatch(f"output {key}: dtype {a.dtype} != {b.dtype}")
        if a.dtype.kind in "fc":
            diff, one_sided_nan = _float_diff(a, b)
            total += float(diff.sum())
            count += int(diff.size) - one_sided_nan
            if not differs and (one_sided_nan or bool((diff > tolerance).any())):
                differs = f"output {key}: max |diff| {float(diff.max(initial=0.0)):g}" + (
                    f", {one_sided_nan} NaN on one side" if one_sided_nan else "")
        elif not differs and not np.array_equal(a, b):
            differs = f"output {key}: values not equal"
    if differs:
        return Comparison("differs", total, count, differs)
    return Comparison("same", total, count)
