"""REST adapter: TF Serving's inference endpoints on top of the DataPlane.

POST /v1/models/{m}[/versions/{v}|/labels/{l}]:predict|:classify|:regress,
GET  /v1/models/{m}[/versions/{v}|/labels/{l}]/metadata, and GET /v1/models
(a listing TF Serving lacks). Paths are matched with TF Serving's own
expressions (http_rest_api_util.cc), so anything else is its "Malformed
request". Inference POSTs are answered on raw ASGI in front of the Starlette
app (routing and middleware cost more than the HTTP stack itself); inference
runs in a bounded thread pool under a deadline, and the event loop only parses
and writes. A request for a version still loading (a resource-preserving swap)
waits for it on the loop, holding no thread and no admission slot, within the
same deadline. Every failure is {"error": "..."} with TF Serving's HTTP status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import re
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from google.protobuf import json_format
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving import limits
from serving.core.status import Code, ServingError, http_status, invalid_argument
from serving.dataplane import DataPlane, ModelRef, Served
from serving.dataplane_ports import MetricsLike
from serving.rest import json_response, json_tensor

ENTRYPOINT = "REST"
DEFAULT_MAX_BODY_BYTES = 64 << 20

_PREDICTION = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_METADATA = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
_API = {"predict": "Predict", "classify": "Classify", "regress": "Regress"}
_POST_PREFIX = "/v1/models/"
_JSON_HEADERS = [(b"content-type", b"application/json")]

Headers = list[tuple[bytes, bytes]]


class BodyTooLarge(ServingError):
    def __init__(self, limit: int) -> None:
        super().__init__(Code.RESOURCE_EXHAUSTED, f"Request body exceeds {limit} bytes")


class ClientGone(Exception):
    """The client disconnected before its body arrived: nobody to answer."""


def _served_headers(served: Served | None) -> Headers:
    if served is None:
        return []
    return [(b"x-model-version", str(served.version).encode()),
            (b"x-model-label", (served.label or "").encode("latin-1", "replace"))]


def _json(body: str, status: int = 200, served: Served | None = None) -> Response:
    headers = {}
    if served is not None:
        headers = {"X-Model-Version": str(served.version), "X-Model-Label": served.label or ""}
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error_status(err: ServingError) -> int:
    return 413 if isinstance(err, BodyTooLarge) else http_status(err.code)


def _error(err: ServingError) -> Response:
    return _json(json_response.error_body(err.message), _error_status(err))


def _ref(headers: dict[str, str], version: str | None, label: str | None,
         name: str, wait_s: float | None = None) -> ModelRef:
    if version is not None:
        try:
            number = int(version)
            if number > 2**63 - 1:
                raise ValueError
        except ValueError:
            raise invalid_argument(f"Failed to convert version: {version} to numeric.") from None
    return ModelRef(name, int(version) if version is not None else None, label, headers, wait_s)


def _header_dict(raw: Headers) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:  # a lying or absent Content-Length: count as we go
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _send_json(send: Send, status: int, body: bytes, extra: Headers | None = None
                     ) -> None:
    start: Message = {"type": "http.response.start", "status": status,
                      "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode()),
                                  *(extra or ())]}
    await send(start)
    await send({"type": "http.response.body", "body": body})


class _Inference:
    def __init__(self, dataplane: DataPlane, timeout_s: float, max_concurrency: int,
                 metrics: MetricsLike | None, max_body_bytes: int, max_pending: int = -1,
                 max_tensor_elements: int = 0) -> None:
        self.dataplane = dataplane
        self.timeout_s = timeout_s
        # A plain pool, not anyio's to_thread (cancel scope, limiter, deadline
        # scope on every request): with the raw ASGI path it cut 80-350 us of
        # CPU per request (benchmarks/RESULTS.md, item 6).
        self.pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="rest")
        # Beyond the pool's threads at most `max_pending` wait; more get 429 at once.
        self.gate = limits.AdmissionGate(max_concurrency, max_pending)
        self.max_tensor_elements = max_tensor_elements
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    def _deadline(self) -> float | None:
        """When a request starting now must be answered (perf_counter), or None."""
        return time.perf_counter() + self.timeout_s if self.timeout_s > 0 else None

    @staticmethod
    def _left(deadline: float | None) -> float | None:
        return None if deadline is None else max(deadline - time.perf_counter(), 0.0)

    async def _ready(self, ref: ModelRef, deadline: float | None) -> ModelRef:
        """Awaits (on the loop, outside the admission gate) a version still
        loading for `ref`; returns `ref` with what is left of its deadline, so
        the thread that runs the call does not wait longer."""
        await self.dataplane.wait_for_version(ref)
        return dataclasses.replace(ref, wait_s=self._left(deadline))

    async def _run(self, fn: Callable[[], Any], deadline: float | None = None) -> Any:
        """fn in a worker thread, bounded in number and in time. On timeout a
        call still queued never runs; a running one is abandoned (it finishes
        and releases its servable handle)."""
        self.gate.enter()
        try:
            future = asyncio.get_running_loop().run_in_executor(self.pool, fn)
            left = self._left(deadline if deadline is not None else self._deadline())
            if left is not None:
                return await asyncio.wait_for(future, left)
            return await future
        except TimeoutError:
            raise ServingError(Code.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        finally:
            self.gate.leave()

    async def _await(self, work: Coroutine[Any, Any, Any], deadline: float | None) -> Any:
        """`work` on this loop under the same admission gate and deadline as
        `_run`. On timeout it is left to finish (it holds a servable handle
        until its batch has run), as `_run` abandons a thread."""
        self.gate.enter()
        try:
            task = asyncio.ensure_future(work)
            task.add_done_callback(_retrieve)
            left = self._left(deadline)
            if left is not None:
                return await asyncio.wait_for(asyncio.shield(task), left)
            return await task
        except TimeoutError:
            raise ServingError(Code.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        finally:
            self.gate.leave()

    def _observe(self, name: str, api: str, err: ServingError, start: float) -> None:
        if self.metrics is not None:
            self.metrics.observe(name, None, "", api, ENTRYPOINT, err.code,
                                 time.perf_counter() - start)

    async def post(self, scope: Scope, receive: Receive, send: Send) -> None:
        """POST /v1/models/...: inference, straight on ASGI (no routing,
        middleware or Request object on the hottest path)."""
        path = scope["path"]
        start = time.perf_counter()
        m = _PREDICTION.fullmatch(path)
        name, api = (m.group(1), _API[m.group(4).lower()]) if m else ("", "Predict")
        try:
            if m is None:
                raise invalid_argument(f"Malformed request: POST {path}")
            headers = _header_dict(scope["headers"])
            ref = _ref(headers, m.group(2), m.group(3), m.group(1))
            body = await _read_body(receive, headers, self.max_body_bytes)
            doc = json_tensor.parse_json(body)
            signature = json_tensor.signature_name(doc)
        except ClientGone:
            return
        except ServingError as e:
            self._observe(name, api, e, start)
            await _send_json(send, _error_status(e), json_response.error_body(e.message).encode())
            return
        # The deadline covers waiting for a loading version and the call itself.
        deadline = self._deadline()
        ref = dataclasses.replace(ref, wait_s=self._left(deadline))
        try:
            if api == "Predict" and self.dataplane.joins_from_loop(ref.name):
                # Batching: join the batch from the loop, no thread per request
                # waiting on it. A model with no call running takes the
                # unbatched path below (its call runs at once in the thread).
                text, served = await self._await(
                    self._predict_async(ref, doc, signature), deadline)
            else:
                ref = await self._ready(ref, deadline)
                text, served = await self._run(
                    functools.partial(self._infer, api, ref, doc, signature), deadline)
        except ServingError as e:
            # Timed out or refused for overload: the data plane never recorded it.
            if e.code is Code.DEADLINE_EXCEEDED or isinstance(e, limits.Overloaded):
                self._observe(name, api, e, start)
            await _send_json(send, _error_status(e), json_response.error_body(e.message).encode())
            return
        await _send_json(send, 200, text.encode(), _served_headers(served))

    def _decoder(self, doc: dict[str, Any], signature: str,
                 fmt: list[json_tensor.Format]) -> Callable[[Any], Any]:
        """Predict's inputs from the request document, once the signature is known."""
        def decode(sig: Any) -> Any:
            tensors, f = json_tensor.predict_inputs(doc, sig.inputs, signature)
            limits.check_arrays(tensors, self.max_tensor_elements)
            fmt.append(f)
            return tensors
        return decode

    async def _predict_async(self, ref: ModelRef, doc: dict[str, Any], signature: str
                             ) -> tuple[str, Served]:
        fmt: list[json_tensor.Format] = []
        r = await self.dataplane.predict_async(
            ref, self._decoder(doc, signature, fmt), signature, entrypoint=ENTRYPOINT,
            missing_signature=_rest_missing_signature, executor=self.pool)
        return json_response.predict_response(r.outputs, fmt[0]), r.served

    def _infer(self, api: str, ref: ModelRef, doc: dict[str, Any], signature: str
               ) -> tuple[str, Served]:
        if api == "Predict":
            fmt: list[json_tensor.Format] = []
            r = self.dataplane.predict(ref, self._decoder(doc, signature, fmt), signature,
                                       entrypoint=ENTRYPOINT,
                                       missing_signature=_rest_missing_signature)
            return json_response.predict_response(r.outputs, fmt[0]), r.served
        inp = json_tensor.examples_input(doc)
        if api == "Classify":
            c = self.dataplane.classify(ref, inp, signature, entrypoint=ENTRYPOINT)
            return json_response.classification_response(c.result), c.served
        g = self.dataplane.regress(ref, inp, signature, entrypoint=ENTRYPOINT)
        return json_response.regression_response(g.result), g.served

    async def metadata(self, request: Request) -> Response:
        path = request.url.path
        m = _METADATA.fullmatch(path)
        try:
            if m is None or not m.group(4):
                raise invalid_argument(f"Malformed request: GET {path}")
            if not m.group(1):
                raise invalid_argument("Missing model name in request.")
            deadline = self._deadline()
            ref = await self._ready(
                _ref({k.lower(): v for k, v in request.headers.items()}, m.group(2),
                     m.group(3), m.group(1), self._left(deadline)), deadline)
            r = await self._run(
                lambda: self.dataplane.get_model_metadata(ref, ["signature_def"]), deadline)
        except ServingError as e:
            return _error(e)
        body = json_response.metadata_response(r.served.model, r.served.version,
                                             r.signature_def_map)
        return _json(body, served=r.served)

    async def list_models(self, request: Request) -> Response:
        try:
            models = await self._run(self.dataplane.list_models)
        except ServingError as e:
            return _error(e)
        items = [json_format.MessageToJson(m, preserving_proto_field_name=True) for m in models]
        return _json('{"models": [' + ", ".join(items) + "]}")


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Collect an abandoned task's outcome, so asyncio does not log it as lost."""
    if not task.cancelled():
        task.exception()


