"""Tables for the pure reconcile planner."""

from __future__ import annotations

from controller.decide.fleet import (
    DesiredModel,
    DesiredState,
    ObservedModel,
    ObservedTarget,
    SplitRule,
)
from controller.decide.plan import (
    ClearSplit,
    ModelEntry,
    ReloadConfig,
    SetSplit,
    SetTransition,
    action_text,
    plan,
)

A = "AVAILABLE"
SPLIT = SplitRule(canary_weight_bp=1000, hash_key="x-user-id")


def desired(*models: DesiredModel, commit: str = "c1") -> DesiredState:
    return DesiredState(commit, {m.name: m for m in models})


def model(
    versions: set[int],
    labels: dict[str, int],
    split: SplitRule | None = None,
    name: str = "m",
    transition: str = "availability_preserving",
) -> DesiredModel:
    return DesiredModel(name, f"/models/{name}", "tensorflow", frozenset(versions), labels, split,
                        transition)


def observed(
    states: dict[int, str],
    labels: dict[str, int],
    config_versions: set[int] | None = None,
    split: SplitRule | None = None,
    name: str = "m",
    errors: dict[int, str] | None = None,
    transition: str | None = "availability_preserving",
) -> ObservedModel:
    return ObservedModel(
        name=name,
        states=states,
        labels=labels,
        errors=errors or {},
        base_path=f"/models/{name}",
        platform="tensorflow",
        config_versions=frozenset(config_versions if config_versions is not None else states),
        split=split,
        transition=transition,
    )


def target(*models: ObservedModel, name: str = "t1", extension: bool = True) -> ObservedTarget:
    return ObservedTarget(name, True, {m.name: m for m in models}, extension=extension)


def reloads(p):
    return [a for a in p.actions if isinstance(a, ReloadConfig)]


def only_entry(action: ReloadConfig, name: str = "m") -> ModelEntry:
    return next(e for e in action.models if e.name == name)


def test_in_sync_plans_nothing() -> None:
    p = plan(desired(model({1}, {"stable": 1})), [target(observed({1: A}, {"stable": 1}))])
    assert p.actions == () and p.pending == () and p.in_sync


def test_new_model_on_empty_target_pushes_versions_without_labels() -> None:
    p = plan(desired(model({1}, {"stable": 1})), [target()])
    [reload] = reloads(p)
    entry = only_entry(reload)
    assert entry.versions == {1}
    assert entry.labels == {}  # version 1 not AVAILABLE yet: no label may point at it
    assert p.pending == (("m", 1),)
    assert SetTransition("t1", "m", "availability_preserving") in p.actions


def test_new_model_gets_label_once_available_everywhere() -> None:
    d = desired(model({1}, {"stable": 1}))
    t1 = target(observed({1: A}, {}), name="t1")
    t2 = target(observed({1: "LOADING"}, {}), name="t2")
    p = plan(d, [t1, t2])
    # Not yet AVAILABLE on t2, so no target gets the label.
    assert all(only_entry(r).labels == {} for r in reloads(p)) or not reloads(p)
    t2 = target(observed({1: A}, {}), name="t2")
    p = plan(d, [t1, t2])
    assert {r.target for r in reloads(p)} == {"t1", "t2"}
    assert all(only_entry(r).labels == {"stable": 1} for r in reloads(p))


def test_removed_model_is_dropped_from_config() -> None:
    p = plan(desired(), [target(observed({1: A}, {"stable": 1}))])
    [reload] = reloads(p)
    assert reload.models == ()
    assert "m: not in git" in reload.reasons


def test_removed_model_with_split_clears_split_first() -> None:
    obs = observed({1: A, 2: A}, {"stable": 1, "canary": 2}, split=SPLIT)
    p = plan(desired(), [target(obs)])
    assert isinstance(p.actions[0], ClearSplit)
    assert isinstance(p.actions[1], ReloadConfig)


def test_canary_bump_phase_one_loads_canary_keeps_stable_label() -> None:
    d = desired(model({1, 2}, {"stable": 1, "canary": 2}, SPLIT))
    p = plan(d, [target(observed({1: A}, {"stable": 1}))])
    [reload] = reloads(p)
    assert only_entry(reload).versions == {1, 2}
    assert only_entry(reload).labels == {"stable": 1}
    assert not any(isinstance(a, SetSplit) for a in p.actions)  # canary label not there yet
    assert p.pending == (("m", 2),)


