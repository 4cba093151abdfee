"""Shared fixtures: a session cache of real SavedModels and the real server process."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tests.helpers import free_port, wait_for

# No hypothesis test may depend on the machine's speed (no deadline), and a run is
# reproducible (derandomized): a busy CI machine must not turn a property red.
settings.register_profile("suite", deadline=None, derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

# A suite started in the background of a non-interactive shell (`make test &`, a CI
# runner's script) inherits SIGINT ignored, and so would every process the tests
# start: Python leaves an ignored SIGINT ignored, so a `status --watch` the tests
# Ctrl-C would never stop. A Python-level handler here is reset to the default in
# each child at exec, as in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 600.0  # bounds a failure only: a TF import took over 90 s at load 20


ModelFactory = Callable[..., Path]


def _model_cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where built SavedModels are kept: under xdist, the run's directory that every
    worker's own temp directory sits in, so each model is built once per run."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "model-cache"
    root.mkdir(exist_ok=True)
    return root


def _cached_model(root: Path, kwargs: dict[str, Any]) -> Path:
    """The half_plus_two SavedModel built with `kwargs`, built now by whichever
    process asks first while the others wait on its lock."""
    key = repr(sorted(kwargs.items()))
    name = "m" + hashlib.sha256(key.encode()).hexdigest()[:16]
    built = root / name / "1"
    with open(root / f"{name}.lock", "ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when closed
        if not built.exists():
            from tests.models import make_half_plus_two

            staging = root / f".staging-{name}"
            shutil.rmtree(staging, ignore_errors=True)  # a build cut short by a killed run
            make_half_plus_two(staging / name, 1, **kwargs)
            (root / name).mkdir()
            (staging / name / "1").rename(built)
            shutil.rmtree(staging)
    return built


@pytest.fixture(scope="session")
def make_model(tmp_path_factory: pytest.TempPathFactory) -> ModelFactory:
    """make_model(base, version, **kwargs): a half_plus_two SavedModel at base/<version>.

    Each distinct kwargs combination is built with TensorFlow once per run (shared by
    the xdist workers) and copied for every further version.
    """
    cache_root = _model_cache_root(tmp_path_factory)
    cache: dict[tuple[Any, ...], Path] = {}

    def make(base: Path, version: int, **kwargs: Any) -> Path:
        key = tuple(sorted(kwargs.items()))
        if key not in cache:
            cache[key] = _cached_model(cache_root, kwargs)
        target = Path(base) / str(version)
        # Copy beside the target, then rename: the source never sees a half-copied dir.
        staging = Path(base) / f".staging-{version}"
        shutil.copytree(cache[key], staging)
        staging.rename(target)
        return target

    return make


class ServerProcess:
    """The real `python -m serving` on free loopback ports."""

    def __init__(
        self, args: list[str], log_path: Path, port: int = 0, rest_port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        # Fixed ports let a test restart a server where its clients expect it; another
        # loopback host (127.0.0.2, ...) lets replicas share ports, as pods do.
        if not host.startswith("127."):
            raise ValueError(f"test servers listen on loopback only, not {host}")
        self.host = host
        self.port = port or free_port()
        self.rest_port = rest_port or free_port()
        self.args = [
            sys.executable, "-m", "serving",
            f"--port={self.port}", f"--rest_api_port={self.rest_port}",
            f"--bind_address={host}", *args,
        ]
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=REPO, env=env)
        self._channel: Any = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.rest_port}"

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def channel(self) -> Any:
        import grpc

        if self._channel is None:
            self._channel = grpc.insecure_channel(self.address)
        return self._channel

    def model_stub(self) -> Any:
        from tensorflow_serving.apis import model_service_pb2_grpc

        return model_service_pb2_grpc.ModelServiceStub(self.channel())

    def rollout_stub(self) -> Any:
        from serving.generated import rollouts_serving_pb2_grpc

        return rollouts_serving_pb2_grpc.RolloutServiceStub(self.channel())

    def answers(self) -> bool:
        """True once GetModelStatus answers at all (any status code)."""
        import grpc
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "__probe__"
        try:
            self.model_stub().GetModelStatus(request, timeout=1)
        except grpc.RpcError as exc:
            return exc.code() != grpc.StatusCode.UNAVAILABLE
        return True

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        ok = wait_for(lambda: self.proc.poll() is not None or self.answers(), timeout, 0.2)
        if not ok or self.proc.poll() is not None:
            raise AssertionError(f"server not ready (rc={self.proc.poll()}):\n{self.output()}")

    def stop(self) -> int | None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


@contextmanager
def serving(flags: Sequence[str], log: Path) -> Iterator[ServerProcess]:
    """A server for a module's tests: ready when entered; stopped at the end, with
    the tail of its log printed (pytest shows it when something failed)."""
    server = ServerProcess(list(flags), log)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        print(server.output()[-4000:])


StartServer = Callable[..., ServerProcess]


@pytest.fixture
def start_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartServer]:
    """start_server(*flags, wait=True, port=0, rest_port=0, host="127.0.0.1") ->
    ServerProcess; killed at teardown."""
    servers: list[ServerProcess] = []

    def start(*flags: str, wait: bool = True, port: int = 0, rest_port: int = 0,
              host: str = "127.0.0.1") -> ServerProcess:
        server = ServerProcess(
            list(flags), tmp_path / f"server-{len(servers)}.log", port, rest_port, host
        )
        servers.append(server)
        if wait:
            server.wait_ready()
        return server

    yield start
    failed = getattr(request.node, "rep_call", None)
    for server in servers:
        server.stop()
        if failed is not None and failed.failed:
            print(f"--- server output ({' '.join(server.args)}) ---\n{server.output()}")


@pytest.fixture(scope="session")
def server_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """This process's ServerPool (tests/server_pool.py): servers by their flags, shared
    by every test (of any module) that takes them; they stop with the session."""
    from tests.server_pool import ServerPool

    pool = ServerPool(tmp_path_factory.mktemp("shared-servers"))
    _POOLS.append(pool)
    yield pool
    _POOLS.remove(pool)
    pool.stop()


_POOLS: list[Any] = []  # the session's ServerPool, once a test has asked for it
_POOLED_FILES: set[str] = set()  # test files with a test that takes pooled servers


def _file_of(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Idle pooled servers hold TensorFlow's memory (~0.5 GB each): stopped before a
    # file that takes none (such files are collected after the pooled ones).
    if _POOLS and _file_of(item) not in _POOLED_FILES:
        _POOLS[0].release()


TakeServers = Callable[[Sequence[str], int], list[ServerProcess]]


@pytest.fixture
def shared_servers(request: pytest.FixtureRequest, server_pool: Any) -> Iterator[TakeServers]:
    """shared_servers(flags, n) -> n servers of the module's pool, emptied for this test
    (flags must name files that outlive the test: server_pool.workdir's). When the
    test fails, what they logged during it is printed."""
    taken: list[tuple[ServerProcess, int]] = []

    def take(flags: Sequence[str], count: int) -> list[ServerProcess]:
        servers: list[ServerProcess] = server_pool.take(flags, count)
        taken.extend((server, len(server.output())) for server in servers)
        return servers

    yield take
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for server, offset in taken:
            print(f"--- shared server output during the test ({' '.join(server.args)}) ---\n"
                  f"{server.output()[offset:]}")


MONITORING = 'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n'


def monitored_flags(workdir: Path) -> list[str]:
    """Flags of a server that starts with no models (the controller pushes its config)
    and exports Prometheus metrics, as every controller test's target does; the
    files they name are written in `workdir`."""
    (workdir / "empty.conf").write_text("model_config_list {}\n")
    (workdir / "monitoring.conf").write_text(MONITORING)
    return [f"--model_config_file={workdir / 'empty.conf'}",
            f"--monitoring_config_file={workdir / 'monitoring.conf'}"]


def polling_flags(workdir: Path) -> list[str]:
    """Flags of a server that starts with no models and finds new version
    directories within 0.2 s (a controller test that adds versions)."""
    (workdir / "empty.conf").write_text("model_config_list {}\n")
    return [f"--model_config_file={workdir / 'empty.conf'}", "--file_system_poll_wait_seconds=0.2"]


def monitored_server(start: StartServer, workdir: Path) -> ServerProcess:
    """A server started with monitored_flags (files in `workdir`)."""
    return start(*monitored_flags(workdir))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    outcome: Any = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


# The longest files, longest first (measured alone, issue 17): xdist (--dist loadfile
# --no-loadscope-reorder, as `make test` runs it) hands files out in collection
# order, so these start at once and the short ones fill in beside them instead of
# leaving one long file running alone at the end. Then the files that take pooled
# servers, so a worker goes from one to the next with its servers up.
LONGEST_FIRST = (
    "test_soak.py",
    "test_faults_controller.py",
    "test_server_process.py",
    "test_security.py",
    "test_controller_canary.py",
    "test_demo.py",
    "test_tf_serving_flags.py",
    "test_controller_sync.py",
    "test_pull_request_canaries.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _POOLED_FILES.update(
        _file_of(i) for i in items if "shared_servers" in getattr(i, "fixturenames", ()))

    def rank(item: pytest.Item) -> tuple[int, bool]:
        name = _file_of(item).rsplit("/", 1)[-1]
        longest = LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
        return longest, _file_of(item) not in _POOLED_FILES

    items.sort(key=rank)
