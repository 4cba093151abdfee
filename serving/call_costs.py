"""What a signature's model calls cost, and whether the next one may run inline.

An event loop that hands a model call to a thread pays two thread hand-offs
(the pool thread's wake-up, then the loop's): measured on this project's
2-core machine, about 80 us of CPU and more of latency, several times what a
small model's Session call costs (half_plus_two 9 us, a 784-256-10 MLP
33 us). So a call of a signature whose calls have been measured cheaper than
a budget runs in the thread that submits it, the loop's, and the loop is
blocked no longer than such a call takes; a worker thread, likewise, runs it
at once rather than join a batch and wait for a hand-off. A signature never
measured, a call with more rows than a batch may have, or one whose size has
only been measured dear goes the usual way.

`CallCosts` keeps, per (servable, signature) and size class (rows rounded up
to a power of two), the fastest call seen. The fastest, not an average: a
call's wall time includes waiting for the GIL, which many busy threads
inflate, while a loaded version's graph, and so its real cost, never
changes. `runs_inline` is the pure rule.
"""

from __future__ import annotations

import weakref
from typing import Any

# A call measured cheaper than this runs in the submitting thread. Measured
# (benchmarks/RESULTS.md): half_plus_two (9-20 us) on the loop served REST
# c=16 1.65x faster; the MLP (30-80 us) 0.78x: under load the thread path
# overlaps its longer call with other requests' Python, which the loop cannot.
INLINE_BUDGET_S = 25e-6


def runs_inline(cost_s: float | None, rows: int, max_rows: int, budget_s: float) -> bool:
    """Whether a call of `rows` rows, estimated to cost `cost_s` (None: never
    measured), runs in the submitting thread."""
    return cost_s is not None and rows <= max_rows and cost_s < budget_s


def size_class(rows: int) -> int:
    """`rows` rounded up to a power of two (at least 1)."""
    return 1 << max(0, rows - 1).bit_length()


class CallCosts:
    """Per servable (weakly held: an unloaded version's costs go with it),
    signature and size class, the fastest call's wall time. Updated without a
    lock: a lost update under a race only delays the estimate by one call."""

    def __init__(self) -> None:
        self._costs: weakref.WeakKeyDictionary[Any, dict[tuple[str, int], float]] = (
            weakref.WeakKeyDictionary())

    def observe(self, servable: Any, signature_key: str, seconds: float, rows: int) -> None:
        try:
            costs = self._costs.setdefault(servable, {})
        except TypeError:  # not weakly referenceable: never measured, never inline
            return
        key = (signature_key, size_class(rows))
        best = costs.get(key)
        if best is None or seconds < best:
            costs[key] = seconds

    def estimate(self, servable: Any, signature_key: str, rows: int) -> float | None:
        """A call of `rows` rows: the fastest measured in its size class, else
        in the nearest larger class measured (a bigger call costs at least as
        much), else None."""
        try:
            costs = self._costs.get(servable)
        except TypeError:
            return None
        if not costs:
            return None
        wanted = size_class(rows)
        larger = [(size, cost) for (key, size), cost in costs.items()
                  if key == signature_key and size >= wanted]
        return min(larger)[1] if larger else None
