"""Shadow scoring in the data plane: sampling, the scorer's queue and handles,
and the rollouts_shadow_* series, over a numpy half_plus_two (v1: 0.5x+2,
v2: 0.5x+3, so v2 differs from v1 by exactly 1.0 per element)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import input_pb2

from serving.core.status import Code, ServingError
from serving.dataplane import DataPlane, ModelRef
from serving.generated import rollouts_serving_pb2 as pb
from serving.metrics import Metrics
from serving.routing import shadow_peer
from serving.shadow import ShadowScorer
from tests.unit.dataplane_fakes import FakeCore, HalfPlusTwo, half_plus_two_core

M = "half_plus_two"
WAIT_S = 30.0


def split(sample: float, weight_bp: int = 0, tolerance: float = 0.01,
          outputs: Sequence[str] = ()) -> pb.Split:
    return pb.Split(model_name=M, canary_weight_bp=weight_bp, hash_key="u",
                    shadow=pb.Shadow(sample=sample, tolerance=tolerance, outputs=list(outputs)))


def shadow_series(metrics: Metrics) -> dict[tuple[str, ...], float]:
    """(sample name, version, baseline_version[, outcome]) -> value."""
    out: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            if s.name.startswith("rollouts_shadow_"):
                key = (s.name, s.labels["version"], s.labels["baseline_version"])
                out[key + ((s.labels["outcome"],) if "outcome" in s.labels else ())] = s.value
    return out


def plane(core: FakeCore, capacity: int = 64) -> tuple[DataPlane, ShadowScorer, Metrics]:
    metrics = Metrics()
    scorer = ShadowScorer(core, metrics, capacity=capacity)
    return DataPlane(core, metrics, shadow=scorer), scorer, metrics


def x(*v: float) -> dict[str, np.ndarray]:
    return {"x": np.array(v, np.float32)}


def examples(*xs: float) -> input_pb2.Input:
    inp = input_pb2.Input()
    for value in xs:
        inp.example_list.examples.add().features.feature["x"].float_list.value.append(value)
    return inp


@pytest.mark.parametrize(("sample", "served", "rand", "peer"), [
    (0.0, "stable", 0.0, None),           # no shadow rate
    (1.0, "stable", 0.99, "canary"),      # stable's requests are scored on canary
    (1.0, "canary", 0.99, "stable"),      # and canary's on stable
    (0.25, "stable", 0.24, "canary"),     # sampled
    (0.25, "stable", 0.25, None),         # not sampled
    (1.0, "other", 0.0, None),            # a label outside the split
    (1.0, None, 0.0, None),               # a request that named a version
])
def test_shadow_peer(sample: float, served: str | None, rand: float, peer: str | None) -> None:
    assert shadow_peer(split(sample), served, lambda: rand) == peer


def test_dark_launch_scores_every_stable_request_on_the_canary() -> None:
    core = half_plus_two_core()
    core.splits[M] = split(1.0)
    dp, scorer, metrics = plane(core)
    for i in range(5):
        r = dp.predict(ModelRef(M, headers={"u": f"user-{i}"}), x(1, 2))
        assert r.served.version == 1 and r.outputs["y"].tolist() == [2.5, 3.0]
    assert scorer.wait_idle(WAIT_S)
    series = shadow_series(metrics)
    assert series[("rollouts_shadow_comparisons_total", "2", "1", "differs")] == 5
    assert series[("rollouts_shadow_abs_diff_total", "2", "1")] == pytest.approx(10.0)
    assert series[("rollouts_shadow_elements_total", "2", "1")] == 10
    assert core.in_flight == 0


def test_canary_requests_are_scored_on_stable_and_tolerance_decides() -> None:
    core = half_plus_two_core()
    core.splits[M] = split(1.0, weight_bp=10_000, tolerance=1.0)
    dp, scorer, metrics = plane(core)
    assert dp.predict(ModelRef(M, headers={"u": "k"}), x(4)).served.version == 2
    assert scorer.wait_idle(WAIT_S)
    # |diff| = 1.0 is not above a tolerance of 1.0.
    assert shadow_series(metrics)[("rollouts_shadow_comparisons_total", "1", "2", "same")] == 1


def test_classify_and_regress_are_scored() -> None:
    core = half_plus_two_core()
    core.splits[M] = split(1.0)
    dp, scorer, metrics = plane(core)
    c = dp.classify(ModelRef(M, headers={"u": "a"}), examples(1.0, 3.0), "classify_x_to_y")
    g = dp.regress(ModelRef(M, headers={"u": "b"}), examples(2.0), "regress_x_to_y")
    assert c.served.version == 1 and g.served.version == 1
    assert scorer.wait_idle(WAIT_S)
    series = shadow_series(metrics)
    assert series[("rollouts_shadow_comparisons_total", "2", "1", "differs")] == 2
    assert series[("rollouts_shadow_elements_total", "2", "1")] == 3


def test_requests_naming_a_version_or_without_shadow_are_not_scored() -> None:
    core = half_plus_two_core()
    core.splits[M] = split(1.0)
    dp, scorer, metrics = plane(core)
    dp.predict(ModelRef(M, version=1), x(1))
    core.splits[M] = split(0.0)
    dp.predict(ModelRef(M, headers={"u": "k"}), x(1))
    assert scorer.wait_idle(WAIT_S)
    assert shadow_series(metrics) == {}
    assert core.versions[M][2].calls == 0


def test_identical_versions_are_the_same_and_listed_outputs_only() -> None:
    core = FakeCore(versions={M: {1: HalfPlusTwo(2.0), 2: HalfPlusTwo(2.0)}},
                    labels={M: {"stable": 1, "canary": 2}})
    core.splits[M] = split(1.0, tolerance=0.0, outputs=["y"])
    dp, scorer, metrics = plane(core)
    dp.predict(ModelRef(M, headers={"u": "k"}), x(1, 2, 3))
    core.splits[M] = split(1.0, outputs=["scores"])
    dp.predict(ModelRef(M, headers={"u": "k"}), x(1))
    assert scorer.wait_idle(WAIT_S)
    series = shadow_series(metrics)
    assert series[("rollouts_shadow_comparisons_total", "2", "1", "same")] == 1
    assert series[("rollouts_shadow_comparisons_total", "2", "1", "mismatch")] == 1
    assert series[("rollouts_shadow_abs_diff_total", "2", "1")] == 0.0


class Failing(HalfPlusTwo):
    def run(self, signature_key: str, inputs: Mapping[str, np.ndarray],
            output_keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        raise ServingError(Code.INTERNAL, "canary exploded")


def test_a_shadow_error_is_an_outcome_and_never_reaches_the_user() -> None:
    core = FakeCore(versions={M: {1: HalfPlusTwo(2.0), 2: Failing()}},
                    labels={M: {"stable": 1, "canary": 2}})
    core.splits[M] = split(1.0)
    dp, scorer, metrics = plane(core)
    assert dp.predict(ModelRef(M, headers={"u": "k"}), x(2)).outputs["y"].tolist() == [3.0]
    assert scorer.wait_idle(WAIT_S)
    assert shadow_series(metrics)[("rollouts_shadow_comparisons_total", "2", "1", "error")] == 1


class Blocking(HalfPlusTwo):
    """Blocks every run until released: holds the scorer's worker busy."""

    def __init__(self) -> None:
        super().__init__(3.0)
        self.entered = threading.Event()
        self.release = threading.Event()

    def run(self, signature_key: str, inputs: Mapping[str, np.ndarray],
            output_keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        self.entered.set()
        assert self.release.wait(WAIT_S)
        return super().run(signature_key, inputs, output_keys)


def test_a_full_queue_drops_samples_and_users_are_answered() -> None:
    blocking = Blocking()
    core = FakeCore(versions={M: {1: HalfPlusTwo(2.0), 2: blocking}},
                    labels={M: {"stable": 1, "canary": 2}})
    core.splits[M] = split(1.0)
    dp, scorer, metrics = plane(core, capacity=2)
    try:
        dp.predict(ModelRef(M, headers={"u": "first"}), x(1))
        assert blocking.entered.wait(WAIT_S)  # the worker is stuck on the first job
        # The first shadow run holds its own handle; the user's is released.
        assert core.in_flight == 1
        answers = [dp.predict(ModelRef(M, headers={"u": f"u{i}"}), x(2)) for i in range(10)]
        assert all(a.served.version == 1 and a.outputs["y"].tolist() == [3.0] for a in answers)
        assert shadow_series(metrics)[
            ("rollouts_shadow_comparisons_total", "2", "1", "dropped")] == 8
    finally:
        blocking.release.set()
    assert scorer.wait_idle(WAIT_S)
    assert shadow_series(metrics)[("rollouts_shadow_comparisons_total", "2", "1", "differs")] == 3
    assert core.in_flight == 0
    scorer.stop(WAIT_S)
