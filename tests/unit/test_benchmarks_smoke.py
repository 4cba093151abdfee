"""The benchmark suite imports cleanly and its pure helpers compute what they claim.

No servers, no TensorFlow models and no timings: the benchmarks themselves run
with `make bench`.
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import pytest

import benchmarks.__main__ as runner
from benchmarks import bench_memory, bench_predict, bench_scale, bench_shadow, harness, loadgen
from benchmarks.loadgen import LoadResult

BENCH_DIR = Path(runner.__file__).resolve().parent


@pytest.mark.parametrize("name", sorted(p.stem for p in BENCH_DIR.glob("*.py")))
def test_every_benchmark_module_imports(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    assert module.__doc__, f"benchmarks/{name}.py needs a docstring saying what it owns"


def test_discover_lists_every_bench_module_in_preferred_order(tmp_path: Path) -> None:
    for name in ("bench_zzz", "bench_predict", "bench_validate", "harness"):
        (tmp_path / f"{name}.py").write_text("")
    assert runner.discover(tmp_path) == ["validate", "predict", "zzz"]
    assert set(runner.discover()) >= {"predict", "swaps", "isolation", "scale", "memory",
                                      "validate"}


def test_quick_is_passed_only_to_modules_that_accept_it() -> None:
    assert runner.accepts_quick(BENCH_DIR / "bench_predict.py")
    assert not runner.accepts_quick(BENCH_DIR / "harness.py")


def test_splice_replaces_only_the_generated_block() -> None:
    document = f"# Results\n\nhand-written\n\n{runner.BEGIN}\nold\n{runner.END}\n\ntail\n"
    spliced = runner.splice(document, "new figures")
    assert "old" not in spliced and "new figures" in spliced
    assert spliced.startswith("# Results\n\nhand-written") and spliced.endswith("tail\n")
    # Idempotent, and appended when the markers are missing.
    assert runner.splice(spliced, "new figures") == spliced
    assert runner.splice("# R\n", "x").endswith(f"{runner.BEGIN}\n\nx\n\n{runner.END}\n")


def test_outcome_status_tells_missed_goals_from_failures() -> None:
    assert runner.Outcome("a", 0, 1.0, True).status == "goals met"
    assert runner.Outcome("a", 1, 1.0, True).status == "ran; a goal was missed"
    assert runner.Outcome("a", 1, 1.0, False).status == "failed (exit 1)"


def test_clean_output_drops_tensorflow_start_up_lines() -> None:
    text = "I0000 00:00:1.0 port.cc:153] oneDNN\n| a |\nWARNING: All log messages before\n| b |"
    assert runner.clean_output(text) == "| a |\n| b |"


def test_latencies_summarize_to_throughput_and_percentiles() -> None:
    r = loadgen.summarize_latencies("grpc", 4, 2.0, [0.001] * 99 + [0.101], 3, "t")
    assert (r.requests, r.errors, r.rps) == (100, 3, 50.0)
    assert r.p50_ms == pytest.approx(1.0)
    assert 1.0 < r.p99_ms < 101.0


def test_wrk_script_posts_the_body_and_writes_a_summary() -> None:
    script = loadgen.wrk_lua("/tmp/b o\"dy", "/tmp/out.json")
    assert 'wrk.method = "POST"' in script and "function done(" in script
    assert json.dumps("/tmp/b o\"dy") in script  # paths quoted safely for Lua


def test_wrk_summary_counts_errors_apart() -> None:
    text = '{"requests": 1000, "errors": 10, "micros": 2000000, "p50_us": 900, "p99_us": 4500}'
    r = loadgen.parse_wrk_json(text, 16)
    assert (r.requests, r.errors, r.rps, r.p50_ms, r.p99_ms) == (990, 10, 495.0, 0.9, 4.5)


def test_http_fallback_frames_requests_and_reads_content_length() -> None:
    raw = loadgen.http_request("127.0.0.1", 8501, "/v1/models/m:predict", b"{}")
    assert raw.startswith(b"POST /v1/models/m:predict HTTP/1.1\r\n")
    assert b"Content-Length: 2\r\n\r\n{}" in raw
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 17\r\n\r\n"
    assert loadgen.content_length(head) == 17
    assert loadgen.content_length(b"HTTP/1.1 204 No Content\r\n\r\n") == 0


def test_request_bodies_match_the_model_inputs() -> None:
    assert json.loads(harness.rest_body(0)) == {"instances": [1.0]}
    assert len(json.loads(harness.rest_body(784))["instances"][0]) == 784


def test_mlp_width_for_a_size_in_megabytes() -> None:
    hidden = harness.hidden_for_megabytes(200)
    assert 199e6 < hidden * (784 + 10 + 1) * 4 <= 200e6


def test_proc_status_and_prometheus_parsing() -> None:
    assert harness.parse_status_kb("Name:\tx\nVmRSS:\t  2048 kB\n", "VmRSS") == 2048
    assert harness.parse_status_kb("Name:\tx\n", "VmRSS") == 0
    text = (
        '# TYPE :tensorflow:cc:saved_model:load_attempt_count counter\n'
        ':tensorflow:cc:saved_model:load_attempt_count{model_path="/m/a/1",status="success"} 2\n'
        ':tensorflow:cc:saved_model:load_attempt_count{model_path="/m/a/1",status="fail"} 5\n'
        ':tensorflow:cc:saved_model:load_latency{model_path="/m/a/1"} 250000\n'
    )
    assert harness.load_attempts(text) == {"/m/a/1": 2.0}
    assert bench_scale.load_seconds(text, "/m/a/1") == 0.25
    assert bench_scale.load_seconds(text, "/m/b/1") is None


def test_swap_is_done_only_when_the_new_version_alone_is_available() -> None:
    assert harness.only_available({1: "END", 2: "AVAILABLE"}, 2)
    assert not harness.only_available({1: "AVAILABLE", 2: "AVAILABLE"}, 2)
    assert not harness.only_available({1: "AVAILABLE", 2: "LOADING"}, 2)


def test_ratios_and_memory_growth() -> None:
    assert harness.ratio(3.0, 1.5) == 2.0
    assert harness.ratio(None, 1.0) is None and harness.ratio(1.0, 0.0) is None
    # idle 500, one model 100 MB; a peak of 610 is 1.1 models.
    assert bench_memory.growth_ratio(500.0, 600.0, 610.0) == pytest.approx(1.1)


def test_model_config_text_round_trips() -> None:
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    text = harness.config_text([harness.model_config("m", Path("/models/m"), [3])])
    parsed = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    [config] = parsed.model_config_list.config
    assert (config.name, config.base_path, list(config.model_version_policy.specific.versions)
            ) == ("m", "/models/m", [3])
    assert 'name: "hp2"' in bench_predict.model_config({"hp2": Path("/b/hp2")})


def _result(rps: float, p50: float, transport: str = "rest") -> LoadResult:
    return LoadResult(transport, 1, 1.0, int(rps), 0, rps, p50, p50 * 2, "t")


def test_predict_goals_compare_side_by_side_figures() -> None:
    rows = {
        "kserve/rest/16": _result(100.0, 10.0),
        "kserve/grpc/16": _result(80.0, 12.0, "grpc"),
        "server/rest/16": _result(350.0, 5.0),
        "server/grpc/16": _result(250.0, 5.0, "grpc"),
        "server/rest/1": _result(1000.0, 0.7),
        "server/grpc/1": _result(1000.0, 0.7, "grpc"),
        "in-process/-/1": _result(2000.0, 0.1),
        "floor/grpc/1": _result(3000.0, 0.25, "grpc"),
        "batching/rest/64": _result(2500.0, 20.0),
        "batching/rest/16": _result(250.0, 20.0),
    }
    got = {name: (value, met) for name, value, _, met in bench_predict.goals(rows, True)}
    assert got["rest c=16 throughput / KServe rest c=16"] == (3.5, True)
    # gRPC vs gRPC, issue 18's 3x.
    assert got["grpc c=16 throughput / KServe grpc c=16"] == (3.125, True)
    assert got["rest c=16 throughput with batching / KServe rest c=16"] == (2.5, False)
    assert got["grpc c=16 throughput with batching / KServe grpc c=16"] == (None, None)
    assert got["batching rest c=64 / in-process c=1"] == (1.25, True)
    assert got["batching grpc c=64 / in-process c=1"] == (None, None)  # not measured
    assert got["rest p50 at c=1 (ms)"] == (0.7, True)
    # Issue 18: at most 0.3 ms over the floor's 0.25 plus the in-process 0.1.
    assert got["grpc p50 at c=1 (ms)"] == (0.7, False)
    rows["server/grpc/1"] = _result(1000.0, 0.6, "grpc")
    got = {name: (value, met) for name, value, _, met in bench_predict.goals(rows, True)}
    assert got["grpc p50 at c=1 (ms)"] == (0.6, True)
    del rows["floor/grpc/1"]  # no floor measured: the goal cannot be judged
    got = {name: (value, met) for name, value, _, met in bench_predict.goals(rows, True)}
    assert got["grpc p50 at c=1 (ms)"] == (0.6, None)
    without_kserve = bench_predict.goals(rows, False)
    assert without_kserve[0][1] is None and without_kserve[0][3] is None


def test_plan_inputs_are_in_sync_unless_canaries_start() -> None:
    seconds, actions = bench_scale.time_plan(20, canary=False, runs=1)
    # A measured run: the best of one timing is a finite number, not the initial inf.
    assert actions == 0 and math.isfinite(seconds)
    _, actions = bench_scale.time_plan(20, canary=True, runs=1)
    # Every model gets its canary version loaded: one reload per target, labels later.
    assert actions == 2
    assert bench_scale.time_plan(20, canary=True, runs=0) == (math.inf, 0)


def test_kserve_bound_is_kserve_cpu_over_floor_plus_tf_call() -> None:
    cpu = {"in-session/-/1": 200.0, "in-process/-/16": 900.0, "floor/rest/16": 50.0,
           "floor/grpc/16": 300.0,
           "server/rest/16": 500.0, "server/grpc/16": 1000.0,
           "kserve/rest/16": 1000.0, "kserve/grpc/16": 1500.0}
    table = bench_predict.bounds(bench_predict.MODELS[0], cpu, True)
    rest, grpc = table.rows
    assert rest[0] == "rest" and rest[3] == 250 and rest[6] == 4.0 and rest[7] == 2.0
    assert grpc[0] == "grpc" and grpc[3] == 500 and grpc[6] == 3.0 and grpc[7] == 1.5
    _, unmeasured = bench_predict.bounds(bench_predict.MODELS[0], cpu, False).rows
    assert unmeasured[5] is None and unmeasured[6] is None


def test_shadow_outcomes_are_read_per_model_and_differenced_per_window() -> None:
    text = (
        "# TYPE rollouts_shadow_comparisons_total counter\n"
        'rollouts_shadow_comparisons_total{baseline_version="1",model="mlp",outcome="same",'
        'version="2"} 40\n'
        'rollouts_shadow_comparisons_total{baseline_version="1",model="mlp",outcome="dropped",'
        'version="2"} 3\n'
        'rollouts_shadow_comparisons_total{baseline_version="1",model="hp2",outcome="same",'
        'version="2"} 9\n'
        'rollouts_shadow_abs_diff_total{baseline_version="1",model="mlp",version="2"} 0\n'
    )
    after = bench_shadow.shadow_outcomes(text, "mlp")
    assert after == {"same": 40.0, "dropped": 3.0}
    assert bench_shadow.delta(after, {"same": 10.0, "dropped": 3.0}) == {"same": 30.0}
    window = bench_shadow.Window(_result(100, 1.0), 500.0, {"same": 30.0, "dropped": 2.0})
    assert window.compared == 30.0


def test_shadow_windows_take_the_median_over_rounds() -> None:
    windows = [bench_shadow.Window(_result(rps, p50), cpu, {"same": 1.0})
               for rps, p50, cpu in ((100, 1.0, 400.0), (300, 3.0, None), (200, 2.0, 600.0))]
    merged = bench_shadow.median_window(windows)
    assert (merged.load.rps, merged.load.p50_ms, merged.load.p99_ms) == (200, 2.0, 4.0)
    assert merged.load.requests == 600 and merged.cpu_us == 500.0
    assert merged.outcomes == {"same": 3.0}


def test_shadow_bench_labels_both_versions_of_every_model() -> None:
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    text = bench_shadow.server_config({"hp2": Path("/b/hp2"), "mlp": Path("/b/mlp")})
    parsed = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    for config in parsed.model_config_list.config:
        assert list(config.model_version_policy.specific.versions) == [1, 2]
        assert dict(config.version_labels) == {"stable": 1, "canary": 2}


def test_shadow_ratios_pair_each_round_with_its_own_baseline() -> None:
    off = [bench_shadow.Window(_result(100, p50), None, {}) for p50 in (1.0, 10.0, 2.0)]
    on = [bench_shadow.Window(_result(100, p50), None, {}) for p50 in (1.1, 12.0, 3.0)]
    # Per round 1.1, 1.2, 1.5: the median is 1.2 (the medians' ratio would be 3/2).
    assert bench_shadow.paired_ratio(on, off, "p99_ms") == pytest.approx(1.2)
    assert bench_shadow.paired_ratio(on, off, "rps") == 1.0
