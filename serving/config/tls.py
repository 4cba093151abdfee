"""TF Serving's --ssl_config_file: the SSLConfig message and its text format.

Owns the SSLConfig message (TF Serving's config/ssl_config.proto, declared
here because the tensorflow-serving-api wheel does not ship it) and parsing its
text format into plain values; `serving.grpc.server` turns them into grpc
server credentials.

Like TF Serving, server_key, server_cert and custom_ca hold the PEM text
itself. As a convenience beyond TF Serving, a value that does not start with
"-----BEGIN" is read as the path of a PEM file (so a mounted secret can be
named instead of pasted).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.message import Message

from serving.config.errors import StartupError

_PEM_START = "-----BEGIN"


class TLSConfigError(StartupError):
    """An unreadable or invalid SSL config; the message names the file and field."""


@dataclass(frozen=True)
class SSLSettings:
    """The parsed SSLConfig, with every PEM value as bytes."""

    server_key: bytes
    server_cert: bytes
    custom_ca: bytes = b""
    client_verify: bool = False


def _ssl_config_class() -> type[Message]:
    file = descriptor_pb2.FileDescriptorProto(
        name="rollouts_ssl_config.proto", package="tensorflow.serving", syntax="proto3"
    )
    message = file.message_type.add(name="SSLConfig")
    message.field.add(name="server_key", number=1, type=9, label=1)  # string
    message.field.add(name="server_cert", number=2, type=9, label=1)  # string
    message.field.add(name="custom_ca", number=3, type=9, label=1)  # string
    message.field.add(name="client_verify", number=4, type=8, label=1)  # bool
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    descriptor = pool.FindMessageTypeByName("tensorflow.serving.SSLConfig")
    return message_factory.GetMessageClass(descriptor)


_SSLConfig = _ssl_config_class()


def _pem(path: str, field: str, value: str, base: Path) -> bytes:
    if not value or value.lstrip().startswith(_PEM_START):
        return value.encode()
    file = Path(value) if Path(value).is_absolute() else base / value
    try:
        text = file.read_bytes()
    except OSError as exc:
        raise TLSConfigError(f"{path}: {field}: cannot read {file}: {exc.strerror or exc}") from exc
    except ValueError:  # a NUL in the name: no file can have it
        raise TLSConfigError(f"{path}: {field}: not a file name: {value!r}") from None
    if _PEM_START.encode() not in text:
        raise TLSConfigError(f"{path}: {field}: {file} holds no PEM data")
    return text


def parse_ssl_config(path: str, text: str) -> SSLSettings:
    """Parse SSLConfig text read from `path`; relative PEM paths are relative to its folder."""
    config: Any = _SSLConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise TLSConfigError(
            f"{path}: Error parsing text-format tensorflow.serving.SSLConfig: {exc}"
        ) from exc
    base = Path(path).parent
    settings = SSLSettings(
        server_key=_pem(path, "server_key", config.server_key, base),
        server_cert=_pem(path, "server_cert", config.server_cert, base),
        custom_ca=_pem(path, "custom_ca", config.custom_ca, base),
        client_verify=bool(config.client_verify),
    )
    check_ssl_settings(path, settings)
    return settings


def check_ssl_settings(path: str, settings: SSLSettings) -> None:
    """Fail at startup, with a reason, where grpc would fail later and vaguely."""
    if not settings.server_key or not settings.server_cert:
        raise TLSConfigError(f"{path}: server_key and server_cert are both required")
    if settings.client_verify and not settings.custom_ca:
        # Without a CA there is nothing to verify client certificates against.
        raise TLSConfigError(f"{path}: client_verify needs custom_ca to verify clients against")


def read_ssl_config(path: str) -> SSLSettings:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise TLSConfigError(f"{path}: cannot read SSL config file: {exc.strerror or exc}") from exc
    return parse_ssl_config(path, text)
