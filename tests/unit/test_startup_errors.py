"""Every start-up error shares one base, and the server's main turns each into a
message naming the file or flag and an exit code, before anything is started."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.admin_auth import TokenFileError
from serving.config.batching import BatchingConfigError
from serving.config.errors import StartupError
from serving.config.files import ConfigFileError
from serving.config.flags import FlagError
from serving.config.tls import TLSConfigError
from serving.main import main


@pytest.mark.parametrize(
    "error", [FlagError, TLSConfigError, BatchingConfigError, ConfigFileError, TokenFileError]
)
def test_each_startup_error_is_a_startup_error(error: type[Exception]) -> None:
    assert issubclass(error, StartupError)


# (flag taking a file, file content): each file is unusable.
BAD_FILES = [
    ("--model_config_file", "model_config_list { config { name: "),
    ("--ssl_config_file", "server_key: 7"),
    ("--batching_parameters_file", "max_batch_size { value: -1 }"),
    ("--monitoring_config_file", "prometheus_config { enable: maybe }"),
    ("--admin_token_file", "two words"),
]


@pytest.mark.parametrize(("flag", "content"), BAD_FILES)
def test_a_bad_file_stops_startup_with_its_name_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, content: str
) -> None:
    path = tmp_path / "bad.cfg"
    path.write_text(content)
    args = [f"{flag}={path}", "--port=0"]
    if flag != "--model_config_file":
        args.append(f"--model_base_path={tmp_path}")
    if flag == "--batching_parameters_file":
        args.append("--enable_batching")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert str(path) in err
    assert "--port" not in err  # not the usage: that is for a bad command line


def test_a_bad_command_line_prints_the_usage_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--port=eight"]) == 2
    err = capsys.readouterr().err
    assert "--port" in err and "usage" in err.lower()
