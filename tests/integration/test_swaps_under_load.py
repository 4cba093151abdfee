"""Zero-failure version swaps under continuous gRPC and REST traffic.

The server's default policy is resource-preserving (the flag); model `avail`
is switched to availability-preserving through the extension service. Odd
versions compute 0.5x+2 and even ones 0.5x+3, so a response's value proves
which SavedModel answered, and its reported version must match.

- `avail` swaps {v} -> {v+1} in one reload: the policy loads before it unloads.
- `res` adds v+1 beside v, then removes v: the two steps a controller takes
  (both versions loaded for a moment; labels move in between).
- `gap` serves its latest version, and v+1 simply appears on disk:
  resource-preserving unloads v before it loads v+1, so for the length of a
  load nothing is AVAILABLE. Requests arriving then wait for v+1
  (--max_wait_for_version_ms) instead of failing with NOT_FOUND.
- `slow`: a request on a slow version completes on that version while a
  reload replaces it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from serving.generated import rollouts_serving_pb2 as rpb
from tests.conftest import ServerProcess, serving
from tests.grpc_requests import predict_request
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

SWAPS = 20
CLIENTS_PER_PROTOCOL = 2
MAX_REQUESTS_PER_CLIENT = 20_000
WAIT_S = 30.0
SLOW_S = 3.0
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END


def expected_y(version: int) -> float:
    return 0.5 * 2.0 + (2.0 if version % 2 else 3.0)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, make_model: Any) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("swaps")
    for name in ("avail", "res"):
        for version in range(1, SWAPS + 2):
            make_model(root / name, version, **({} if version % 2 else {"offset": 3.0}))
    make_model(root / "gap", 1)  # later versions appear one per swap
    make_model(root / "slow", 1, slow_seconds=SLOW_S)
    make_model(root / "slow", 2, offset=3.0)
    with serving(["--version_transition_policy=resource_preserving",
                  "--model_name=slow", f"--model_base_path={root / 'slow'}",
                  "--file_system_poll_wait_seconds=0.2"], root / "server.log") as server:
        yield {"root": root, "server": server, "make_model": make_model}


def model_config(root: Path, name: str, versions: list[int]) -> Any:
    config = model_server_config_pb2.ModelConfig(name=name, base_path=str(root / name),
                                                 model_platform="tensorflow")
    config.model_version_policy.specific.versions.extend(versions)
    return config


def latest_config(root: Path, name: str) -> Any:
    # No version policy: TF Serving's default, the latest version only.
    return model_server_config_pb2.ModelConfig(name=name, base_path=str(root / name),
                                               model_platform="tensorflow")


def reload(server: ServerProcess, *configs: Any) -> None:
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.extend(configs)
    response = server.model_stub().HandleReloadConfigRequest(request, timeout=WAIT_S)
    assert response.status.error_code == 0, response.status.error_message


def states(server: ServerProcess, name: str) -> dict[int, int]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    try:
        response = server.model_stub().GetModelStatus(request, timeout=5)
    except grpc.RpcError:
        return {}
    return {s.version: s.state for s in response.model_version_status}


@dataclass(frozen=True)
class Outcome:
    model: str
    sent: float
    received: float
    version: int | None
    y: float | None
    error: str | None


class Traffic:
    """Bounded client threads sending predicts until stopped."""

    def __init__(self, server: ServerProcess, models: list[str]) -> None:
        self.server = server
        self.models = models
        self.stop = threading.Event()
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._grpc, args=(i,), daemon=True)
                         for i in range(CLIENTS_PER_PROTOCOL)]
        self._threads += [threading.Thread(target=self._rest, args=(i,), daemon=True)
                          for i in range(CLIENTS_PER_PROTOCOL)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=WAIT_S)
        assert not any(t.is_alive() for t in self._threads)

    def _add(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    def _grpc(self, index: int) -> None:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(self.server.channel())
        for i in range(MAX_REQUESTS_PER_CLIENT):
            if self.stop.is_set():
                return
            model = self.models[(i + index) % len(self.models)]
            sent = time.monotonic()
            try:
                response = stub.Predict(predict_request(model, 2.0), timeout=WAIT_S)
                self._add(Outcome(model, sent, time.monotonic(), response.model_spec.version.value,
                                  response.outputs["y"].float_val[0], None))
            except grpc.RpcError as exc:
                self._add(Outcome(model, sent, time.monotonic(), None, None,
                                  f"gRPC {exc.code().name}: {exc.details()}"))

    def _rest(self, index: int) -> None:
        with httpx.Client(base_url=self.server.rest_url, timeout=WAIT_S) as http:
            for i in range(MAX_REQUESTS_PER_CLIENT):
                if self.stop.is_set():
                    return
                model = self.models[(i + index) % len(self.models)]
                sent = time.monotonic()
                try:
                    reply = http.post(f"/v1/models/{model}:predict", json={"instances": [2.0]})
                except httpx.HTTPError as exc:
                    self._add(Outcome(model, sent, time.monotonic(), None, None, repr(exc)))
                    continue
                if reply.status_code != 200:
                    self._add(Outcome(model, sent, time.monotonic(), None, None,
                                      f"HTTP {reply.status_code}: {reply.text}"))
                    continue
                self._add(Outcome(model, sent, time.monotonic(),
                                  int(reply.headers["X-Model-Version"]),
                                  reply.json()["predictions"][0], None))


class Timeline:
    """When each version could have been AVAILABLE, bounded from outside:
    not before the reload that aspired it was sent, not after it was seen END."""

    def __init__(self) -> None:
        self.added: dict[tuple[str, int], float] = {}
        self.ended: dict[tuple[str, int], float] = {}

    def aspire(self, model: str, version: int) -> None:
        self.added.setdefault((model, version), time.monotonic())

    def wait(self, server: ServerProcess, model: str, *, available: int,
             ended: int | None = None) -> None:
        def done() -> bool:
            now = states(server, model)
            return now.get(available) == AVAILABLE and (ended is None or now.get(ended) == END)

        assert wait_for(done, WAIT_S, 0.02), (model, states(server, model))
        if ended is not None:
            self.ended[(model, ended)] = time.monotonic()

    def could_serve(self, o: Outcome) -> bool:
        assert o.version is not None
        added = self.added.get((o.model, o.version))
        ended = self.ended.get((o.model, o.version), float("inf"))
        return added is not None and o.sent <= ended and o.received >= added


def test_swaps_under_load_with_each_policy(env: dict[str, Any]) -> None:
    server: ServerProcess = env["server"]
    root: Path = env["root"]
    make_model = env["make_model"]
    server.rollout_stub().SetTransitionPolicy(
        rpb.SetTransitionPolicyRequest(model_name="avail", policy=rpb.AVAILABILITY_PRESERVING),
        timeout=WAIT_S)
    timeline = Timeline()
    # Kept in every reload; unchanged, so the reloads leave it alone.
    slow, gap = model_config(root, "slow", [1]), latest_config(root, "gap")
    for model in ("avail", "res", "gap"):
        timeline.aspire(model, 1)
    reload(server, slow, gap, model_config(root, "avail", [1]), model_config(root, "res", [1]))
    reload_policy = {m.name: m.transition_policy
                     for m in server.rollout_stub().ListModels(rpb.ListModelsRequest(),
                                                               timeout=WAIT_S).models}
    assert reload_policy["avail"] == rpb.AVAILABILITY_PRESERVING
    assert reload_policy["res"] == reload_policy["gap"] == rpb.RESOURCE_PRESERVING

    deadline = time.monotonic() + 600  # failure-only: a hung swap ends the test
    with Traffic(server, ["avail", "res", "gap"]) as traffic:
        assert wait_for(lambda: len(traffic.outcomes) >= 10, WAIT_S)
        for v in range(1, SWAPS + 1):
            assert time.monotonic() < deadline, f"swap {v} started after the time budget"
            for model in ("avail", "res", "gap"):
                timeline.aspire(model, v + 1)
            # The one-step swap of `gap` runs beside the other two.
            make_model(root / "gap", v + 1, **({} if (v + 1) % 2 else {"offset": 3.0}))
            reload(server, slow, gap, model_config(root, "avail", [v + 1]),
                   model_config(root, "res", [v, v + 1]))
            timeline.wait(server, "avail", available=v + 1, ended=v)
            timeline.wait(server, "res", available=v + 1)
            reload(server, slow, gap, model_config(root, "avail", [v + 1]),
                   model_config(root, "res", [v + 1]))
            timeline.wait(server, "res", available=v + 1, ended=v)
            timeline.wait(server, "gap", available=v + 1, ended=v)
        # Some traffic on the final versions too.
        count = len(traffic.outcomes)
        assert wait_for(lambda: len(traffic.outcomes) >= count + 10, WAIT_S)

    outcomes = traffic.outcomes
    failures = [o for o in outcomes if o.error is not None]
    assert not failures, failures[:5]
    wrong = [o for o in outcomes
             if o.y != expected_y(o.version or 0) or not timeline.could_serve(o)]
    assert not wrong, wrong[:5]
    # The traffic really spanned the swaps: many versions of each model served.
    for model in ("avail", "res", "gap"):
        seen = {o.version for o in outcomes if o.model == model}
        assert len(seen) >= SWAPS // 2, (model, sorted(v or 0 for v in seen))


def test_slow_request_finishes_on_the_version_it_started_on(env: dict[str, Any]) -> None:
    server: ServerProcess = env["server"]
    root: Path = env["root"]
    reload(server, model_config(root, "slow", [1]))
    assert wait_for(lambda: states(server, "slow").get(1) == AVAILABLE, WAIT_S)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel())
    result: dict[str, Any] = {}

    def slow_call() -> None:
        result["sent"] = time.monotonic()
        try:
            result["response"] = stub.Predict(predict_request("slow", 2.0), timeout=WAIT_S)
        except grpc.RpcError as exc:
            result["error"] = exc
        result["received"] = time.monotonic()

    thread = threading.Thread(target=slow_call, daemon=True)
    thread.start()
    # Give the request time to reach the model; checked below from timestamps.
    assert wait_for(lambda: "sent" in result and time.monotonic() - result["sent"] > 0.5, 5)
    replaced_at = time.monotonic()
    reload(server, model_config(root, "slow", [2]))  # resource-preserving: unload 1 first
    thread.join(timeout=WAIT_S)
    assert not thread.is_alive()
    assert "error" not in result, result.get("error")
    assert result["sent"] < replaced_at < result["received"], "the swap missed the request"
    response = result["response"]
    assert response.model_spec.version.value == 1
    assert response.outputs["y"].float_val[0] == expected_y(1)
    # The replacement completes once the request released version 1.
    assert wait_for(lambda: states(server, "slow") == {2: AVAILABLE, 1: END}, WAIT_S), \
        states(server, "slow")
