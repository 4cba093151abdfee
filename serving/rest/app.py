"""The REST (HTTP/JSON) adapter: TF Serving's model status endpoints.

GET /v1/models/{m}, /v1/models/{m}/versions/{v}, /v1/models/{m}/labels/{l}
answer with TF Serving's exact JSON (GetModelStatusResponse printed with
proto field names and default values) or `{"error": "..."}` with the HTTP
status TF Serving maps the error code to. Inference routes come in through
`extra_routes` (matched first); the Prometheus endpoint, when `monitoring`
enables it, serves the process's `Metrics`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from tensorflow_serving.apis import get_model_status_pb2

from serving.config.files import MonitoringSettings
from serving.core.status import Code, ServingError, http_status
from serving.grpc.model_service import get_model_status
from serving.metrics import Metrics, metrics_route
from serving.server_core import ServerCore

JSON = "application/json"


def error_response(error: ServingError) -> Response:
    return Response(
        json.dumps({"error": error.message}), status_code=http_status(error.code), media_type=JSON
    )


def _malformed(request: Request) -> ServingError:
    # TF Serving answers any path its dispatcher does not recognise this way.
    return ServingError(
        Code.INVALID_ARGUMENT, f"Malformed request: {request.method} {request.url.path}"
    )


def status_request(
    request: Request,
) -> get_model_status_pb2.GetModelStatusRequest:
    params = request.path_params
    message = get_model_status_pb2.GetModelStatusRequest()
    message.model_spec.name = params["model"]
    if "version" in params:
        raw = params["version"]
        if not raw.isascii() or not raw.isdigit():
            raise _malformed(request)
        message.model_spec.version.value = int(raw)
    if "label" in params:
        message.model_spec.version_label = params["label"]
    return message


def build_rest_app(
    core: ServerCore,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    monitoring: MonitoringSettings | None = None,
    metrics: Metrics | None = None,
) -> Starlette:
    async def model_status(request: Request) -> Response:
        try:
            response = get_model_status(core, status_request(request))
        except ServingError as error:
            return error_response(error)
        body = json_format.MessageToJson(
            response,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
            indent=1,
        )
        return Response(body, media_type=JSON)

    routes: list[BaseRoute] = list(extra_routes)  # first: e.g. /v1/models/{m}:predict
    routes += [
        Route("/v1/models/{model}", model_status, methods=["GET"]),
        Route("/v1/models/{model}/versions/{version}", model_status, methods=["GET"]),
        Route("/v1/models/{model}/labels/{label}", model_status, methods=["GET"]),
    ]
    if monitoring is not None and monitoring.enable:
        # Without a Metrics object (a status-only app) the endpoint still
        # answers, with empty series, rather than 404.
        routes.append(metrics_route(monitoring.path, metrics or Metrics()))

    async def unrouted(request: Request, exc: Exception) -> Response:
        # TF Serving hands every /v1/ path to its REST handler, which answers what
        # it cannot parse (an unknown path, a method other than GET/POST) with
        # INVALID_ARGUMENT "Malformed request" (400); other paths never reach it.
        in_api = request.url.path.lower().startswith("/v1/")
        return Response(
            json.dumps({"error": _malformed(request).message}),
            status_code=400 if in_api else 404,
            media_type=JSON,
        )

    app = Starlette(routes=routes, exception_handlers={404: unrouted, 405: unrouted})
    app.state.core = core
    app.state.monitoring = monitoring
    return app

