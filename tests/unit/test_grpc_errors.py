"""ServingError on gRPC: every code maps onto the same-named gRPC status, servicer
methods answer a ServingError with it, and no other module maps codes itself."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import grpc
import pytest

from serving.core.status import Code, ServingError, invalid_argument
from serving.grpc.errors import abort, answers_errors, set_status, status_code

SERVING = Path(__file__).resolve().parents[2] / "serving"


class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details: str | None = None

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise Aborted

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details


@pytest.mark.parametrize("code", list(Code))
def test_every_code_maps_to_the_grpc_status_of_that_name_and_number(code: Code) -> None:
    status = status_code(code)
    assert status.name == code.name
    assert status.value[0] == int(code)


def test_a_servicer_method_answers_its_serving_error() -> None:
    class Servicer:
        @answers_errors
        def Call(self, request: str, context: Any) -> str:  # noqa: N802 (gRPC's style)
            if request == "bad":
                raise ServingError(Code.FAILED_PRECONDITION, "not now")
            return request.upper()

    context: Any = FakeContext()
    assert Servicer().Call("ok", context) == "OK"
    assert context.code is None
    with pytest.raises(Aborted):
        Servicer().Call("bad", context)
    assert (context.code, context.details) == (grpc.StatusCode.FAILED_PRECONDITION, "not now")


def test_other_exceptions_are_not_turned_into_a_status() -> None:
    @answers_errors
    def call(self: object, request: str, context: Any) -> str:
        raise KeyError(request)

    context: Any = FakeContext()
    with pytest.raises(KeyError):
        call(object(), "x", context)
    assert context.code is None


def test_abort_and_set_status_carry_code_and_message() -> None:
    context: Any = FakeContext()
    with pytest.raises(Aborted):
        abort(context, invalid_argument("Missing ModelSpec"))
    assert context.code is grpc.StatusCode.INVALID_ARGUMENT
    assert context.details == "Missing ModelSpec"
    context = FakeContext()
    set_status(context, ServingError(Code.NOT_FOUND, "no model"))
    assert (context.code, context.details) == (grpc.StatusCode.NOT_FOUND, "no model")


def test_no_other_module_maps_codes_to_grpc_status() -> None:
    mapping = re.compile(r"grpc\.StatusCode\[")
    elsewhere = [
        str(path.relative_to(SERVING))
        for path in SERVING.rglob("*.py")
        if "generated" not in path.parts and path.name != "errors.py"
        and mapping.search(path.read_text())
    ]
    assert elsewhere == []
