"""The protocol-neutral data plane: predict, classify, regress, multi-inference
and model metadata with TF Serving's semantics and error texts.

Every call takes one servable handle from the core (so a request runs on one
version from start to end), checks the request against the signature, runs it,
and reports which model, version and label actually served it. The gRPC and
REST adapters only translate wire formats; metrics are recorded here, once.
With a shadow scorer, a sampled Predict, Classify or Regress answered by one
side of a split is handed to it once the answer is ready (`_shadow`): the
scorer replays it on the other side later, never on the response path.
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
from typing import Any, Protocol, TypeVar

import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    input_pb2,
    regression_pb2,
)

from serving import tensor_codec as tc
from serving.core.status import (
    Code,
    ServingError,
    failed_precondition,
    invalid_argument,
    unavailable,
)
from serving.example_results import (
    SignatureLike,
    classification_outputs,
    classification_result,
    regression_outputs,
    regression_result,
    serialized_examples,
)
from serving.shadow import ShadowJob, ShadowScorer

DEFAULT_SIGNATURE = "serving_default"

Result = TypeVar("Result")
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
PREDICT_METHOD = "tensorflow/serving/predict"
SIGNATURE_DEF_FIELD = "signature_def"

log = logging.getLogger(__name__)

Replay = Callable[[Any], Mapping[str, np.ndarray]]
"""A finished call replayed on another version's handle (shadow scoring)."""
Example = tuple[Result, dict[str, np.ndarray], Replay]
"""What a Classify or Regress task gives: its result, raw outputs and replay."""


# ------------------------------------------------ what the data plane needs


class TensorInfoLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> int: ...


class ServableLike(Protocol):
    @property
    def signatures(self) -> Mapping[str, Any]: ...

    def run(
        self,
        signature_key: str,
        inputs: Mapping[str, np.ndarray],
        output_keys: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]: ...

    def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap: ...


class HandleLike(Protocol):
    @property
    def model(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def label(self) -> str | None: ...
    @property
    def servable(self) -> Any: ...


class CoreLike(Protocol):
    """The part of serving.server_core.ServerCore the data plane uses."""

    def handle(
        self,
        model: str,
        version: int | None = None,
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
        wait_s: float | None = None,
    ) -> AbstractContextManager[Any]: ...

    async def wait_for_version(
        self,
        model: str,
        version: int | None = None,
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
        wait_s: float | None = None,
    ) -> None: ...

    def list_models(self) -> Sequence[Any]: ...


class BatcherLike(Protocol):
    """serving.batching.Batcher (--enable_batching; a servable it does not
    batch comes back as it is) or serving.opportunistic.OpportunisticBatcher
    (--opportunistic_batching): wraps a servable so its `run` and `submit` are
    batched. `withdrawable`: a call whose awaiting caller is cancelled before
    it starts may be taken back."""

    withdrawable: bool

    def bind(self, servable: Any, model: str, version: int) -> Any: ...

    def joins(self, model: str) -> bool: ...


class MetricsLike(Protocol):
    def observe(
        self, model: str, version: int | None, label: str, api: str, entrypoint: str,
        status_code: Code, seconds: float,
    ) -> None: ...


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


# A request's inputs, or a function of the chosen signature that decodes them
# (REST can only parse its JSON once it knows the signature's dtypes).
Inputs = Mapping[str, np.ndarray] | Callable[[Any], Mapping[str, np.ndarray]]


def predict_missing_signature(name: str) -> ServingError:
    return failed_precondition(f'Serving signature key "{name}" not found.')


# ------------------------------------------------------------ pure checks


def check_input_names(signature: SignatureLike, names: Sequence[str]) -> None:
    """predict_util.cc VerifyRequestInputsSize, then unknown aliases."""
    sent, wanted = set(names), set(signature.inputs)
    if len(sent) != len(wanted):
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(wanted)}"
            f" len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(wanted))}}})."
            f" Sent extra: {{{','.join(sorted(sent - wanted))}}}."
            f" Missing but required: {{{','.join(sorted(wanted - sent))}}}."
        )
    for alias in sorted(sent - wanted):
        raise invalid_argument(
            f"input tensor alias not found in signature: {alias}."
            f" Inputs expected to be in the set {{{','.join(sorted(wanted))}}}."
        )


