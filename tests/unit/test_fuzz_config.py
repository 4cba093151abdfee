"""Fuzzing: the config text-proto parsers raise nothing but ConfigFileError.

Random text, random bytes decoded leniently, and mutations of valid
ModelServerConfig / MonitoringConfig texts go through serving/config/files.py;
the same for BatchingParameters (serving/config/batching.py) and SSLConfig
(serving/config/tls.py), each of which raises only its own error, naming the file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.config.batching import BatchingConfigError, parse_batching_parameters
from serving.config.files import ConfigFileError, parse_model_server_config, read_monitoring_config
from serving.config.tls import TLSConfigError, parse_ssl_config

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID = (
    "model_config_list {\n"
    '  config { name: "hp2" base_path: "/models/hp2" model_platform: "tensorflow"\n'
    "    model_version_policy { specific { versions: 1 versions: 2 } }\n"
    '    version_labels { key: "stable" value: 1 }\n'
    '    version_labels { key: "canary" value: 2 } }\n'
    "}\n"
)
MONITORING = 'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n'
TOKENS = ["{", "}", ":", '"', "\\", "<", ">", "[", "]", "#", "\n", "-1", "9" * 25, "nan",
          "config", "model_config_list", "versions", "value", "custom_model_config", "\x00"]


@st.composite
def mutated(draw: st.DrawFn, base: str) -> str:
    text = base
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()) and text:
            text = text[:at] + text[at + draw(st.integers(1, 15)):]
        else:
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at:]
    return text


def parse_or_config_error(text: str) -> None:
    try:
        parse_model_server_config("fuzz.conf", text)
    except ConfigFileError as exc:
        assert str(exc).startswith("fuzz.conf:")


@FAST
@given(st.one_of(st.text(max_size=300), mutated(VALID)))
def test_model_server_config_text(text: str) -> None:
    parse_or_config_error(text)


@FAST
@given(st.binary(max_size=200))
def test_model_server_config_bytes(raw: bytes) -> None:
    parse_or_config_error(raw.decode("utf-8", errors="replace"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), mutated(MONITORING)))
def test_monitoring_config_file(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "monitoring.conf"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            read_monitoring_config(str(path))
        except ConfigFileError as exc:
            # Only its own error, and one that says which file is wrong.
            assert str(exc).startswith(str(path)), exc


def test_valid_texts_parse() -> None:
    # The control for the mutations above.
    config = parse_model_server_config("ok.conf", VALID)
    assert config.model_config_list.config[0].version_labels["canary"] == 2
    assert read_monitoring_config_text(MONITORING)


def read_monitoring_config_text(text: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.conf"
        path.write_text(text)
        return read_monitoring_config(str(path)).enable


BATCHING = (
    "max_batch_size { value: 32 }\n"
    "batch_timeout_micros { value: 2000 }\n"
    "max_enqueued_batches { value: 100 }\n"
    "num_batch_threads { value: 2 }\n"
    "allowed_batch_sizes: 8\nallowed_batch_sizes: 32\n"
)
SSL = 'server_key: "key.pem"\nserver_cert: "cert.pem"\ncustom_ca: "ca.pem"\nclient_verify: true\n'


@FAST
@given(st.one_of(st.text(max_size=200), mutated(BATCHING)))
def test_batching_parameters_text(text: str) -> None:
    try:
        parse_batching_parameters("batching.conf", text)
    except BatchingConfigError as exc:
        assert str(exc).startswith("batching.conf:")


@contextmanager
def ssl_config_path() -> Iterator[str]:
    """Where an SSLConfig would live, beside the PEM files SSL names."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("key.pem", "cert.pem", "ca.pem"):
            (Path(tmp) / name).write_text(f"-----BEGIN {name}-----\n")
        yield str(Path(tmp) / "ssl.conf")


@FAST
@given(st.one_of(st.text(max_size=200), mutated(SSL)))
def test_ssl_config_text(text: str) -> None:
    with ssl_config_path() as path:
        try:
            parse_ssl_config(path, text)
        except TLSConfigError as exc:
            assert str(exc).startswith(path)


def test_valid_batching_and_ssl_texts_parse() -> None:
    # The controls for the two mutations above.
    assert parse_batching_parameters("b.conf", BATCHING).allowed_batch_sizes == (8, 32)
    with ssl_config_path() as path:
        assert parse_ssl_config(path, SSL).client_verify
