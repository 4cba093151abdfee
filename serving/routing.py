"""Hash-split routing: which label (stable or canary) a request goes to, and
which other label also scores it (shadow sampling).

Pure functions of the split, the request headers and the assigned labels, so
the same request always gets the same answer and the rules are testable with
tables and hypothesis. ServerCore calls `route` for requests that name neither
a version nor a label while the model has a split.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping

from serving.generated import rollouts_serving_pb2

BUCKETS = 10_000  # basis points: the weight's unit and the hash space
DEFAULT_STABLE = "stable"
DEFAULT_CANARY = "canary"


def bucket(salt: str, key: str) -> int:
    """The key's stable bucket in [0, 10000) for this salt.

    blake2b rather than hash(): Python's string hash is salted per process, and
    a key must land on the same side on every replica and after restarts. The
    NUL separator keeps ("ab", "c") and ("a", "bc") apart.
    """
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def labels_of(split: rollouts_serving_pb2.Split) -> tuple[str, str]:
    """(stable, canary) label names with the proto's "" defaults applied."""
    return split.stable_label or DEFAULT_STABLE, split.canary_label or DEFAULT_CANARY


def wants_canary(
    split: rollouts_serving_pb2.Split,
    headers: Mapping[str, str],
    rand: Callable[[], float] = random.random,
) -> bool:
    """Whether this request belongs on the canary side, before label checks."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for m in split.match:
        if m.header and lowered.get(m.header.lower()) == m.value:
            return True
    weight = min(split.canary_weight_bp, BUCKETS)
    key = lowered.get(split.hash_key.lower()) if split.hash_key else None
    if key is not None:
        # Sticky: a key's bucket is fixed, so raising the weight only moves
        # keys whose bucket lies between the old and the new weight to canary.
        return bucket(split.salt, key) < weight
    return rand() * BUCKETS < weight


def route(
    split: rollouts_serving_pb2.Split,
    headers: Mapping[str, str],
    labels: Mapping[str, int],
    rand: Callable[[], float] = random.random,
) -> str | None:
    """The label to serve, falling back to the other side if the chosen label
    is not assigned, or None when neither is (TF Serving's default applies)."""
    stable, canary = labels_of(split)
    first, other = (canary, stable) if wants_canary(split, headers, rand) else (stable, canary)
    if first in labels:
        return first
    if other in labels:
        return other
    return None


def shadow_peer(
    split: rollouts_serving_pb2.Split,
    served_label: str | None,
    rand: Callable[[], float] = random.random,
) -> str | None:
    """The label whose version should also score a request the `served_label`
    side answered, or None: no shadow rate, a label outside the split (or a
    request that named a version), or not sampled this time. Sampling is
    random per request, not by user: shadow runs cost only server time, and a
    fixed subset of users would bias the comparison toward their inputs."""
    sample = split.shadow.sample
    if sample <= 0 or served_label is None:
        return None
    stable, canary = labels_of(split)
    if served_label == stable:
        peer = canary
    elif served_label == canary:
        peer = stable
    else:
        return None
    if sample < 1 and rand() >= sample:
        return None
    return peer