def check_input_dtypes(signature: SignatureLike, tensors: Mapping[str, Any]) -> None:
    """Each input's dtype must be the signature's, as a TF Serving session insists
    (a gRPC TensorProto names its dtype; REST builds tensors in the signature's)."""
    for index, alias in enumerate(sorted(signature.inputs)):
        value = tensors.get(alias)
        if not isinstance(value, np.ndarray):
            continue
        try:
            given = tc.tf_dtype(value)
        except ValueError:
            continue  # a dtype without a name here: TensorFlow itself decides
        wanted = signature.inputs[alias].dtype
        if given != wanted:
            raise invalid_argument(
                f"Expects arg[{index}] to be {tc.dtype_name(wanted)} but "
                f"{tc.dtype_name(given)} is provided"
            )


def check_method_name(signature: Any, api: str) -> None:
    """--enable_signature_method_name_check: the signature's method_name must fit
    the call (predict_util.cc, classifier.cc, regressor.cc and their texts)."""
    method = getattr(signature, "method_name", "")
    if api == "Predict":
        if method not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
            raise ServingError(
                Code.INTERNAL,
                f"Expected prediction signature method_name to be one of {{{PREDICT_METHOD}, "
                f"{CLASSIFY_METHOD}, {REGRESS_METHOD}}}. Was: {method}")
        return
    kind, wanted = (("classification", CLASSIFY_METHOD) if api == "Classify"
                    else ("regression", REGRESS_METHOD))
    if method != wanted:
        raise invalid_argument(
            f"Expected {kind} signature method_name to be {wanted}. Was: {method}")


def check_output_filter(signature: SignatureLike, output_filter: Sequence[str]) -> None:
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias}"
                f" Outputs expected to be in the set {{{','.join(sorted(signature.outputs))}}}."
            )
        if alias in seen:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)


# ------------------------------------------------------------- the plane


def _predict_inputs(h: Any, key: str, inputs: Inputs, output_filter: Sequence[str],
                    missing_signature: Callable[[str], ServingError],
                    method_name_check: bool = False) -> dict[str, Any]:
    """Predict's checked inputs for the handle's servable: its signature `key`
    must exist, and the inputs and output filter must name its tensors."""
    signature = h.servable.signatures.get(key)
    if signature is None:
        raise missing_signature(key)
    if method_name_check:
        check_method_name(signature, "Predict")
    tensors = inputs(signature) if callable(inputs) else inputs
    check_input_names(signature, list(tensors))
    check_input_dtypes(signature, tensors)
    check_output_filter(signature, output_filter)
    return dict(tensors)


