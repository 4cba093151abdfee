from __future__ import annotations

import numpy as np
import pytest
from tensorflow_serving.apis import input_pb2

from serving.core.status import Code, ServingError
from serving.dataplane import DataPlane, ModelRef
from serving.generated import rollouts_serving_pb2
from serving.metrics import Metrics
from serving.request_checks import CLASSIFY_METHOD, REGRESS_METHOD
from tests.unit.dataplane_fakes import half_plus_two_core

M = "half_plus_two"


def examples(*xs: float) -> input_pb2.Input:
    inp = input_pb2.Input()
    for x in xs:
        inp.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    return inp


def x(*v: float) -> dict[str, np.ndarray]:
    return {"x": np.array(v, np.float32)}


def test_predict_default_is_highest_version_and_reports_it() -> None:
    core = half_plus_two_core()
    core.labels = {}
    r = DataPlane(core).predict(ModelRef(M), x(2, 3, 4))
    assert r.served.version == 2 and r.served.signature_name == "serving_default"
    assert r.outputs["y"].tolist() == [4.0, 4.5, 5.0]


def test_predict_version_label_and_split() -> None:
    core = half_plus_two_core()
    dp = DataPlane(core)
    assert dp.predict(ModelRef(M, version=1), x(2)).outputs["y"].tolist() == [3.0]
    r = dp.predict(ModelRef(M, label="canary"), x(2))
    assert (r.served.version, r.served.label) == (2, "canary")
    core.splits[M] = rollouts_serving_pb2.Split(canary_weight_bp=10_000, hash_key="u")
    assert dp.predict(ModelRef(M, headers={"u": "k"}), x(2)).served.label == "canary"
    core.splits[M].canary_weight_bp = 0
    assert dp.predict(ModelRef(M, headers={"u": "k"}), x(2)).served.version == 1
    assert core.in_flight == 0


@pytest.mark.parametrize("call, code, message", [
    (lambda dp: dp.predict(ModelRef("nope"), x(1)), Code.NOT_FOUND,
     "Servable not found for request: Latest(nope)"),
    (lambda dp: dp.predict(ModelRef(M), x(1), "bad"), Code.FAILED_PRECONDITION,
     'Serving signature key "bad" not found.'),
    (lambda dp: dp.predict(ModelRef(M), {}), Code.INVALID_ARGUMENT,
     "input size does not match signature: 0!=1 len({}) != len({x}). Sent extra: {}."
     " Missing but required: {x}."),
    (lambda dp: dp.predict(ModelRef(M), x(1), output_filter=["z"]), Code.INVALID_ARGUMENT,
     "output tensor alias not found in signature: z Outputs expected to be in the set {y}."),
    (lambda dp: dp.predict(ModelRef(M), x(1), output_filter=["y", "y"]), Code.INVALID_ARGUMENT,
     "duplicate output tensor alias: y"),
    (lambda dp: dp.classify(ModelRef(M), input_pb2.Input(), "classify_x_to_y"),
     Code.INVALID_ARGUMENT, "Input is empty."),
    (lambda dp: dp.regress(ModelRef(M), examples(1), "nope"), Code.INVALID_ARGUMENT,
     "No signature was found with the name: nope"),
    (lambda dp: dp.classify(ModelRef(M), examples(1)), Code.INVALID_ARGUMENT,
     "No classification inputs found in SignatureDef: "),
    (lambda dp: dp.get_model_metadata(ModelRef(M), []), Code.INVALID_ARGUMENT,
     "GetModelMetadataRequest must specify at least one metadata_field"),
])
def test_errors(call: object, code: Code, message: str) -> None:
    with pytest.raises(ServingError) as e:
        call(DataPlane(half_plus_two_core()))  # type: ignore[operator]
    assert e.value.code is code and e.value.message.startswith(message)


