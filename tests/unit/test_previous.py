"""Tables for instant rollback: the previous stable kept loaded after stable moves."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from controller.adapters.gitresults import FileChanges
from controller.decide.desired import desired_from_tree
from controller.decide.fleet import DesiredState, ObservedModel, ObservedTarget
from controller.decide.plan import ReloadConfig, entry_for, plan, ready_labels
from controller.decide.previous import (
    KeptPrevious,
    Revision,
    StableMove,
    history_start,
    keep_previous,
    kept_previous,
    last_stable_move,
    with_previous,
)
from controller.decide.render import model_server_config
from controller.runtime.previous import PreviousVersions
from controller.spec.load import load_texts
from controller.spec.model import RolloutSpec

A = "AVAILABLE"
AT = 10_000.0  # the committer time of the commit that moved stable
PATH = "rollouts/m.yaml"


def text(stable: int = 2, extra: str = "", labels: str = "") -> str:
    return (
        "apiVersion: rollouts/v1\nkind: ModelRollout\nmetadata: {name: m}\n"
        f"spec:\n  model: {{name: m}}\n  stable: {stable}\n{extra}{labels}"
    )


def doc(stable: int = 2, extra: str = "", labels: str = "") -> RolloutSpec:
    result = load_texts([(PATH, text(stable, extra, labels))])
    assert not result.problems, result.problems
    return result.documents[0].spec


def desired_at(stable: int, kept: KeptPrevious | None, labels: str = "") -> DesiredState:
    snapshot, problems = desired_from_tree([(PATH, text(stable, labels=labels))], "c", "/models")
    assert snapshot is not None, problems
    return keep_previous(snapshot.desired, {"m": kept} if kept else {})


def target(states: dict[int, str], labels: dict[str, int], name: str = "t") -> ObservedTarget:
    seen = ObservedModel("m", states, labels, base_path="/models/m", platform="tensorflow",
                         config_versions=frozenset(states), transition="availability_preserving")
    return ObservedTarget(name, True, {"m": seen})


@pytest.mark.parametrize(
    ("extra", "move", "now", "expected"),
    [
        # availability-preserving by default: 10m from the commit that moved stable
        ("", StableMove("p", AT, 1), AT, (1, AT + 600)),
        ("", StableMove("p", AT, 1), AT + 599.9, (1, AT + 600)),
        ("", StableMove("p", AT, 1), AT + 600, None),  # the window is over: dropped
        ("  keepPrevious: 3s\n", StableMove("p", AT, 1), AT + 2, (1, AT + 3)),
        ("  keepPrevious: 3s\n", StableMove("p", AT, 1), AT + 3, None),
        ("  keepPrevious: 0s\n", StableMove("p", AT, 1), AT, None),  # disabled
        ("  transition: resource\n", StableMove("p", AT, 1), AT, None),  # default 0 there
        ("  transition: resource\n  keepPrevious: 0s\n", StableMove("p", AT, 1), AT, None),
        ("", None, AT, None),  # stable never moved
        ("", StableMove("p", AT, 2), AT, None),  # moved back to what it is: nothing extra
    ],
)
def test_kept_previous(extra: str, move: StableMove | None, now: float,
                       expected: tuple[int, float] | None) -> None:
    kept = kept_previous(doc(2, extra), move, now)
    assert (None if kept is None else (kept.version, kept.until)) == expected
    if kept is not None:
        assert kept.commit == "p" and kept.model == "m"


@pytest.mark.parametrize(
    ("revisions", "expected"),
    [
        ([], None),
        # newest first: the first that changed stable is the move
        ([Revision("c3", 30, 2, 2), Revision("c2", 20, 2, 1), Revision("c1", 10, 1, None)],
         StableMove("c2", 20, 1)),
        # a revert of a promotion moves stable back: the newer version is the previous
        ([Revision("r", 40, 1, 2), Revision("p", 30, 2, 1)], StableMove("r", 40, 2)),
        # the file (or the model) appeared: there was no previous
        ([Revision("c1", 10, 1, None)], None),
        ([Revision("c2", 20, None, 1)], None),
        ([Revision("c2", 20, 3, 3)], None),  # only other fields changed in the window
    ],
)
def test_last_stable_move(revisions: list[Revision], expected: StableMove | None) -> None:
    assert last_stable_move(revisions) == expected


def test_history_start_is_the_longest_window() -> None:
    docs = [doc(2, "  keepPrevious: 3s\n"), doc(2, "  keepPrevious: 1h\n")]
    assert history_start(docs, AT) == AT - 3600
    assert history_start([doc(2, "  keepPrevious: 0s\n")], AT) is None
    assert history_start([], AT) is None


def test_inside_the_window_the_pushed_config_keeps_both_with_previous_labelled() -> None:
    kept = KeptPrevious("m", 1, AT + 600, "p")
    desired = desired_at(2, kept)
    model = desired.models["m"]
    assert model.versions == {1, 2} and dict(model.labels) == {"stable": 2, "previous": 1}
    assert model.split is None  # `previous` is never in the split
    # Just promoted: stable was 1, the canary 2; both AVAILABLE.
    observed = target({1: A, 2: A}, {"stable": 1, "canary": 2})
    entry = entry_for(model, observed.models["m"], ready_labels(model, [observed]))
    [config] = model_server_config([entry]).model_config_list.config
    assert list(config.model_version_policy.specific.versions) == [1, 2]
    assert dict(config.version_labels) == {"previous": 1, "stable": 2}


def test_after_the_window_the_label_goes_first_then_the_version() -> None:
    desired = desired_at(2, None)
    kept_now = target({1: A, 2: A}, {"stable": 2, "previous": 1})
    [first] = plan(desired, [kept_now]).actions
    assert isinstance(first, ReloadConfig)
    [entry] = first.models
    assert dict(entry.labels) == {"stable": 2} and entry.versions == {1, 2}
    moved = target({1: A, 2: A}, {"stable": 2})
    [second] = plan(desired, [moved]).actions
    assert isinstance(second, ReloadConfig) and second.models[0].versions == {2}


def test_a_revert_inside_the_window_is_one_label_move_with_no_load() -> None:
    # Promoted 1 -> 2, then a person reverted: stable 1 again, and 2 is the previous.
    kept = KeptPrevious("m", 2, AT + 600, "r")
    desired = desired_at(1, kept)
    fleet = [target({1: A, 2: A}, {"stable": 2, "previous": 1}, name)
             for name in ("t1", "t2")]
    result = plan(desired, fleet)
    assert result.pending == ()  # nothing to load: both versions are AVAILABLE
    for action in result.actions:
        assert isinstance(action, ReloadConfig)
        [entry] = action.models
        assert dict(entry.labels) == {"stable": 1, "previous": 2} and entry.versions == {1, 2}
    assert len(result.actions) == 2  # one push per target, and then in sync
    after = [target({1: A, 2: A}, {"stable": 1, "previous": 2}, n) for n in ("t1", "t2")]
    assert plan(desired, after).in_sync


def test_previous_is_labelled_only_once_available_everywhere() -> None:
    kept = KeptPrevious("m", 1, AT + 600, "p")
    model = desired_at(2, kept).models["m"]
    # A replica that started inside the window: version 1 is still loading there.
    fresh = target({2: A, 1: "LOADING"}, {"stable": 2}, "t2")
    old = target({1: A, 2: A}, {"stable": 2, "previous": 1}, "t1")
    assert ready_labels(model, [old, fresh]) == {"stable": 2}
    result = plan(DesiredState("c", {"m": model}), [old, fresh])
    assert ("m", 1) in result.pending
    for action in result.actions:
        assert isinstance(action, ReloadConfig)
        assert "previous" not in action.models[0].labels or action.target == "t1"


def test_a_specs_own_previous_label_wins_and_the_version_is_still_kept() -> None:
    kept = KeptPrevious("m", 1, AT + 600, "p")
    model = desired_at(2, kept, labels="  keep: [5]\n  labels: {previous: 5}\n").models["m"]
    assert dict(model.labels) == {"stable": 2, "previous": 5}
    assert model.versions == {1, 2, 5}
    assert with_previous(model, None) is model


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  transition: resource\n  keepPrevious: 5m\n",
         "keepPrevious 5m would hold two versions of a model whose transition is resource"),
        ("  keepPrevious: 0\n", "durations are strings with a unit"),
        ("  keepPrevious: soon\n", "invalid duration 'soon'"),
    ],
)
def test_bad_keep_previous_is_refused_with_its_position(extra: str, message: str) -> None:
    body = text(2, extra)
    result = load_texts([(PATH, body)])
    [problem] = result.problems
    line = 1 + next(i for i, t in enumerate(body.splitlines()) if "keepPrevious" in t)
    assert message in problem.message and problem.line == line, problem


class FakeHistory:
    """Spec texts by commit and first-parent commits, newest first; counts git calls."""

    def __init__(self, commits: Sequence[tuple[str, int, str | None]]) -> None:
        # (sha, committed_at, text of rollouts/m.yaml or None), oldest first
        self.texts = {sha: body for sha, _, body in commits}
        self.changes = [
            FileChanges(sha, commits[i - 1][0] if i else None, when, (PATH,))
            for i, (sha, when, _) in enumerate(commits)
        ][::-1]
        self.calls = 0

    def file_changes(self, head: str, folder: str, since: float) -> list[FileChanges]:
        self.calls += 1
        return [c for c in self.changes if c.committed_at >= since]

    def read_file(self, commit: str, path: str) -> str | None:
        return self.texts.get(commit) if path == PATH else None


def test_runtime_finds_the_window_from_history_alone_and_caches_per_head() -> None:
    history = FakeHistory([("c1", 100, text(1)), ("p", 1000, text(2)),
                           ("x", 1100, text(2, "  keep: [7]\n"))])
    snapshot, _ = desired_from_tree([(PATH, text(2, "  keep: [7]\n"))], "x", "/models")
    assert snapshot is not None
    versions = PreviousVersions(history, "rollouts")
    assert versions.kept(snapshot, 1200) == {"m": KeptPrevious("m", 1, 1600, "p")}
    # A restarted controller (a new instance) knows the same window.
    assert PreviousVersions(history, "rollouts").kept(snapshot, 1200) == versions.kept(
        snapshot, 1200)
    assert versions.kept(snapshot, 1600) == {}
    assert history.calls == 2  # one git log per head and instance, not per tick