def _outcome(future: concurrent.futures.Future[Any], withdraw: bool = False,
             ) -> asyncio.Future[Any]:
    """An awaitable for a batch's future. Unlike asyncio.wrap_future,
    cancelling the awaiting task leaves the batch's own future alone (the
    batch still runs, completes it, and releases the handle), unless
    `withdraw`: then a call not yet started is taken back (its future is
    cancelled, which releases the handle at once; a started one runs on)."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[Any] = loop.create_future()

    def settle(done: concurrent.futures.Future[Any]) -> None:
        if waiter.cancelled():
            return
        if done.cancelled():  # withdrawn, or its pool shut down before it ran
            waiter.set_exception(unavailable("The call was cancelled before it ran"))
            return
        error = done.exception()
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(done.result())

    future.add_done_callback(lambda done: loop.call_soon_threadsafe(settle, done))
    if withdraw:
        waiter.add_done_callback(lambda w: future.cancel() if w.cancelled() else None)
    return waiter


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
        (it will likely join it). An idle model's call then takes the thread
        exactly as unbatched, and still runs at once in that thread."""
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
                tensors = _predict_inputs(h, key, inputs, output_filter, missing_signature,
                                          self.method_name_check)
                outputs = self._runner(h).run(key, tensors, list(output_filter) or None)
                self._shadow(h, _predict_replay(key, tensors, output_filter, missing_signature),
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
        would. The model call never runs on the loop."""
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
                tensors = _predict_inputs(handle, key, inputs, output_filter, missing_signature,
                                          self.method_name_check)
                future = self._submit(handle, key, tensors, outputs_wanted, executor)
            except BaseException:
                held.close()
                raise
            # Whatever happens to the awaiting task, the handle goes with the batch.
            future.add_done_callback(lambda _: held.close())
            outputs = await _outcome(future, self._withdrawable)
            self._shadow(handle, _predict_replay(key, tensors, output_filter, missing_signature),
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
        done: concurrent.futures.Future[dict[str, np.ndarray]] = concurrent.futures.Future()

        def call() -> None:
            if not done.set_running_or_notify_cancel():
                return
            try:
                done.set_result(runner.run(key, tensors, output_keys))
            except BaseException as exc:
                done.set_exception(exc)

        asyncio.get_running_loop().run_in_executor(executor, call)
        return done

    def _examples_call(self, ref: ModelRef, api: str, inp: input_pb2.Input, signature_name: str,
                       entrypoint: str, make: Callable[..., Example[Result]]) -> Result:
        key = signature_name or DEFAULT_SIGNATURE

        def body(served: list[Served]) -> Result:
            with self._handle(ref) as h:
                served.append(self._served(h, key))
                signature = _examples_signature(h, key)
                if self.method_name_check:
                    check_method_name(signature, api)
                result, outputs, replay = make(self._runner(h), key, signature, inp, served[0])
                self._shadow(h, replay, outputs)
                return result

        return self._call(ref, api, entrypoint, body)

    def classify(self, ref: ModelRef, inp: input_pb2.Input, signature_name: str = "",
                 *, entrypoint: str = "") -> ClassifyResult:
        make = _example_task(classification_outputs, classification_result, ClassifyResult)
        return self._examples_call(
            ref, "Classify", inp, signature_name, entrypoint, make)

    def regress(self, ref: ModelRef, inp: input_pb2.Input, signature_name: str = "",
                *, entrypoint: str = "") -> RegressResult:
        make = _example_task(regression_outputs, regression_result, RegressResult)
        return self._examples_call(
            ref, "Regress", inp, signature_name, entrypoint, make)

    def multi_inference(self, ref: ModelRef, tasks: Sequence[tuple[str, str]],
                        inp: input_pb2.Input, *, entrypoint: str = "") -> MultiInferenceResult:
        """`tasks` is (signature_name, method_name) per task; `ref` is the first
        task's model (TF Serving takes the handle for tasks[0])."""

        def body(served: list[Served]) -> MultiInferenceResult:
            with self._handle(ref) as h:
                served.append(self._served(h, ""))
                plan = self._plan_tasks(h.servable, tasks)
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

    def _plan_tasks(self, servable: Any, tasks: Sequence[tuple[str, str]]
                    ) -> list[tuple[str, str, list[str]]]:
        """multi_inference.cc's per-task checks, before anything runs."""
        seen: set[str] = set()
        plan = []
        for signature_name, method in tasks:
            key = signature_name or DEFAULT_SIGNATURE
            if key in seen:
                raise invalid_argument(f"Duplicate evaluation of signature: {key}")
            seen.add(key)
            sig = servable.signatures.get(key)
            if sig is None:
                raise invalid_argument(f"Requested signature not found in model graph: {key}")
            if method in (CLASSIFY_METHOD, REGRESS_METHOD) and self.method_name_check:
                check_method_name(sig, "Classify" if method == CLASSIFY_METHOD else "Regress")
            if method == CLASSIFY_METHOD:
                fetch = classification_outputs(servable, key, sig)
            elif method == REGRESS_METHOD:
                fetch = regression_outputs(servable, key, sig)
            else:
                raise ServingError(Code.UNIMPLEMENTED,
                                   f"Unsupported signature method_name: {method}")
            plan.append((key, method, fetch))
        return plan

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


def _examples_signature(h: Any, key: str) -> Any:
    signature = h.servable.signatures.get(key)
    if signature is None:
        raise invalid_argument(f"No signature was found with the name: {key}")
    return signature


def _predict_replay(key: str, tensors: Mapping[str, np.ndarray], output_filter: Sequence[str],
                    missing_signature: Callable[[str], ServingError],
                    ) -> Callable[[Any], Mapping[str, np.ndarray]]:
    """The same Predict on another handle, with that version's own checks."""

    def replay(h: Any) -> Mapping[str, np.ndarray]:
        checked = _predict_inputs(h, key, tensors, output_filter, missing_signature)
        return h.servable.run(key, checked, list(output_filter) or None)  # type: ignore[no-any-return]

    return replay


def _example_task(
    outputs: Callable[..., Any], result: Callable[..., Any], wrap: Callable[[Served, Any], Result]
) -> Callable[..., Example[Result]]:
    """Classify and regress alike: serialized tf.Examples in, one result list out.
    `make` also returns the raw outputs and how to replay the call on another
    version's handle (for shadow scoring)."""

    def make(servable: Any, key: str, sig: Any, inp: input_pb2.Input, served: Served,
             ) -> Example[Result]:
        fetch = outputs(servable, key, sig)
        records = serialized_examples(inp)
        out = servable.run(key, {"inputs": records}, fetch)

        def replay(h: Any) -> Mapping[str, np.ndarray]:
            other = h.servable
            wanted = outputs(other, key, _examples_signature(h, key))
            return other.run(key, {"inputs": records}, wanted)  # type: ignore[no-any-return]

        return wrap(served, result(out, len(records))), out, replay

    return make