def test_classify_regress_multi() -> None:
    dp = DataPlane(half_plus_two_core())
    c = dp.classify(ModelRef(M, version=1), examples(2.0), "classify_x_to_y")
    assert [(k.label, k.score) for k in c.result.classifications[0].classes] == [("", 3.0)]
    assert c.served.signature_name == "classify_x_to_y"
    r = dp.regress(ModelRef(M, version=1), examples(2.0, 4.0), "regress_x_to_y")
    assert [v.value for v in r.result.regressions] == [3.0, 4.0]
    m = dp.multi_inference(ModelRef(M, version=1), [("classify_x_to_y", CLASSIFY_METHOD),
                                                    ("regress_x_to_y", REGRESS_METHOD)],
                           examples(2.0))
    assert m.results[1].regression_result.regressions[0].value == 3.0
    assert m.results[0].model_spec.version.value == 1
    with pytest.raises(ServingError, match="Duplicate evaluation of signature: regress_x_to_y"):
        dp.multi_inference(ModelRef(M), [("regress_x_to_y", REGRESS_METHOD)] * 2, examples(1))


def test_metrics_record_served_version_and_label() -> None:
    metrics = Metrics()
    dp = DataPlane(half_plus_two_core(), metrics, clock=iter([0.0, 0.5, 1.0, 1.25]).__next__)
    dp.predict(ModelRef(M, label="canary"), x(1))
    with pytest.raises(ServingError):
        dp.predict(ModelRef(M, version=1), x(1), "bad")
    text = metrics.render().decode()
    assert ('rollouts_requests_total{label="canary",model="half_plus_two",status="OK",'
            'version="2"} 1.0') in text
    assert ('rollouts_requests_total{label="",model="half_plus_two",'
            'status="FAILED_PRECONDITION",version="1"} 1.0') in text
    assert ('rollouts_request_latency_seconds_sum{label="canary",model="half_plus_two",'
            'version="2"} 0.5') in text


def test_signature_method_name_check_only_when_enabled() -> None:
    import dataclasses

    from tests.unit.dataplane_fakes import FakeCore, HalfPlusTwo

    # A native TF2 export: every signature's method_name is predict's or empty.
    servable = HalfPlusTwo()
    servable.signatures = {
        key: dataclasses.replace(sig, method_name="" if key == "serving_default"
                                 else "tensorflow/serving/predict")
        for key, sig in servable.signatures.items()}
    core = FakeCore(versions={M: {1: servable}})
    lenient = DataPlane(core)
    assert lenient.predict(ModelRef(M), x(2)).outputs["y"].tolist() == [3.0]
    assert lenient.regress(ModelRef(M), examples(2.0), "regress_x_to_y").result.regressions
    strict = DataPlane(core, method_name_check=True)
    with pytest.raises(ServingError) as info:
        strict.predict(ModelRef(M), x(2))
    assert info.value.code is Code.INTERNAL
    with pytest.raises(ServingError, match="Expected regression signature method_name to be"
                       " tensorflow/serving/regress. Was: tensorflow/serving/predict"):
        strict.regress(ModelRef(M), examples(2.0), "regress_x_to_y")
    with pytest.raises(ServingError, match="Expected classification signature method_name"):
        strict.multi_inference(ModelRef(M), [("classify_x_to_y", CLASSIFY_METHOD)],
                               examples(2.0))


# ----- predict_async: the event-loop entry point both transports call


def test_predict_async_without_a_batcher_runs_predict_in_the_given_executor() -> None:
    import asyncio
    import threading
    from concurrent.futures import ThreadPoolExecutor

    metrics = Metrics()
    core = half_plus_two_core()
    seen: list[str] = []
    servable = core.versions[M][2]
    run = servable.run

    def spy(*args: object, **kwargs: object) -> dict[str, np.ndarray]:
        seen.append(threading.current_thread().name)
        return run(*args, **kwargs)  # type: ignore[arg-type]

    servable.run = spy  # type: ignore[method-assign]
    dp = DataPlane(core, metrics)
    with ThreadPoolExecutor(1, thread_name_prefix="given") as pool:
        r = asyncio.run(dp.predict_async(ModelRef(M), x(2, 4), output_filter=["y"],
                                         entrypoint="GRPC", executor=pool))
    assert r.outputs["y"].tolist() == [4.0, 5.0] and r.served.version == 2
    assert seen and seen[0].startswith("given")
    assert core.in_flight == 0
    assert b'entrypoint="GRPC"' in metrics.render()


def test_predict_async_errors_are_the_blocking_paths() -> None:
    import asyncio

    dp = DataPlane(half_plus_two_core())
    with pytest.raises(ServingError) as e:
        asyncio.run(dp.predict_async(ModelRef(M), x(1), "bad"))
    assert e.value.code is Code.FAILED_PRECONDITION
