"""Session config, tensor_content, health and method-name flags, unit by unit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from tensorflow.core.protobuf import config_pb2

from serving import tensor_codec
from serving.config.files import ConfigFileError
from serving.config.flags import parse_flags
from serving.config.session import session_config
from serving.core.status import Code, ServingError
from serving.grpc.health import HealthService
from serving.loaders.base import Signature
from serving.request_checks import check_method_name


def _config(*argv: str) -> Any:
    return session_config(parse_flags(list(argv)), config_pb2.ConfigProto())


def test_no_session_flags_mean_tensorflow_defaults() -> None:
    assert _config() is None


def test_session_parallelism_sets_both_pools() -> None:
    config = _config("--tensorflow_session_parallelism=3")
    assert (config.intra_op_parallelism_threads, config.inter_op_parallelism_threads) == (3, 3)


def test_intra_or_inter_override_the_file_and_session_parallelism(tmp_path: Path) -> None:
    path = tmp_path / "session.pbtxt"
    path.write_text("intra_op_parallelism_threads: 8\ninter_op_parallelism_threads: 8\n"
                    "allow_soft_placement: true\n")
    assert _config(f"--tensorflow_session_config_file={path}").intra_op_parallelism_threads == 8
    # Either one set: both come from the two flags (server.cc), the rest from the file.
    config = _config(f"--tensorflow_session_config_file={path}",
                     "--tensorflow_intra_op_parallelism=2", "--tensorflow_session_parallelism=5")
    assert (config.intra_op_parallelism_threads, config.inter_op_parallelism_threads) == (2, 0)
    assert config.allow_soft_placement is True


def test_a_bad_session_config_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "session.pbtxt"
    path.write_text("intra_op_parallelism_threads: 2\nno_such_field: 1\n")
    with pytest.raises(ConfigFileError, match=rf"{path}:2:1: .*tensorflow.ConfigProto"):
        _config(f"--tensorflow_session_config_file={path}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.bool_,
                                   np.float16, np.complex64, np.uint8])
def test_tensor_content_round_trips(dtype: Any) -> None:
    array = np.arange(6).reshape(2, 3).astype(dtype)
    proto = tensor_codec.from_ndarray(array, as_content=True)
    assert proto.tensor_content == array.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
    assert not proto.float_val and not proto.int_val and not proto.int64_val
    decoded = tensor_codec.to_ndarray(proto)
    assert decoded is not None and np.array_equal(decoded, array)
    assert decoded.dtype == array.dtype


def test_strings_stay_in_string_val_with_tensor_content() -> None:
    proto = tensor_codec.from_ndarray(np.array([b"a", b"bc"], dtype=object), as_content=True)
    assert list(proto.string_val) == [b"a", b"bc"] and not proto.tensor_content


class _Context:
    def __init__(self) -> None:
        self.checks = 0

    def is_active(self) -> bool:
        self.checks += 1
        return self.checks < 100  # bounded: a stream that never ends fails the test

    def abort(self, code: Any, message: str) -> None:
        raise RuntimeError(code, message)


def test_health_serving_then_not_serving_and_watch_ends() -> None:
    service: Any = HealthService()  # called with a stand-in context
    request = health_pb2.HealthCheckRequest(service="tensorflow.serving.PredictionService")
    assert service.Check(request, _Context()).status == health_pb2.HealthCheckResponse.SERVING
    stream = service.Watch(request, _Context())
    assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
    service.drain()
    assert [r.status for r in stream] == [health_pb2.HealthCheckResponse.NOT_SERVING]
    assert service.Check(request, _Context()).status == (
        health_pb2.HealthCheckResponse.NOT_SERVING)
    with pytest.raises(RuntimeError, match="unknown service"):
        service.Check(health_pb2.HealthCheckRequest(service="x.Y"), _Context())


def _signature(method: str) -> Signature:
    return Signature(key="k", method_name=method, inputs={}, outputs={})


def test_method_name_check_texts() -> None:
    check_method_name(_signature("tensorflow/serving/classify"), "Predict")
    check_method_name(_signature("tensorflow/serving/regress"), "Regress")
    with pytest.raises(ServingError) as info:
        check_method_name(_signature(""), "Predict")
    assert info.value.code is Code.INTERNAL
    assert "Expected prediction signature method_name to be one of" in info.value.message
    with pytest.raises(ServingError) as info:
        check_method_name(_signature("tensorflow/serving/predict"), "Classify")
    assert info.value.code is Code.INVALID_ARGUMENT
    assert info.value.message == ("Expected classification signature method_name to be"
                                  " tensorflow/serving/classify. Was: tensorflow/serving/predict")
