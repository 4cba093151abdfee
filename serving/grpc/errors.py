"""ServingError on gRPC: the one place the server's error taxonomy meets gRPC status.

`serving.core.status.Code` carries gRPC's own numbers, so a code maps onto the
`grpc.StatusCode` of the same name. Servicer methods raise ServingError and are
wrapped in `answers_errors`; code that holds a context itself (an interceptor,
the twice-reported ReloadConfig) calls `abort` or `set_status`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NoReturn, TypeVar

import grpc

from serving.core.status import Code, ServingError

_STATUS: dict[Code, grpc.StatusCode] = {code: grpc.StatusCode[code.name] for code in Code}

Servicer = TypeVar("Servicer")
Request = TypeVar("Request")
Response = TypeVar("Response")
Method = Callable[[Servicer, Request, grpc.ServicerContext], Response]


def status_code(code: Code) -> grpc.StatusCode:
    """The gRPC status code for a ServingError code."""
    return _STATUS[code]


def abort(context: grpc.ServicerContext, error: ServingError) -> NoReturn:
    """End the RPC with the error's status and message (raises, as grpc's abort does)."""
    context.abort(_STATUS[error.code], error.message)


def set_status(context: grpc.ServicerContext, error: ServingError) -> None:
    """Give the RPC the error's status while still returning a response message."""
    context.set_code(_STATUS[error.code])
    context.set_details(error.message)


def answers_errors(
    method: Method[Servicer, Request, Response],
) -> Method[Servicer, Request, Response]:
    """A servicer method whose ServingError becomes the RPC's status."""

    @functools.wraps(method)
    def wrapper(self: Servicer, request: Request, context: grpc.ServicerContext) -> Response:
        try:
            return method(self, request, context)
        except ServingError as error:
            abort(context, error)

    return wrapper
