from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.testclient import TestClient

from serving.batching import Batcher
from serving.config.batching import BatchingOptions
from serving.dataplane import DataPlane
from serving.metrics import Metrics, metrics_route
from serving.rest.inference import RestInference
from tests.unit.dataplane_fakes import FakeCore, half_plus_two_core

M = "/v1/models/half_plus_two"


def app(core: FakeCore | None = None, timeout_s: float = 10.0, batcher: Batcher | None = None,
        **kw: object) -> TestClient:
    metrics = Metrics()
    dp = DataPlane(core or half_plus_two_core(), metrics, batcher=batcher)
    rest = RestInference(dp, timeout_s=timeout_s, max_concurrency=4, metrics=metrics,
                         **kw)  # type: ignore[arg-type]
    return TestClient(rest.wrap(Starlette(routes=[*rest.routes(),
                                                  metrics_route("/metrics", metrics)])))


CLIENT = app()


@pytest.mark.parametrize("path, body, expected", [
    (f"{M}/versions/1:predict", {"instances": [2.0, 3.0, 4.0]}, {"predictions": [3.0, 3.5, 4.0]}),
    (f"{M}/versions/1:predict", {"inputs": [2.0, 3.0, 4.0]}, {"outputs": [3.0, 3.5, 4.0]}),
    (f"{M}/labels/stable:classify",
     {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}, {"results": [[["", 3.0]]]}),
    (f"{M}/labels/stable:regress",
     {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}, {"results": [3.0]}),
])
def test_exact_outputs(path: str, body: dict, expected: dict) -> None:
    r = CLIENT.post(path, json=body)
    assert r.status_code == 200 and r.json() == expected
    assert r.headers["x-model-version"] == "1"


def test_served_version_and_label_headers() -> None:
    r = CLIENT.post(f"{M}/labels/canary:predict", json={"instances": [2.0]})
    assert (r.headers["x-model-version"], r.headers["x-model-label"]) == ("2", "canary")
    assert r.json() == {"predictions": [4.0]}


@pytest.mark.parametrize("path, body, status, error", [
    (f"{M}/versions/1/labels/x:predict", b"{}", 400,
     f"Malformed request: POST {M}/versions/1/labels/x:predict"),
    ("/v1/models/nope:predict", b'{"instances": [1.0]}', 404,
     "Servable not found for request: Latest(nope)"),
    (f"{M}:predict", b"", 400, "JSON Parse error: The document is empty"),
    (f"{M}:predict", b'{"signature_name": "z", "instances": [1.0]}', 400,
     'Serving signature name: "z" not found in signature def'),
    (f"{M}:predict", b'{"instances": [[1.0], 2.0]}', 400, None),
    (f"{M}:predict", b'{"instances": ["a"]}', 400, None),
    (f"{M}:predict", b'{"instances": [{"b64": "@@"}]}', 400, None),
])
def test_errors(path: str, body: bytes, status: int, error: str | None) -> None:
    r = CLIENT.post(path, content=body)
    assert r.status_code == status
    if error is not None:
        assert r.json() == {"error": error}
    else:
        assert isinstance(r.json()["error"], str)


def test_huge_body_is_refused_before_parsing() -> None:
    client = app(max_body_bytes=1000)
    r = client.post(f"{M}:predict", content=b'{"instances": [' + b"1.0," * 1000 + b"1.0]}")
    assert r.status_code == 413 and "error" in r.json()


def slowed_core() -> tuple[FakeCore, threading.Event]:
    """half_plus_two whose version 1 answers only once the event is set (or after 5 s)."""
    core = half_plus_two_core()
    release = threading.Event()
    servable = core.versions["half_plus_two"][1]
    original = servable.run

    def slow(*a: object, **k: object) -> object:
        release.wait(5)  # bounded: the test releases it right after the response
        return original(*a, **k)  # type: ignore[arg-type]

    servable.run = slow  # type: ignore[method-assign,assignment]
    return core, release


def test_timeout_is_deadline_exceeded() -> None:
    core, release = slowed_core()
    client = app(core, timeout_s=0.2)
    r = client.post(f"{M}/versions/1:predict", json={"instances": [1.0]})
    release.set()
    assert r.status_code == 504 and r.json() == {"error": "Deadline Exceeded"}


@pytest.fixture
def batcher() -> Iterator[Batcher]:
    made = Batcher(BatchingOptions(num_batch_threads=1, batch_timeout_micros=1000))
    yield made
    made.stop(timeout=10)


def test_batched_predict_answers_as_unbatched(batcher: Batcher) -> None:
    client = app(batcher=batcher)
    for path, body in [(f"{M}/labels/canary:predict", {"instances": [2.0, 3.0]}),
                       (f"{M}/versions/1:predict", {"inputs": {"x": [2.0]}})]:
        batched, plain = client.post(path, json=body), CLIENT.post(path, json=body)
        assert (batched.status_code, batched.json()) == (plain.status_code, plain.json())
        assert batched.headers["x-model-version"] == plain.headers["x-model-version"]
    missing = client.post(f"{M}:predict", json={"signature_name": "z", "instances": [1.0]})
    assert missing.status_code == 400
    assert missing.json() == {"error": 'Serving signature name: "z" not found in signature def'}


def test_batched_timeout_is_deadline_exceeded(batcher: Batcher) -> None:
    core, release = slowed_core()
    client = app(core, timeout_s=0.2, batcher=batcher)
    r = client.post(f"{M}/versions/1:predict", json={"instances": [1.0]})
    release.set()
    assert r.status_code == 504 and r.json() == {"error": "Deadline Exceeded"}


def test_metadata_list_and_metrics() -> None:
    r = CLIENT.get(f"{M}/versions/1/metadata")
    assert r.status_code == 200
    body = r.json()
    assert body["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "1"}
    assert "classify_x_to_y" in body["metadata"]["signature_def"]["signature_def"]
    listed = CLIENT.get("/v1/models").json()
    assert listed["models"][0]["name"] == "half_plus_two"
    text = CLIENT.get("/metrics").text
    assert ":tensorflow:serving:request_count{" in text and "rollouts_requests_total{" in text


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=5),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([":predict", ":classify", ":regress"]),
       st.one_of(st.binary(max_size=50),
                 json_values.map(lambda v: json.dumps(v).encode()),
                 st.dictionaries(st.sampled_from(["instances", "inputs", "examples", "context",
                                                  "signature_name"]), json_values, max_size=3)
                 .map(lambda v: json.dumps(v).encode())))
def test_fuzzed_bodies_never_500(verb: str, body: bytes) -> None:
    r = CLIENT.post(f"{M}/versions/1{verb}", content=body)
    assert r.status_code < 500, r.text
    if r.status_code != 200:
        assert isinstance(r.json()["error"], str)


def test_httpx_asgi_transport_works_too() -> None:
    import anyio

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=CLIENT.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.post(f"{M}/versions/1:predict", json={"inputs": [2.0]})

    assert anyio.run(go).json() == {"outputs": [3.0]}
