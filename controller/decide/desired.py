"""Specs at a commit -> the desired fleet state (and the canary plans behind it).

Pure: takes the (path, text) pairs read from a commit's tree, validates them
exactly as `rollouts validate` does, and renders what every target should run.
A commit with any invalid spec yields no state at all, only the problems, so
the caller keeps serving the last good one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from controller.decide.analysis import Criteria
from controller.decide.fleet import DesiredModel, DesiredState, SplitRule
from controller.decide.progress import CanaryPlan, Step
from controller.decide.render import policy_name, render_split, spec_entry
from controller.spec.analysis import SERVER_ERROR_CODES
from controller.spec.load import LoadedSpec, load_texts
from controller.spec.model import RolloutSpec


@dataclass(frozen=True)
class Snapshot:
    """Everything the controller derives from one valid commit."""

    commit: str
    desired: DesiredState
    documents: Mapping[str, LoadedSpec]  # by model name

    def canary_plan(self, model: str) -> CanaryPlan | None:
        document = self.documents.get(model)
        return canary_plan(document.spec) if document else None

    def criteria(self, model: str) -> Criteria | None:
        document = self.documents.get(model)
        return criteria(document.spec) if document else None


def desired_from_tree(
    items: Iterable[tuple[str, str]], commit: str, model_root: str
) -> tuple[Snapshot | None, list[str]]:
    result = load_texts(items)
    if result.problems:
        return None, [str(problem) for problem in result.problems]
    documents = {doc.spec.spec.model.name: doc for doc in result.documents}
    models = {name: desired_model(doc.spec, model_root) for name, doc in sorted(documents.items())}
    return Snapshot(commit, DesiredState(commit, models), documents), []


def desired_model(doc: RolloutSpec, model_root: str, step: int = 0) -> DesiredModel:
    body = doc.spec
    entry = spec_entry(doc, model_root)
    split: SplitRule | None = None
    if body.canary is not None:
        split = render_split(doc, min(step, max(len(body.canary.steps) - 1, 0)))
    return DesiredModel(
        name=entry.name,
        base_path=entry.base_path,
        platform=entry.platform,
        versions=entry.versions,
        labels=dict(entry.labels),
        split=split,
        transition=policy_name(body.transition),
    )


def canary_plan(doc: RolloutSpec) -> CanaryPlan | None:
    body = doc.spec
    canary = body.canary
    if canary is None:
        return None
    analysis = canary.analysis
    steps = tuple(Step(s.weight * 100, float(s.hold)) for s in canary.steps)
    if not steps:
        # No weighted steps: only header-matched requests reach the canary; it is
        # judged for one hold of one interval, then promoted.
        steps = (Step(0, float(analysis.interval)),)
    return CanaryPlan(
        model=body.model.name,
        version=canary.version,
        steps=steps,
        interval_s=float(analysis.interval),
        failure_limit=analysis.failure_limit,
        on_no_data=analysis.on_no_data,
        promotion=canary.promotion,
        progress_deadline_s=float(canary.progress_deadline),
        paused=canary.paused,
        on_failure=analysis.on_failure,
    )


def criteria(doc: RolloutSpec) -> Criteria | None:
    canary = doc.spec.canary
    if canary is None:
        return None
    analysis = canary.analysis
    error_rate = analysis.checks.error_rate
    latency = analysis.checks.latency_p99
    diff = analysis.checks.prediction_diff
    return Criteria(
        min_requests=analysis.min_requests,
        on_no_data=analysis.on_no_data,
        failure_limit=analysis.failure_limit,
        error_rate_max=error_rate.max if error_rate else None,
        error_rate_max_increase=error_rate.max_increase if error_rate else None,
        latency_p99_max_s=float(latency.max) if latency and latency.max is not None else None,
        latency_p99_max_ratio=latency.max_ratio if latency else None,
        error_codes=frozenset(error_rate.codes) if error_rate else frozenset(SERVER_ERROR_CODES),
        prediction_max_differing_rate=diff.max_differing_rate if diff else None,
        prediction_max_mean_abs=diff.max_mean_abs if diff else None,
        judge=analysis.judge,
        confidence=analysis.confidence,
    )


def with_weight(model: DesiredModel, weight_bp: int) -> DesiredModel:
    """The same model with its split set to the canary weight of the current step."""
    if model.split is None or model.split.canary_weight_bp == weight_bp:
        return model
    split = SplitRule(
        model.split.stable_label,
        model.split.canary_label,
        weight_bp,
        model.split.hash_key,
        model.split.salt,
        model.split.match,
        model.split.shadow,
    )
    return DesiredModel(
        model.name,
        model.base_path,
        model.platform,
        model.versions,
        model.labels,
        split,
        model.transition,
    )


def held_out_of_traffic(model: DesiredModel) -> DesiredModel:
    """A failed canary held for a person (`analysis.onFailure: pause`): still loaded and
    labelled `canary`, but with no split at all, so no weighted, header-matched or
    shadow request reaches it; a request naming its version or label still does."""
    return DesiredModel(
        model.name,
        model.base_path,
        model.platform,
        model.versions,
        model.labels,
        None,
        model.transition,
    )
