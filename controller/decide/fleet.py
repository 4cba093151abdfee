"""Desired and observed state of the serving fleet, as plain immutable values.

`DesiredState` is what git says (rendered from the specs at one commit);
`ObservedTarget` is what one serving target reports. Both are pure data so the
planner can compare them without any I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

AVAILABLE = "AVAILABLE"


@dataclass(frozen=True)
class TargetAddress:
    """Where one serving target listens: gRPC, and optionally its metrics URL."""

    name: str
    grpc_address: str
    metrics_url: str = ""


@dataclass(frozen=True)
class ShadowRule:
    """Shadow scoring set with a split: the share of requests also scored on the
    other label's version, and how answers are compared (serving/shadow_compare)."""

    sample: float
    tolerance: float = 0.0
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class SplitRule:
    """How a model's unversioned traffic divides between two labels."""

    stable_label: str = "stable"
    canary_label: str = "canary"
    canary_weight_bp: int = 0
    hash_key: str = ""
    salt: str = ""
    match: tuple[tuple[str, str], ...] = ()
    shadow: ShadowRule | None = None


@dataclass(frozen=True)
class DesiredModel:
    name: str
    base_path: str
    platform: str
    versions: frozenset[int]
    labels: Mapping[str, int]
    split: SplitRule | None = None
    transition: str = "availability_preserving"


@dataclass(frozen=True)
class DesiredState:
    commit: str
    models: Mapping[str, DesiredModel]


@dataclass(frozen=True)
class ObservedModel:
    name: str
    states: Mapping[int, str]
    labels: Mapping[str, int] = field(default_factory=dict)
    errors: Mapping[int, str] = field(default_factory=dict)
    # What the target's applied config says; None where the target cannot tell
    # (a real TF Serving has no call that returns its config).
    base_path: str | None = None
    platform: str | None = None
    config_versions: frozenset[int] | None = None
    split: SplitRule | None = None
    transition: str | None = None

    def state(self, version: int) -> str | None:
        return self.states.get(version)

    def is_available(self, version: int) -> bool:
        return self.states.get(version) == AVAILABLE


@dataclass(frozen=True)
class ObservedTarget:
    name: str
    reachable: bool
    models: Mapping[str, ObservedModel] = field(default_factory=dict)
    error: str = ""
    # False for a plain TF Serving: no split, no policy, no config read-back.
    extension: bool = True