def test_canary_bump_phase_two_labels_then_split() -> None:
    d = desired(model({1, 2}, {"stable": 1, "canary": 2}, SPLIT))
    p = plan(d, [target(observed({1: A, 2: A}, {"stable": 1}))])
    kinds = [type(a) for a in p.actions]
    assert kinds.index(ReloadConfig) < kinds.index(SetSplit)
    assert only_entry(reloads(p)[0]).labels == {"stable": 1, "canary": 2}
    assert SetSplit("t1", "m", SPLIT) in p.actions


def test_split_weight_change_only_sets_split() -> None:
    d = desired(model({1, 2}, {"stable": 1, "canary": 2}, SPLIT))
    old = SplitRule(canary_weight_bp=500, hash_key="x-user-id")
    obs = observed({1: A, 2: A}, {"stable": 1, "canary": 2}, split=old)
    p = plan(d, [target(obs)])
    assert p.actions == (ClearSplit("t1", "m"), SetSplit("t1", "m", SPLIT))


def test_promotion_moves_label_before_unloading_old_version() -> None:
    d = desired(model({2}, {"stable": 2}))
    obs = observed({1: A, 2: A}, {"stable": 1, "canary": 2}, split=SPLIT)
    p = plan(d, [target(obs)])
    assert p.actions[0] == ClearSplit("t1", "m")
    entry = only_entry(reloads(p)[0])
    assert entry.labels == {"stable": 2}
    assert entry.versions == {1, 2}  # 1 is kept while the stable label moves off it
    # Next pass: the label moved, so version 1 goes.
    obs2 = observed({1: A, 2: A}, {"stable": 2}, config_versions={1, 2})
    entry2 = only_entry(reloads(plan(d, [target(obs2)]))[0])
    assert entry2.versions == {2} and entry2.labels == {"stable": 2}


def test_revert_takes_canary_out_of_traffic_first() -> None:
    d = desired(model({1}, {"stable": 1}))
    obs = observed({1: A, 2: A}, {"stable": 1, "canary": 2}, split=SPLIT)
    p = plan(d, [target(obs)])
    assert p.actions[0] == ClearSplit("t1", "m")
    entry = only_entry(reloads(p)[0])
    assert entry.labels == {"stable": 1}
    assert entry.versions == {1, 2}  # canary label leaves before its version unloads
    obs2 = observed({1: A, 2: A}, {"stable": 1}, config_versions={1, 2})
    assert only_entry(reloads(plan(d, [target(obs2)]))[0]).versions == {1}


def test_label_drift_is_repaired() -> None:
    d = desired(model({1, 2}, {"stable": 1, "canary": 2}))
    obs = observed({1: A, 2: A}, {"stable": 2, "canary": 2})  # someone moved stable by hand
    entry = only_entry(reloads(plan(d, [target(obs)]))[0])
    assert entry.labels == {"stable": 1, "canary": 2}


def test_version_drift_is_repaired() -> None:
    d = desired(model({1}, {"stable": 1}))
    obs = observed({1: A, 3: A}, {"stable": 1}, config_versions={1, 3})
    [reload] = reloads(plan(d, [target(obs)]))
    assert only_entry(reload).versions == {1}


def test_base_path_drift_is_repaired() -> None:
    d = desired(model({1}, {"stable": 1}))
    obs = ObservedModel("m", {1: A}, {"stable": 1}, {}, "/elsewhere", "tensorflow",
                        frozenset({1}), None, "availability_preserving")
    [reload] = reloads(plan(d, [target(obs)]))
    assert "base_path" in reload.reasons[0]


def test_split_drift_is_repaired() -> None:
    d = desired(model({1, 2}, {"stable": 1, "canary": 2}, SPLIT))
    obs = observed({1: A, 2: A}, {"stable": 1, "canary": 2}, split=None)
    assert plan(d, [target(obs)]).actions == (SetSplit("t1", "m", SPLIT),)


def test_transition_policy_drift_is_set_before_reload() -> None:
    d = desired(model({2}, {"stable": 2}, transition="resource_preserving"))
    obs = observed({1: A}, {"stable": 1})
    p = plan(d, [target(obs)])
    assert p.actions[0] == SetTransition("t1", "m", "resource_preserving")
    assert isinstance(p.actions[1], ReloadConfig)


def test_restarted_target_gets_everything_again() -> None:
    d = desired(model({1, 2}, {"stable": 1, "canary": 2}, SPLIT))
    healthy = target(observed({1: A, 2: A}, {"stable": 1, "canary": 2}, split=SPLIT), name="t1")
    restarted = target(name="t2")
    p = plan(d, [healthy, restarted])
    assert [a.target for a in p.actions if isinstance(a, ReloadConfig)] == ["t2"]
    # Labels are not ready fleet-wide until t2 has loaded the versions again.
    assert only_entry(reloads(p)[0]).labels == {}


