"""TensorFlow's runtime errors as our error taxonomy, for both loader paths.

A bad request (wrong value, out-of-range index, failed assertion) is the
client's error; anything else TensorFlow raises is INTERNAL. Messages keep
only the op's own text, not the "Graph execution error" preamble eager
execution adds.
"""

from __future__ import annotations

import re

import tensorflow as tf

from serving.core.status import Code, ServingError

_REQUEST_ERRORS: dict[type[Exception], Code] = {
    tf.errors.InvalidArgumentError: Code.INVALID_ARGUMENT,
    tf.errors.OutOfRangeError: Code.OUT_OF_RANGE,
    tf.errors.FailedPreconditionError: Code.FAILED_PRECONDITION,
    tf.errors.ResourceExhaustedError: Code.RESOURCE_EXHAUSTED,
    tf.errors.UnimplementedError: Code.UNIMPLEMENTED,
}

_GRAPH_ERROR_PREFIX = re.compile(
    r"^Graph execution error:\s*(Detected at node .*?\n(<stack traces unavailable>\n)?)?", re.S
)


def clean_message(message: str) -> str:
    return _GRAPH_ERROR_PREFIX.sub("", message).strip()


def serving_error(exc: tf.errors.OpError) -> ServingError:
    code = next((c for cls, c in _REQUEST_ERRORS.items() if isinstance(exc, cls)), Code.INTERNAL)
    return ServingError(code, clean_message(exc.message))
