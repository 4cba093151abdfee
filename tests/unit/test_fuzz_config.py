"""Fuzzing: the config text-proto parsers raise nothing but ConfigFileError.

Random text, random bytes decoded leniently, and mutations of valid
ModelServerConfig / MonitoringConfig texts go through serving/config_file.py.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.config_file import ConfigFileError, parse_model_server_config, read_monitoring_config

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
        except ConfigFileError:
            pass


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
