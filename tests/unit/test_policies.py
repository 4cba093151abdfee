"""Transition-policy truth tables, including every case of TF Serving's
availability_preserving_policy_test.cc and resource_preserving_policy_test.cc.

LoaderHarness states map onto ours: kNew=START, kLoading=LOADING, kReady=AVAILABLE,
kUnloading/kUnloadRequested=UNLOADING, kDisabled/kError=END.
"""

from __future__ import annotations

import itertools

import pytest

from serving.core.policies import (
    Action,
    TransitionPolicy,
    VersionSnapshot,
    VersionState,
    next_action,
)

S, L, A, U, E = (
    VersionState.START,
    VersionState.LOADING,
    VersionState.AVAILABLE,
    VersionState.UNLOADING,
    VersionState.END,
)


def snaps(*rows: tuple[int, VersionState, bool]) -> list[VersionSnapshot]:
    return [VersionSnapshot(v, s, a) for v, s, a in rows]


AVAILABILITY_CASES = {
    # TF Serving: LoadsNewAspired
    "loads_highest_new_aspired": (
        snaps((1, U, False), (2, E, False), (3, A, True), (4, S, True), (5, S, True)),
        Action("load", 5),
    ),
    # UnloadsNonAspiredFirst
    "unloads_unaspired_first": (
        snaps((1, U, False), (2, E, False), (3, A, False), (4, A, True), (5, S, True)),
        Action("unload", 3),
    ),
    # UnloadsFirstNonAspiredWhenNoAspired
    "unloads_when_nothing_aspired": (
        snaps((1, E, False), (2, A, False), (3, E, False)),
        Action("unload", 2),
    ),
    # ReturnsNoActionWhenNone
    "no_action_when_none": (
        snaps((1, A, True), (2, E, True), (3, L, True), (4, U, False), (5, E, False)),
        None,
    ),
    # DoesNotUnloadWhenOtherNotReady
    "keeps_old_while_new_loads": (snaps((1, A, False), (2, L, True)), None),
    # DoesNotUnloadWhenOtherInError
    "keeps_old_when_new_failed": (snaps((1, A, False), (2, E, True)), None),
    # UnloadIfOtherReadyEvenIfLoading
    "unloads_if_other_ready_even_if_loading": (
        snaps((1, A, False), (2, L, True), (3, A, True)),
        Action("unload", 1),
    ),
    # UnloadIfOtherReadyEvenIfError
    "unloads_if_other_ready_even_if_error": (
        snaps((1, A, False), (2, E, True), (3, A, True)),
        Action("unload", 1),
    ),
    # UnloadIfNoAspiredVersionsReady
    "unloads_lowest_of_several_unaspired": (
        snaps((2, A, False), (1, A, False), (3, E, True), (4, L, True)),
        Action("unload", 1),
    ),
    # Ours: the swap in order, load new before unloading old.
    "swap_step1_load_new": (snaps((1, A, False), (2, S, True)), Action("load", 2)),
    "swap_step2_unload_old": (snaps((1, A, False), (2, A, True)), Action("unload", 1)),
    "empty": ([], None),
    "steady": (snaps((1, A, True)), None),
    "unaspired_start_is_not_loaded": (snaps((1, S, False)), None),
}


@pytest.mark.parametrize(
    ("versions", "expected"), AVAILABILITY_CASES.values(), ids=AVAILABILITY_CASES.keys()
)
def test_availability_preserving(versions: list[VersionSnapshot], expected: Action | None) -> None:
    assert next_action(TransitionPolicy.AVAILABILITY_PRESERVING, versions) == expected


