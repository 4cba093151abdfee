"""The reconcile planner: desired state + observed targets -> ordered actions.

A purely computational function with no side effects. The executor applies the
actions, observes the targets again and asks for a new plan, until the plan is
empty (in sync) or a deadline passes. Each pass moves the fleet one safe step:

1. Versions first. A label may only point at a version that is AVAILABLE on
   every reachable target (TF Serving's label rule, applied fleet-wide so all
   targets flip together), so until then a push loads the new versions and keeps
   the labels that serve traffic now.
2. Labels next, in a push that still keeps every version a label is moving away
   from; the following pass drops those versions. No request naming a label
   ever finds it pointing at a version being unloaded.
3. The split last, once both of its labels exist. A split that must go is
   cleared before any config push, so the canary leaves traffic first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from controller.decide.fleet import (
    DesiredModel,
    DesiredState,
    ObservedModel,
    ObservedTarget,
    SplitRule,
)


@dataclass(frozen=True)
class ModelEntry:
    """One model of a ModelServerConfig, as the planner wants it on a target."""

    name: str
    base_path: str
    platform: str
    versions: frozenset[int]
    labels: Mapping[str, int]


@dataclass(frozen=True)
class SetTransition:
    target: str
    model: str
    policy: str


@dataclass(frozen=True)
class ClearSplit:
    target: str
    model: str


@dataclass(frozen=True)
class ReloadConfig:
    target: str
    models: tuple[ModelEntry, ...]
    reasons: tuple[str, ...]
    # The models whose entry differs from what the target has (the push's cause).
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class SetSplit:
    target: str
    model: str
    split: SplitRule


Action = SetTransition | ClearSplit | ReloadConfig | SetSplit


@dataclass(frozen=True)
class Finding:
    """Something the operator should know that no action fixes."""

    target: str
    model: str
    message: str


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    findings: tuple[Finding, ...]
    # (model, version) pairs not yet AVAILABLE on every reachable target.
    pending: tuple[tuple[str, int], ...]
    unreachable: tuple[str, ...] = ()
    # (model, version) that ended in an error on some target: nothing to wait for.
    failed: tuple[tuple[str, int], ...] = ()

    @property
    def in_sync(self) -> bool:
        return not self.actions and not self.pending and not self.unreachable and not self.failed

    @property
    def waiting(self) -> bool:
        """True while another pass can still make progress (actions or loads under way)."""
        return bool(self.actions or self.pending)

    def models_in_sync(self, models: Iterable[str]) -> frozenset[str]:
        """Of `models`, those this plan has nothing to do or wait for on any target
        (none while a target cannot be seen)."""
        if self.unreachable:
            return frozenset()
        busy = {model for model, _ in self.pending} | {model for model, _ in self.failed}
        for action in self.actions:
            busy.update(action.changed if isinstance(action, ReloadConfig) else (action.model,))
        return frozenset(models) - busy


def action_text(action: Action) -> str:
    """One action in words, for `rollouts plan` and the controller's log."""
    if isinstance(action, ReloadConfig):
        if not action.models:
            # Git has no spec left: the target is told to serve nothing at all.
            return f"reload config [no models: unload {', '.join(sorted(action.changed))}]"
        models = ", ".join(
            f"{e.name} versions {sorted(e.versions)} labels {dict(sorted(e.labels.items()))}"
            for e in action.models
        )
        return f"reload config [{models}]"
    if isinstance(action, SetSplit):
        return f"set split {action.model} canary {action.split.canary_weight_bp / 100:g}%"
    if isinstance(action, ClearSplit):
        return f"clear split {action.model}"
    if isinstance(action, SetTransition):
        return f"set transition policy {action.model} {action.policy}"
    return repr(action)


def action_models(action: Action) -> tuple[str, ...]:
    """The models an action changes."""
    return tuple(sorted(action.changed)) if isinstance(action, ReloadConfig) else (action.model,)


def plan(desired: DesiredState, targets: Sequence[ObservedTarget]) -> Plan:
    reachable = [t for t in targets if t.reachable]
    findings = [
        Finding(t.name, "", f"target unreachable: {t.error or 'no answer'}")
        for t in targets
        if not t.reachable
    ]
    actions: list[Action] = []
    for target in reachable:
        target_actions, target_findings = _plan_target(desired, target, reachable)
        actions.extend(target_actions)
        findings.extend(target_findings)
    failed = _failed_versions(desired, reachable)
    pending = tuple(p for p in _pending_versions(desired, reachable) if p not in failed)
    unreachable = tuple(t.name for t in targets if not t.reachable)
    return Plan(tuple(actions), tuple(findings), pending, unreachable, failed)


def ready_labels(model: DesiredModel, targets: Sequence[ObservedTarget]) -> dict[str, int]:
    """The desired labels whose version is AVAILABLE on every given target."""
    return {
        label: version
        for label, version in model.labels.items()
        if targets and all(_available(t, model.name, version) for t in targets)
    }


