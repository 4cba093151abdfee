"""--ssl_config_file parsing (TF Serving's SSLConfig text format) and channel options."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from controller.adapters.channel import ChannelConfigError, client_channel
from serving.config.tls import (
    SSLSettings,
    TLSConfigError,
    parse_ssl_config,
    read_ssl_config,
)
from serving.grpc.server import server_credentials

KEY = "-----BEGIN PRIVATE KEY-----\nMIIBkey\n-----END PRIVATE KEY-----\n"
CERT = "-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n"
CA = "-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n"


def quoted(pem: str) -> str:
    return '"' + pem.replace("\n", "\\n") + '"'


def test_inline_pem_as_tf_serving_writes_it() -> None:
    text = (f"server_key: {quoted(KEY)}\nserver_cert: {quoted(CERT)}\n"
            f"custom_ca: {quoted(CA)}\nclient_verify: true\n")
    settings = parse_ssl_config("/etc/ssl.cfg", text)
    assert settings == SSLSettings(KEY.encode(), CERT.encode(), CA.encode(), True)


def test_pem_paths_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "server.key").write_text(KEY)
    (tmp_path / "server.pem").write_text(CERT)
    config = tmp_path / "ssl.cfg"
    config.write_text(f'server_key: "server.key"\nserver_cert: "{tmp_path / "server.pem"}"\n')
    settings = read_ssl_config(str(config))
    assert settings.server_key == KEY.encode() and settings.server_cert == CERT.encode()
    assert settings.custom_ca == b"" and settings.client_verify is False


def test_unreadable_pem_file_names_the_field(tmp_path: Path) -> None:
    config = tmp_path / "ssl.cfg"
    config.write_text(f'server_key: "absent.key"\nserver_cert: {quoted(CERT)}\n')
    with pytest.raises(TLSConfigError, match=r"ssl.cfg: server_key: cannot read .*absent.key"):
        read_ssl_config(str(config))


def test_a_file_without_pem_is_refused(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("not a key")
    config = tmp_path / "ssl.cfg"
    config.write_text(f'server_key: "k"\nserver_cert: {quoted(CERT)}\n')
    with pytest.raises(TLSConfigError, match="holds no PEM data"):
        read_ssl_config(str(config))


def test_syntax_error_names_the_file() -> None:
    with pytest.raises(TLSConfigError, match=r"^/x/ssl.cfg: Error parsing text-format "
                                             r"tensorflow.serving.SSLConfig"):
        parse_ssl_config("/x/ssl.cfg", "server_key: \"a\"\nbogus_field: 1\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"server_cert: {quoted(CERT)}", "server_key and server_cert are both required"),
        (f"server_key: {quoted(KEY)}", "server_key and server_cert are both required"),
        (f"server_key: {quoted(KEY)} server_cert: {quoted(CERT)} client_verify: true",
         "client_verify needs custom_ca"),
    ],
)
def test_incomplete_configs_fail_at_startup(text: str, message: str) -> None:
    with pytest.raises(TLSConfigError, match=message):
        parse_ssl_config("ssl.cfg", text)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(TLSConfigError, match="cannot read SSL config file"):
        read_ssl_config(str(tmp_path / "absent.cfg"))


def test_server_credentials_are_grpc_credentials() -> None:
    creds = server_credentials(SSLSettings(KEY.encode(), CERT.encode(), CA.encode(), True))
    assert isinstance(creds, grpc.ServerCredentials)


def test_client_cert_without_key_is_refused() -> None:
    with pytest.raises(ChannelConfigError, match="give both or neither"):
        client_channel("127.0.0.1:1", client_cert=CERT.encode())


def _metadata_server() -> tuple[grpc.Server, int, list[dict[str, str]]]:
    """A loopback gRPC server whose one method records each call's metadata."""
    seen: list[dict[str, str]] = []

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        seen.append({k: str(v) for k, v in context.invocation_metadata()})
        return request

    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Call": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.server(ThreadPoolExecutor(max_workers=2), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port, seen


def test_a_token_channel_sends_the_bearer_token_and_a_plain_one_sends_none() -> None:
    server, port, seen = _metadata_server()
    try:
        for token in ("s3cret", ""):
            channel = client_channel(f"127.0.0.1:{port}", token=token)
            try:
                call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                    "/test.Echo/Call"
                )
                assert call(b"ping", timeout=30) == b"ping"
            finally:
                channel.close()
        with_token, without = seen
        assert with_token["authorization"] == "Bearer s3cret"
        assert "authorization" not in without
    finally:
        server.stop(grace=None)


def test_a_ca_or_client_certificate_makes_a_tls_channel() -> None:
    # A TLS channel to a plaintext server fails its handshake: the call never
    # reaches the method (UNAVAILABLE), which a plaintext channel would.
    server, port, seen = _metadata_server()
    try:
        channel = client_channel(f"127.0.0.1:{port}", tls=True)
        try:
            call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                "/test.Echo/Call"
            )
            with pytest.raises(grpc.RpcError) as failed:
                call(b"ping", timeout=30)
            assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
        finally:
            channel.close()
        assert seen == []
    finally:
        server.stop(grace=None)


def test_a_pem_path_with_a_nul_is_a_config_error(tmp_path: Path) -> None:
    # Found by the SSLConfig fuzz: open() raises ValueError, not OSError, for it.
    with pytest.raises(TLSConfigError, match="server_key: not a file name"):
        parse_ssl_config(str(tmp_path / "ssl.conf"),
                         'server_key: "a\\0b" server_cert: "c.pem"')