RESOURCE_CASES = {
    # TF Serving: UnloadsFirstNonAspired
    "unloads_first_unaspired": (
        snaps((1, U, False), (2, A, True), (3, A, False), (4, S, True), (5, A, False)),
        Action("unload", 3),
    ),
    # LoadsFirstAspiredWhenNoneToUnload
    "loads_highest_aspired_when_none_to_unload": (
        snaps((1, A, True), (2, L, True), (3, S, True), (4, E, False), (5, S, True)),
        Action("load", 5),
    ),
    # ReturnsNoActionWhenNone
    "no_action_when_none": (
        snaps((1, A, True), (2, E, True), (3, L, True), (4, U, False), (5, E, False)),
        None,
    ),
    # DoesNotLoadWhenOthersStillUnloading
    "waits_for_unload_before_loading": (snaps((1, U, False), (2, S, True)), None),
    # LoadIfUnaspiredIsError
    "loads_if_unaspired_ended_in_error": (snaps((1, E, False), (2, S, True)), Action("load", 2)),
    # ErrorAndUnloadRequestedPreventLoading
    "error_and_unloading_prevent_loading": (
        snaps((1, E, False), (2, U, False), (3, S, True)),
        None,
    ),
    # ErrorAndDisabledAllowLoading
    "error_and_disabled_allow_loading": (
        snaps((1, E, False), (2, E, False), (3, S, True)),
        Action("load", 3),
    ),
    # Ours: the swap in order, unload old before loading new.
    "swap_step1_unload_old": (snaps((1, A, False), (2, S, True)), Action("unload", 1)),
    "swap_step2_wait": (snaps((1, U, False), (2, S, True)), None),
    "swap_step3_load_new": (snaps((1, E, False), (2, S, True)), Action("load", 2)),
    "unaspired_still_loading_blocks_load": (snaps((1, L, False), (2, S, True)), None),
    "unloads_lowest_regardless_of_order": (
        snaps((5, A, False), (3, A, False)),
        Action("unload", 3),
    ),
    "empty": ([], None),
}


@pytest.mark.parametrize(
    ("versions", "expected"), RESOURCE_CASES.values(), ids=RESOURCE_CASES.keys()
)
def test_resource_preserving(versions: list[VersionSnapshot], expected: Action | None) -> None:
    assert next_action(TransitionPolicy.RESOURCE_PRESERVING, versions) == expected


@pytest.mark.parametrize("policy", list(TransitionPolicy))
def test_policies_are_order_independent(policy: TransitionPolicy) -> None:
    cases = (
        AVAILABILITY_CASES if policy is TransitionPolicy.AVAILABILITY_PRESERVING else RESOURCE_CASES
    )
    for versions, expected in cases.values():
        for perm in itertools.islice(itertools.permutations(versions), 24):
            assert next_action(policy, list(perm)) == expected


@pytest.mark.parametrize("policy", list(TransitionPolicy))
def test_never_loads_an_unaspired_or_failed_version(policy: TransitionPolicy) -> None:
    # Exhaustive over two versions: a load targets only an aspired START version,
    # an unload only an unaspired AVAILABLE one.
    states = list(VersionState)
    for s1, a1, s2, a2 in itertools.product(states, (True, False), states, (True, False)):
        versions = snaps((1, s1, a1), (2, s2, a2))
        action = next_action(policy, versions)
        if action is None:
            continue
        target = next(v for v in versions if v.version == action.version)
        if action.kind == "load":
            assert target.is_aspired and target.state is S
        else:
            assert not target.is_aspired and target.state is A


def test_resource_preserving_never_loads_beside_an_unaspired_loaded_version() -> None:
    states = list(VersionState)
    for s1, s2 in itertools.product(states, states):
        versions = snaps((1, s1, False), (2, s2, True))
        action = next_action(TransitionPolicy.RESOURCE_PRESERVING, versions)
        if action is not None and action.kind == "load":
            assert s1 is E


def test_transition_policy_values_are_the_flag_values() -> None:
    assert TransitionPolicy("availability_preserving") is TransitionPolicy.AVAILABILITY_PRESERVING
    assert TransitionPolicy("resource_preserving") is TransitionPolicy.RESOURCE_PRESERVING
