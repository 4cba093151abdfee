"""Reading the server's text-format config files.

Owns turning `--model_config_file` (a text-format ModelServerConfig) and
`--monitoring_config_file` (a text-format MonitoringConfig) into protos, with
errors that name the file and line, and the single-model config TF Serving
builds from `--model_name` / `--model_base_path`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.message import Message
from tensorflow_serving.config import model_server_config_pb2

from serving.config.errors import StartupError


class ConfigFileError(StartupError):
    """A config file that cannot be read or parsed; the message names file and line."""


@dataclass(frozen=True)
class MonitoringSettings:
    """Where (and whether) to export Prometheus metrics over REST."""

    enable: bool = False
    path: str = "/monitoring/prometheus/metrics"


def _parse_text(path: str, text: str, message: Message) -> None:
    name = message.DESCRIPTOR.full_name
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        line = exc.GetLine() if exc.GetLine() is not None else 0
        column = exc.GetColumn() if exc.GetColumn() is not None else 0
        # ParseError's str() repeats "line:col :" in front; keep just the reason.
        reason = str(exc).split(" : ", 1)[-1]
        raise ConfigFileError(
            f"{path}:{line}:{column}: Error parsing text-format {name}: {reason}"
        ) from exc


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc


def read_text_proto(path: str, message: Message) -> Message:
    """Fill `message` from the text-format file at `path`; errors name file:line:col."""
    _parse_text(path, _read(path), message)
    return message


def parse_model_server_config(path: str, text: str) -> model_server_config_pb2.ModelServerConfig:
    """Parse text already read from `path` (so pollers can compare contents first)."""
    config = model_server_config_pb2.ModelServerConfig()
    _parse_text(path, text, config)
    return config


def read_model_server_config(path: str) -> model_server_config_pb2.ModelServerConfig:
    return parse_model_server_config(path, _read(path))


def single_model_config(name: str, base_path: str) -> model_server_config_pb2.ModelServerConfig:
    """The config TF Serving builds from --model_name and --model_base_path."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    return config


def _monitoring_config_class() -> type[Message]:
    # The tensorflow-serving-api wheel does not ship monitoring_config_pb2, so
    # declare TF Serving's MonitoringConfig (config/monitoring_config.proto)
    # here, in a private pool, to parse the same text format.
    file = descriptor_pb2.FileDescriptorProto(
        name="rollouts_monitoring_config.proto", package="tensorflow.serving", syntax="proto3"
    )
    prometheus = file.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=8, label=1)  # bool
    prometheus.field.add(name="path", number=2, type=9, label=1)  # string
    sampling = file.message_type.add(name="SamplingConfig")
    sampling.field.add(name="sampling_rate", number=1, type=1, label=1)  # double
    monitoring = file.message_type.add(name="MonitoringConfig")
    monitoring.field.add(name="prometheus_config", number=1, type=11, label=1,
                         type_name=".tensorflow.serving.PrometheusConfig")
    monitoring.field.add(name="sampling_config", number=2, type=11, label=1,
                         type_name=".tensorflow.serving.SamplingConfig")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig")
    )


def read_monitoring_config(path: str) -> MonitoringSettings:
    config: Any = _monitoring_config_class()()
    _parse_text(path, _read(path), config)
    prometheus = config.prometheus_config
    return MonitoringSettings(
        enable=prometheus.enable,
        path=prometheus.path or MonitoringSettings.path,
    )