def test_target_down_is_reported_and_does_not_block_others() -> None:
    d = desired(model({1}, {"stable": 1}))
    down = ObservedTarget("t2", False, error="connection refused")
    p = plan(d, [target(observed({1: A}, {})), down])
    assert [r.target for r in reloads(p)] == ["t1"]
    assert only_entry(reloads(p)[0]).labels == {"stable": 1}
    assert any("unreachable" in f.message and f.target == "t2" for f in p.findings)


def test_load_failure_is_reported() -> None:
    d = desired(model({1, 2}, {"stable": 1, "canary": 2}))
    obs = observed({1: A, 2: "END"}, {"stable": 1}, errors={2: "bad model"})
    p = plan(d, [target(obs)])
    assert any("version 2 failed to load: bad model" in f.message for f in p.findings)
    # nothing to wait for: not pending, not in sync, no further pass can help
    assert p.pending == () and p.failed == (("m", 2),)
    assert not p.in_sync and not p.waiting


def test_plain_tf_serving_target_gets_config_but_no_split() -> None:
    d = desired(model({1, 2}, {"stable": 1, "canary": 2}, SPLIT))
    obs = ObservedModel("m", {1: A, 2: A}, {"stable": 1})
    p = plan(d, [target(obs, extension=False)])
    assert not any(isinstance(a, (SetSplit, SetTransition, ClearSplit)) for a in p.actions)
    assert only_entry(reloads(p)[0]).labels == {"stable": 1, "canary": 2}
    assert any("clients must choose a label" in f.message for f in p.findings)


def test_two_models_are_planned_independently() -> None:
    d = desired(model({1}, {"stable": 1}, name="a"), model({5}, {"stable": 5}, name="b"))
    t = target(observed({1: A}, {"stable": 1}, name="a"))
    [reload] = reloads(plan(d, [t]))
    assert [e.name for e in reload.models] == ["a", "b"]
    assert reload.reasons == ("b: missing on target",)


def test_models_in_sync_are_those_with_nothing_to_do_or_wait_for() -> None:
    d = desired(model({1}, {"stable": 1}, name="a"), model({5}, {"stable": 5}, name="b"),
                model({1, 2}, {"stable": 1, "canary": 2}, name="c"))
    t = target(observed({1: A}, {"stable": 1}, name="a"),
               observed({1: A, 2: "LOADING"}, {"stable": 1}, {1, 2}, name="c"))
    p = plan(d, [t])
    [reload] = reloads(p)
    assert reload.changed == ("b",)  # c's entry is already what it should be for now
    assert p.pending == (("b", 5), ("c", 2))
    assert p.models_in_sync(d.models) == {"a"}
    down = ObservedTarget("t2", False, error="connection refused")
    assert plan(d, [t, down]).models_in_sync(d.models) == frozenset()


def test_platform_drift_is_repaired() -> None:
    d = desired(model({1}, {"stable": 1}))
    obs = ObservedModel("m", {1: A}, {"stable": 1}, {}, "/models/m", "onnx",
                        frozenset({1}), None, "availability_preserving")
    [reload] = reloads(plan(d, [target(obs)]))
    assert reload.reasons == ("m: platform onnx != tensorflow",)


def test_version_drift_on_plain_tf_serving_is_read_from_live_versions() -> None:
    # Plain TF Serving does not report its config: what is loaded is the evidence.
    d = desired(model({2}, {"stable": 2}))
    obs = ObservedModel("m", {1: A, 2: A}, {"stable": 2})
    [reload] = reloads(plan(d, [target(obs, extension=False)]))
    assert reload.reasons == ("m: versions {1, 2} != {2}",)
    gone = ObservedModel("m", {1: "END", 2: A}, {"stable": 2})
    assert plan(d, [target(gone, extension=False)]).actions == ()


def test_no_spec_left_is_one_reload_to_serve_nothing_and_says_so() -> None:
    observed = ObservedTarget("t1", True, {
        "hp2": ObservedModel("hp2", {1: "AVAILABLE"}, {"stable": 1},
                             config_versions=frozenset({1})),
        "other": ObservedModel("other", {3: "AVAILABLE"}, config_versions=frozenset({3})),
    })
    result = plan(DesiredState("c2", {}), [observed])
    [action] = result.actions
    assert isinstance(action, ReloadConfig) and action.models == ()
    assert action.reasons == ("hp2: not in git", "other: not in git")
    assert action_text(action) == "reload config [no models: unload hp2, other]"
    assert plan(DesiredState("c2", {}), [ObservedTarget("t1", True, {})]).in_sync
