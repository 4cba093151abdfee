"""The protocol-neutral data plane: predict, classify, regress, multi-inference
and model metadata with TF Serving's semantics and error texts.

Every call takes one servable handle from the core (so a request runs on one
version from start to end), checks the request against the signature
(request_checks), runs it, and reports which model, version and label
actually served it. The gRPC and REST adapters only translate wire formats;
metrics are recorded here, once. With a shadow scorer, a sampled Predict,
Classify or Regress answered by one side of a split is handed to it once the
answer is ready (`_shadow`, with the call's replay from example_tasks): the
scorer replays it on the other side later, never on the response path. What
the plane needs of the core, batchers and metrics is in dataplane_ports.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    input_pb2,
    regression_pb2,
)

from serving.batch_await import batch_outcome, run_in_future
from serving.core.status import Code, ServingError, invalid_argument
from serving.dataplane_ports import BatcherLike, CoreLike, MetricsLike
from serving.example_results import (
    classification_outputs,
    classification_result,
    regression_outputs,
    regression_result,
    serialized_examples,
)
from serving.example_tasks import Example, example_task, plan_tasks, predict_replay
from serving.request_checks import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    Inputs,
    check_method_name,
    examples_signature,
    predict_inputs,
    predict_missing_signature,
)
from serving.shadow import ShadowJob, ShadowScorer

Result = TypeVar("Result")
SIGNATURE_DEF_FIELD = "signature_def"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelRef:
    """Which model a request asks for; headers feed the hash-split router.

    `wait_s` is the most the request may wait for a version that is loading
    (its own remaining deadline; None: the server's --max_wait_for_version_ms)."""

    name: str
    version: int | None = None
    label: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    wait_s: float | None = None


@dataclass(frozen=True)
class Served:
    """Who served a request: the version actually used and the label, if any."""

    model: str
    version: int
    label: str | None
    signature_name: str


@dataclass(frozen=True)
class PredictResult:
    served: Served
    outputs: dict[str, np.ndarray]


@dataclass(frozen=True)
class ClassifyResult:
    served: Served
    result: classification_pb2.ClassificationResult


@dataclass(frozen=True)
class RegressResult:
    served: Served
    result: regression_pb2.RegressionResult


@dataclass(frozen=True)
class MultiInferenceResult:
    served: Served
    results: list[inference_pb2.InferenceResult]


@dataclass(frozen=True)
class MetadataResult:
    served: Served
    signature_def_map: get_model_metadata_pb2.SignatureDefMap


# ------------------------------------------------------------- the plane


class DataPlane:
    """Runs inference requests against the core; records metrics per request."""

    def __init__(self, core: CoreLike, metrics: MetricsLike | None = None,
                 clock: Callable[[], float] = time.perf_counter,
                 batcher: BatcherLike | None = None,
                 shadow: ShadowScorer | None = None, method_name_check: bool = False) -> None:
        self.core = core
        self.metrics = metrics
        self._clock = clock
        self.batcher = batcher
        self._withdrawable = batcher is not None and batcher.withdrawable
        self.method_name_check = method_name_check
        self.shadow = shadow

    @property
    def batches_predict(self) -> bool:
        """Whether Predict goes through a batcher (an event loop should then
        call `predict_async` rather than block a thread per request)."""
        return self.batcher is not None

    def joins_from_loop(self, model: str) -> bool:
        """Whether an event loop should call `predict_async` for a Predict of
        `model` now rather than run `predict` in a thread: always with timed
        batching; with opportunistic batching while a call of the model runs
        (it will likely join it) or when its calls are measured cheap (it will
        likely run on the loop, serving.call_costs). Otherwise an idle model's
        call takes the thread exactly as unbatched, and runs at once there."""
        return self.batcher is not None and self.batcher.joins(model)

    def _shadow(self, h: Any, run: Callable[[Any], Mapping[str, np.ndarray]],
                primary: Mapping[str, np.ndarray]) -> None:
        """Offer a finished request to the shadow scorer if it is sampled. The
        user's answer is already computed; nothing here may fail or hold it."""
        scorer = self.shadow
        if scorer is None:
            return
        try:
            peer = scorer.peer(h.model, h.label)
            if peer is not None:
                scorer.offer(ShadowJob(h.model, peer.version, h.version, run, primary,
                                       peer.tolerance, peer.outputs))
        except Exception:  # a bug in scoring must never reach the user
            log.exception("shadow scoring of %s v%s not offered", h.model, h.version)

    def _record(self, ref: ModelRef, served: list[Served], api: str, entrypoint: str,
                code: Code, start: float) -> None:
        if self.metrics is None:
            return
        s = served[0] if served else None
        # Our per-label series: "" when the request named a version explicitly.
        label = "" if ref.version is not None or s is None else (s.label or "")
        self.metrics.observe(ref.name, s.version if s else None, label, api, entrypoint, code,
                             self._clock() - start)

    @contextmanager
    def _recorded(self, ref: ModelRef, api: str, entrypoint: str) -> Iterator[list[Served]]:
        """Times the block and records its outcome; the block appends what served."""
        start = self._clock()
        served: list[Served] = []
        code = Code.UNKNOWN
        try:
            yield served
            code = Code.OK
        except ServingError as e:
            code = e.code
            raise
        finally:
            self._record(ref, served, api, entrypoint, code, start)

    def _call(self, ref: ModelRef, api: str, entrypoint: str,
              body: Callable[[list[Served]], Result]) -> Result:
        with self._recorded(ref, api, entrypoint) as served:
            return body(served)

    def _handle(self, ref: ModelRef, wait_s: float | None = None) -> AbstractContextManager[Any]:
        return self.core.handle(ref.name, ref.version, ref.label, ref.headers,
                                ref.wait_s if wait_s is None else wait_s)

    async def wait_for_version(self, ref: ModelRef) -> None:
        """On an event loop: await a version on its way in for `ref` (bounded by
        `ref.wait_s`), so the call that follows need not block a thread on it."""
        await self.core.wait_for_version(ref.name, ref.version, ref.label, ref.headers,
                                         ref.wait_s)

    def _runner(self, h: Any) -> Any:
        """The handle's servable; with batching on, its `run` joins a batch (the
        caller still holds the handle while it waits)."""
        if self.batcher is None:
            return h.servable
        return self.batcher.bind(h.servable, h.model, h.version)

    def _served(self, h: Any, signature_name: str) -> Served:
        return Served(h.model, h.version, h.label, signature_name)

    def predict(
        self,
        ref: ModelRef,
        inputs: Inputs,
        signature_name: str = "",
        output_filter: Sequence[str] = (),
        *,
        entrypoint: str = "",
        missing_signature: Callable[[str], ServingError] = predict_missing_signature,
    ) -> PredictResult:
        key = signature_name or DEFAULT_SIGNATURE

        def body(served: list[Served]) -> PredictResult:
            with self._handle(ref) as h:
                served.append(self._served(h, key))
                tensors = predict_inputs(h, key, inputs, output_filter, missing_signature,
                                          self.method_name_check)
                outputs = self._runner(h).run(key, tensors, list(output_filter) or None)
                self._shadow(h, predict_replay(key, tensors, output_filter, missing_signature),
                             outputs)
                return PredictResult(served[0], outputs)

        return self._call(ref, "Predict", entrypoint, body)

    async def predict_async(
        self,
        ref: ModelRef,
        inputs: Inputs,
        signature_name: str = "",
        output_filter: Sequence[str] = (),
        *,
        entrypoint: str = "",
        missing_signature: Callable[[str], ServingError] = predict_missing_signature,
        executor: concurrent.futures.Executor | None = None,
    ) -> PredictResult:
        """`predict` for an event loop: the one entry point both transports
        call from theirs. A version still loading is awaited here. With a
        batcher, decoding and checks run on the loop and the call joins a
        batch (`_predict_submitted`); without one, `predict` runs whole in
        `executor` (None: the loop's default), as a thread-per-request path
        would. The model call runs on the loop only if the batcher measured its
signature's calls cheaper than a thread hand-off (serving.call_costs)."""
        if self.batcher is not None:
            return await self._predict_submitted(
                ref, inputs, signature_name, output_filter, entrypoint, missing_signature,
                executor)
        started = time.monotonic()
        await self.wait_for_version(ref)
        if ref.wait_s is not None:  # what is left of the request's wait for the thread
            ref = dataclasses.replace(ref, wait_s=max(0.0, ref.wait_s - (time.monotonic()
                                                                          - started)))
        call = functools.partial(self.predict, ref, inputs, signature_name, output_filter,
                                 entrypoint=entrypoint, missing_signature=missing_signature)
        return await asyncio.get_running_loop().run_in_executor(executor, call)

    async def predict_batched(
        self,
        ref: ModelRef,
        inputs: Inputs,
        signature_name: str = "",
        *,
        entrypoint: str = "",
        missing_signature: Callable[[str], ServingError] = predict_missing_signature,
    ) -> PredictResult:
        """`predict_async` with a batcher required (kept for its callers)."""
        if self.batcher is None:
            raise RuntimeError("predict_batched needs a batcher")
        return await self._predict_submitted(ref, inputs, signature_name, (), entrypoint,
                                             missing_signature, None)

    async def _predict_submitted(
        self, ref: ModelRef, inputs: Inputs, signature_name: str,
        output_filter: Sequence[str], entrypoint: str,
        missing_signature: Callable[[str], ServingError],
        executor: concurrent.futures.Executor | None,
    ) -> PredictResult:
        """Decoding and checks on the loop, then the call joins a batch, and
        the loop awaits the batch instead of a thread blocking on it. The
        handle is held until the batch has run, even if the awaiting task is
        cancelled, so an unload still waits."""
        key = signature_name or DEFAULT_SIGNATURE
        outputs_wanted = list(output_filter) or None
        with self._recorded(ref, "Predict", entrypoint) as served:
            # Any wait for a loading version is awaited here; the handle below
            # is taken on the loop, so it must not block.
            await self.wait_for_version(ref)
            held = ExitStack()
            handle = held.enter_context(
                self._handle(ref, wait_s=0.0))
            try:
                served.append(self._served(handle, key))
                tensors = predict_inputs(handle, key, inputs, output_filter, missing_signature,
                                          self.method_name_check)
                future = self._submit(handle, key, tensors, outputs_wanted, executor)
            except BaseException:
                held.close()
                raise
            # Whatever happens to the awaiting task, the handle goes with the batch.
            future.add_done_callback(lambda _: held.close())
            outputs = await batch_outcome(future, self._withdrawable)
            self._shadow(handle, predict_replay(key, tensors, output_filter, missing_signature),
                         outputs)
            return PredictResult(served[0], outputs)

    def _submit(self, h: Any, key: str, tensors: Mapping[str, np.ndarray],
                output_keys: Sequence[str] | None, executor: concurrent.futures.Executor | None,
                ) -> concurrent.futures.Future[dict[str, np.ndarray]]:
        """The handle's call handed to its batcher; the future completes when it
        has run (an opportunistic batcher starts an idle lane's call in
        `executor`). A version the batcher does not batch (per-model batching
        parameters, none in its directory) runs in `executor` instead."""
        runner = self._runner(h)
        if hasattr(runner, "submit"):
            return runner.submit(  # type: ignore[no-any-return]
                key, tensors, output_keys, executor=executor)
        return run_in_future(runner, key, tensors, output_keys, executor)

    def _examples_call(self, ref: ModelRef, api: str, inp: input_pb2.Input, signature_name: str,
                       entrypoint: str, make: Callable[..., Example[Any]],
                       wrap: Callable[[Served, Any], Result]) -> Result:
        key = signature_name or DEFAULT_SIGNATURE

        def body(served: list[Served]) -> Result:
            with self._handle(ref) as h:
                served.append(self._served(h, key))
                signature = examples_signature(h, key)
                if self.method_name_check:
                    check_method_name(signature, api)
                result, outputs, replay = make(self._runner(h), key, signature, inp)
                self._shadow(h, replay, outputs)
                return wrap(served[0], result)

        return self._call(ref, api, entrypoint, body)

    def classify(self, ref: ModelRef, inp: input_pb2.Input, signature_name: str = "",
                 *, entrypoint: str = "") -> ClassifyResult:
        make = example_task(classification_outputs, classification_result)
        return self._examples_call(
            ref, "Classify", inp, signature_name, entrypoint, make, ClassifyResult)

    def regress(self, ref: ModelRef, inp: input_pb2.Input, signature_name: str = "",
                *, entrypoint: str = "") -> RegressResult:
        make = example_task(regression_outputs, regression_result)
        return self._examples_call(
            ref, "Regress", inp, signature_name, entrypoint, make, RegressResult)

    def multi_inference(self, ref: ModelRef, tasks: Sequence[tuple[str, str]],
                        inp: input_pb2.Input, *, entrypoint: str = "") -> MultiInferenceResult:
        """`tasks` is (signature_name, method_name) per task; `ref` is the first
        task's model (TF Serving takes the handle for tasks[0])."""

        def body(served: list[Served]) -> MultiInferenceResult:
            with self._handle(ref) as h:
                served.append(self._served(h, ""))
                plan = plan_tasks(h.servable, tasks, self.method_name_check)
                records = serialized_examples(inp)
                results = []
                for key, method, fetch in plan:
                    out = h.servable.run(key, {"inputs": records}, fetch)
                    r = inference_pb2.InferenceResult()
                    if method == CLASSIFY_METHOD:
                        r.classification_result.CopyFrom(classification_result(out, len(records)))
                    else:
                        r.regression_result.CopyFrom(regression_result(out, len(records)))
                    r.model_spec.name = ref.name
                    r.model_spec.signature_name = key
                    r.model_spec.version.value = h.version
                    results.append(r)
                return MultiInferenceResult(served[0], results)

        return self._call(ref, "MultiInference", entrypoint, body)

    def get_model_metadata(self, ref: ModelRef, metadata_fields: Sequence[str]) -> MetadataResult:
        if not metadata_fields:
            raise invalid_argument(
                "GetModelMetadataRequest must specify at least one metadata_field")
        for f in metadata_fields:
            if f != SIGNATURE_DEF_FIELD:
                raise invalid_argument(f"Metadata field {f} is not supported")
        with self._handle(ref) as h:
            return MetadataResult(self._served(h, ""), h.servable.signature_def_map())

    def list_models(self) -> Sequence[Any]:
        return self.core.list_models()


