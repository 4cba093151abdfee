"""Version discovery rules, as pure functions (no file system access here).

Owns: what a version directory name is (`parse_version`), which child wins
when two names mean the same version (`index_children`), the version policies
latest{N} / all / specific (`select_versions`), and when a version directory
is complete enough to aspire (`ready_versions`). `source.py` does the I/O and
feeds these functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

_INT64_MAX = 2**63 - 1
# ASCII digits only: str.isdigit() would also accept e.g. Arabic-Indic digits.
_DIGITS = re.compile(r"[0-9]+", re.ASCII)

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


def parse_version(name: str) -> int | None:
    """The version a child directory name denotes, or None if it is not a version.

    Like TF Serving's ParseVersionNumber (strings::safe_strto64): decimal,
    leading zeros allowed, must fit in an int64. Unlike safe_strto64 we reject
    a sign and surrounding whitespace: "-1" or " 7" as a directory name is far
    more likely an accident than a version, and negative versions are
    meaningless to every API that takes one.
    """
    if not _DIGITS.fullmatch(name):
        return None
    value = int(name)
    return value if value <= _INT64_MAX else None


def index_children(names: Iterable[str]) -> tuple[dict[int, str], list[str]]:
    """Map version -> child name, skipping non-versions; warn about duplicates.

    TF Serving lists children as a sorted set and lets the later name win
    (IndexChildrenByVersion), so of "001" and "0001" it loads "001": the
    lexicographically greatest name. We pick the same one, so the same
    directory serves after switching servers.
    """
    by_version: dict[int, str] = {}
    warnings: list[str] = []
    for name in sorted(set(names)):
        version = parse_version(name)
        if version is None:
            continue
        if version in by_version:
            warnings.append(
                f"Duplicate version directories detected. Version {version} will be "
                f"loaded from {name}, {by_version[version]} will be ignored."
            )
        by_version[version] = name
    return by_version, warnings


@dataclass(frozen=True)
class VersionPolicy:
    """Which of the available versions to serve (TF Serving's ServableVersionPolicy)."""

    kind: Literal["latest", "all", "specific"]
    num_versions: int = 1
    versions: tuple[int, ...] = ()


def select_versions(policy: VersionPolicy, available: Iterable[int]) -> set[int]:
    """The versions `policy` aspires among `available`."""
    present = set(available)
    if policy.kind == "all":
        return present
    if policy.kind == "specific":
        # Specific versions that are absent are simply not aspired (TF Serving
        # only logs a warning for them).
        return present & set(policy.versions)
    # TF Serving serves at least one version even for num_versions 0.
    count = max(policy.num_versions, 1)
    return set(sorted(present, reverse=True)[:count])


@dataclass(frozen=True)
class DirSnapshot:
    """What one poll saw of a version directory."""

    fingerprint: str
    has_saved_model: bool


def ready_versions(
    previous: Mapping[int, DirSnapshot], current: Mapping[int, DirSnapshot]
) -> set[int]:
    """Versions complete enough to load: a SavedModel file present, unchanged since last poll.

    Requiring two equal observations is what keeps a half-copied directory
    from being loaded (TF Serving #1086 aspires a version the moment its
    directory name appears).
    """
    ready: set[int] = set()
    for version, snap in current.items():
        before = previous.get(version)
        if snap.has_saved_model and before is not None and before.fingerprint == snap.fingerprint:
            ready.add(version)
    return ready
