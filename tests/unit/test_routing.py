from __future__ import annotations

import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from serving.generated import rollouts_serving_pb2
from serving.routing import BUCKETS, bucket, route

LABELS = {"stable": 1, "canary": 2}


def split(weight: int, salt: str = "", **kw: Any) -> rollouts_serving_pb2.Split:
    return rollouts_serving_pb2.Split(model_name="m", canary_weight_bp=weight,
                                      hash_key="x-user-id", salt=salt, **kw)


@given(st.text(), st.text(), st.integers(0, BUCKETS))
def test_same_key_same_side(key: str, salt: str, weight: int) -> None:
    s = split(weight, salt)
    assert route(s, {"x-user-id": key}, LABELS) == route(s, {"X-User-Id": key}, LABELS)


@given(st.text(), st.text(), st.integers(0, BUCKETS), st.integers(0, BUCKETS))
def test_raising_weight_never_moves_a_key_back_to_stable(
        key: str, salt: str, w1: int, w2: int) -> None:
    low, high = sorted((w1, w2))
    if route(split(low, salt), {"x-user-id": key}, LABELS) == "canary":
        assert route(split(high, salt), {"x-user-id": key}, LABELS) == "canary"


def test_salt_changes_assignment() -> None:
    keys = [f"user-{i}" for i in range(1000)]
    a = [bucket("a", k) for k in keys]
    b = [bucket("b", k) for k in keys]
    assert sum(x != y for x, y in zip(a, b, strict=True)) > 900


@given(st.integers(0, BUCKETS))
def test_observed_split_within_one_point(weight: int) -> None:
    s = split(weight, "salt")
    n = 10_000
    canary = sum(route(s, {"x-user-id": f"u{i}"}, LABELS) == "canary" for i in range(n))
    assert abs(canary / n - weight / BUCKETS) <= 0.01


def test_header_match_forces_canary() -> None:
    s = split(0, match=[rollouts_serving_pb2.HeaderMatch(header="X-Canary", value="1")])
    assert route(s, {"x-canary": "1", "x-user-id": "u"}, LABELS) == "canary"
    assert route(s, {"x-canary": "2", "x-user-id": "u"}, LABELS) == "stable"


def test_no_key_is_weighted_random_with_injected_source() -> None:
    s = split(2500)
    assert route(s, {}, LABELS, rand=lambda: 0.2) == "canary"
    assert route(s, {}, LABELS, rand=lambda: 0.3) == "stable"
    rng = random.Random(7)
    hits = sum(route(s, {}, LABELS, rand=rng.random) == "canary" for _ in range(10_000))
    assert abs(hits / 10_000 - 0.25) < 0.02


def test_weight_edges_and_fallback() -> None:
    assert route(split(10_000), {"x-user-id": "k"}, LABELS) == "canary"
    assert route(split(0), {"x-user-id": "k"}, LABELS) == "stable"
    assert route(split(10_000), {"x-user-id": "k"}, {"stable": 1}) == "stable"
    assert route(split(0), {"x-user-id": "k"}, {"canary": 2}) == "canary"
    assert route(split(0), {"x-user-id": "k"}, {}) is None


def test_custom_label_names() -> None:
    s = split(10_000, stable_label="blue", canary_label="green")
    assert route(s, {"x-user-id": "k"}, {"blue": 1, "green": 2}) == "green"


# Buckets are a contract with users: a release that changed them would move
# users between stable and canary in the middle of a rollout.
GOLDEN = [("", "alice", 5339), ("", "bob", 5939), ("2026-q4", "alice", 5810), ("s", "", 3760)]


def test_buckets_never_change_between_releases() -> None:
    assert [bucket(salt, key) for salt, key, _ in GOLDEN] == [b for _, _, b in GOLDEN]


def test_buckets_are_the_same_in_every_process() -> None:
    import json
    import os
    import subprocess
    import sys

    code = ("import json, sys; from serving.routing import bucket; "
            "print(json.dumps([bucket(s, k) for s, k in json.loads(sys.argv[1])]))")
    pairs = json.dumps([[salt, key] for salt, key, _ in GOLDEN])
    for seed in ("1", "2"):  # Python's own str hash differs per seed; ours must not
        out = subprocess.run([sys.executable, "-c", code, pairs], capture_output=True, text=True,
                             check=True, env=dict(os.environ, PYTHONHASHSEED=seed)).stdout
        assert json.loads(out) == [b for _, _, b in GOLDEN]
