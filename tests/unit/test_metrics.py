from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from serving.core.status import Code
from serving.metrics import Metrics


def test_tf_serving_names_and_ours() -> None:
    m = Metrics(loaded_versions=lambda: {"hp2": 2})
    m.observe("hp2", 1, "stable", "Predict", "GRPC", Code.OK, 0.002)
    m.observe("hp2", 2, "canary", "Predict", "REST", Code.INVALID_ARGUMENT, 0.001)
    m.observe("hp2", 2, "canary", "MultiInference", "GRPC", Code.OK, 0.001)
    m.observe_load("/models/hp2/1", 1.5, True)
    text = m.render().decode()
    lines = text.splitlines()
    assert '# TYPE :tensorflow:serving:request_count counter' in lines
    assert ':tensorflow:serving:request_count{model_name="hp2",status="OK"} 1' in lines
    assert (':tensorflow:serving:request_count'
            '{model_name="hp2",status="INVALID_ARGUMENT"} 1') in lines
    assert (':tensorflow:serving:request_latency_count'
            '{model_name="hp2",API="Predict",entrypoint="GRPC"} 1') in lines
    assert ':tensorflow:serving:request_latency_sum{model_name="hp2",API="Predict",entrypoint="GRPC"} 2000' in lines  # noqa: E501
    assert ':tensorflow:cc:saved_model:load_latency{model_path="/models/hp2/1"} 1500000' in lines
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text.split("# TYPE rollouts", 1)[0] and
                                                text[text.index("# HELP rollouts"):])
        for s in f.samples
    }
    key = (("label", "canary"), ("model", "hp2"), ("status", "INVALID_ARGUMENT"), ("version", "2"))
    assert samples[("rollouts_requests_total", key)] == 1.0
    assert samples[("rollouts_loaded_versions", (("model", "hp2"),))] == 2.0
    bucket = (("label", "stable"), ("le", "0.0025"), ("model", "hp2"), ("version", "1"))
    assert samples[("rollouts_request_latency_seconds_bucket", bucket)] == 1.0
    below = (("label", "stable"), ("le", "0.001"), ("model", "hp2"), ("version", "1"))
    assert samples[("rollouts_request_latency_seconds_bucket", below)] == 0.0