def _rest_missing_signature(name: str) -> ServingError:
    # http_rest_api_handler.cc GetInfoMap's text, not Predict's.
    return invalid_argument(f'Serving signature name: "{name}" not found in signature def')


class InferenceApp:
    """ASGI: POST /v1/models/... is inference, answered here; everything else
    (status, metadata, listing, metrics, 404s) goes to `app`."""

    def __init__(self, app: ASGIApp, inference: _Inference) -> None:
        self.app = app
        self.inference = inference

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] == "POST"
                and scope["path"].startswith(_POST_PREFIX)):
            await self.inference.post(scope, receive, send)
            return
        await self.app(scope, receive, send)


class RestInference:
    """TF Serving's REST inference endpoints over one DataPlane.

    `timeout_s` is --rest_api_timeout_in_ms / 1000 (<= 0: none); `metrics`
    records requests refused before the data plane; `max_pending` bounds calls
    waiting for a thread (-1: unbounded); `max_tensor_elements` bounds each
    Predict input (0: no limit)."""

    def __init__(self, dataplane: DataPlane, *, timeout_s: float, max_concurrency: int,
                 metrics: MetricsLike | None = None,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 max_pending: int = -1, max_tensor_elements: int = 0) -> None:
        self._inference = _Inference(dataplane, timeout_s, max_concurrency, metrics,
                                     max_body_bytes, max_pending, max_tensor_elements)

    def routes(self) -> list[Route]:
        """The GET routes (metadata and the model listing), for the Starlette app."""
        h = self._inference
        return [
            Route("/v1/models", h.list_models, methods=["GET"]),
            Route("/v1/models/{rest:path}/metadata", h.metadata, methods=["GET"]),
        ]

    def wrap(self, app: ASGIApp) -> InferenceApp:
        """`app` with the POST inference endpoints in front of it."""
        return InferenceApp(app, self._inference)

    def close(self) -> None:
        self._inference.pool.shutdown(wait=False, cancel_futures=True)