def entry_for(
    model: DesiredModel, observed: ObservedModel | None, ready: Mapping[str, int]
) -> ModelEntry:
    """The config entry for one model on one target at this step of the rollout."""
    labels: dict[str, int] = {}
    if len(ready) < len(model.labels) and observed is not None:
        # Phase 1: keep the labels that serve traffic now, while new versions load.
        labels.update(
            {
                label: version
                for label, version in observed.labels.items()
                if observed.is_available(version)
            }
        )
    labels.update(ready)
    versions = set(model.versions)
    if observed is not None:
        # Keep any version a label is moving away from (or losing) in this push;
        # the next pass, with the labels moved, drops it.
        versions.update(
            version
            for label, version in observed.labels.items()
            if observed.is_available(version) and labels.get(label) != version
        )
    versions.update(labels.values())
    return ModelEntry(model.name, model.base_path, model.platform, frozenset(versions), labels)


def _plan_target(
    desired: DesiredState, target: ObservedTarget, reachable: Sequence[ObservedTarget]
) -> tuple[list[Action], list[Finding]]:
    before: list[Action] = []
    after: list[Action] = []
    findings: list[Finding] = []
    entries: list[ModelEntry] = []
    reasons: list[str] = []
    changed: list[str] = []
    for name in sorted(desired.models):
        model = desired.models[name]
        observed = target.models.get(name)
        ready = ready_labels(model, reachable)
        entry = entry_for(model, observed, ready)
        entries.append(entry)
        reason = _config_drift(entry, observed, target.extension)
        if reason:
            reasons.append(f"{name}: {reason}")
            changed.append(name)
        findings.extend(_load_errors(target.name, model, observed))
        if not target.extension:
            if model.split is not None:
                findings.append(
                    Finding(
                        target.name,
                        name,
                        "target has no split support (plain TF Serving): "
                        "clients must choose a label",
                    )
                )
            continue
        if observed is not None and observed.transition not in (None, model.transition):
            before.append(SetTransition(target.name, name, model.transition))
        elif observed is None:
            after.append(SetTransition(target.name, name, model.transition))
        split_wanted = model.split if _split_labels_exist(model.split, entry.labels) else None
        if observed is not None and observed.split is not None and observed.split != split_wanted:
            before.append(ClearSplit(target.name, name))
        if split_wanted is not None and (observed is None or observed.split != split_wanted):
            after.append(SetSplit(target.name, name, split_wanted))
    for name in sorted(set(target.models) - set(desired.models)):
        reasons.append(f"{name}: not in git")
        changed.append(name)
        if target.extension and target.models[name].split is not None:
            before.append(ClearSplit(target.name, name))
    actions = list(before)
    if reasons:
        actions.append(
            ReloadConfig(target.name, tuple(entries), tuple(reasons), tuple(changed))
        )
    actions.extend(after)
    return actions, findings


def _split_labels_exist(split: SplitRule | None, labels: Mapping[str, int]) -> bool:
    return split is not None and split.stable_label in labels and split.canary_label in labels


def _config_drift(entry: ModelEntry, observed: ObservedModel | None, extension: bool) -> str:
    if observed is None:
        return "missing on target"
    if dict(observed.labels) != dict(entry.labels):
        return f"labels {dict(observed.labels)} != {dict(entry.labels)}"
    if extension:
        if observed.config_versions != entry.versions:
            return f"versions {_fmt(observed.config_versions)} != {_fmt(entry.versions)}"
        if observed.base_path is not None and observed.base_path != entry.base_path:
            return f"base_path {observed.base_path} != {entry.base_path}"
        if observed.platform is not None and observed.platform != entry.platform:
            return f"platform {observed.platform} != {entry.platform}"
        return ""
    live = frozenset(v for v, s in observed.states.items() if s != "END")
    if live != entry.versions:
        return f"versions {_fmt(live)} != {_fmt(entry.versions)}"
    return ""


def _load_errors(target: str, model: DesiredModel, observed: ObservedModel | None) -> list[Finding]:
    if observed is None:
        return []
    return [
        Finding(target, model.name, f"version {version} failed to load: {error}")
        for version, error in sorted(observed.errors.items())
        if version in model.versions and error and observed.state(version) == "END"
    ]


def _pending_versions(
    desired: DesiredState, targets: Sequence[ObservedTarget]
) -> tuple[tuple[str, int], ...]:
    pending = [
        (name, version)
        for name in sorted(desired.models)
        for version in sorted(desired.models[name].versions)
        if targets and not all(_available(t, name, version) for t in targets)
    ]
    return tuple(pending)


def _failed_versions(
    desired: DesiredState, targets: Sequence[ObservedTarget]
) -> tuple[tuple[str, int], ...]:
    failed = []
    for name in sorted(desired.models):
        for version in sorted(desired.models[name].versions):
            for target in targets:
                seen = target.models.get(name)
                if seen is not None and seen.state(version) == "END" and seen.errors.get(version):
                    failed.append((name, version))
                    break
    return tuple(failed)


def _available(target: ObservedTarget, model: str, version: int) -> bool:
    observed = target.models.get(model)
    return observed is not None and observed.is_available(version)


def _fmt(versions: frozenset[int] | None) -> str:
    return "unknown" if versions is None else "{" + ", ".join(map(str, sorted(versions))) + "}"
