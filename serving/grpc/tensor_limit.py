"""The --max_tensor_elements limit on gRPC: Predict inputs are checked on their
TensorProto shapes (serving/limits.py) before the handler decodes anything."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from serving.core.status import ServingError
from serving.grpc.errors import abort
from serving.limits import check_tensor_protos

# Methods whose request carries named input TensorProtos in `inputs`.
_TENSOR_METHODS = frozenset({"/tensorflow.serving.PredictionService/Predict"})


class TensorLimitInterceptor(grpc.ServerInterceptor):
    """Refuses Predict requests with an oversized input before the handler decodes it."""

    def __init__(self, max_elements: int) -> None:
        self._limit = max_elements

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method not in _TENSOR_METHODS or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        limit = self._limit

        def checked(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                check_tensor_protos(request.inputs, limit)
            except ServingError as err:
                abort(context, err)
            return inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            checked,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
