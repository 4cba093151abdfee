"""Model servers a module's tests take turns on, emptied between tests.

Starting a server imports TensorFlow (about 3 s of CPU, 15-30 s of wall time
on a loaded 2-core CI machine), and a controller test wants two of them; most
of such a test's time was spent starting servers. A pool starts each server
once per module and, before handing it to the next test, puts it back in the
state a fresh one is in: no models (their versions unloaded), no splits or
shadow settings, every model's transition policy the server's default, and
GetConfig reporting an empty config. A server a test killed or stopped is
replaced by a fresh one. Idle servers hold TensorFlow's memory, so the pool
keeps those of one set of flags at a time, and conftest releases them before
a test file that takes none.

What is not reset is the metrics registry: counters of earlier tests' versions
stay at their totals. The controller judges canaries on deltas between two
scrapes (and Prometheus on increase()), so a stale total never counts; a test
that reads absolute counters must keep fresh servers (start_server).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc

from tests.conftest import ServerProcess
from tests.helpers import WAIT_S, wait_for


class ServerPool:
    """Servers by their flags; `take(flags, n)` hands out n of them, emptied."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._servers: dict[tuple[str, ...], list[ServerProcess]] = {}
        self._models_seen: dict[ServerProcess, set[str]] = {}  # whose policies to reset
        self._started = 0

    def take(self, flags: Sequence[str], count: int) -> list[ServerProcess]:
        key = tuple(flags)
        for other in [k for k in self._servers if k != key]:
            # Servers of one set of flags at a time: each idle one holds ~0.5 GB.
            for server in self._servers.pop(other):
                self._retire(server)
        pool = self._servers.setdefault(key, [])
        fresh: list[ServerProcess] = []
        for i in range(count):
            if i < len(pool) and pool[i].proc.poll() is None:
                self._empty(pool[i])
                continue
            if i < len(pool):
                self._retire(pool[i])  # a test killed it: its log is closed, a new one starts
            server = self._start(flags)
            fresh.append(server)
            if i < len(pool):
                pool[i] = server
            else:
                pool.append(server)
        # Started together, so their TensorFlow imports overlap; then each waited on.
        for server in fresh:
            server.wait_ready()
        return pool[:count]

    def release(self) -> None:
        """Stop every server; a later take() starts fresh ones."""
        for pool in self._servers.values():
            for server in pool:
                self._retire(server)
        self._servers.clear()

    def stop(self) -> None:
        for pool in self._servers.values():
            for server in pool:
                self._retire(server)
                print(f"--- shared server ({' '.join(server.args)}) ---\n"
                      f"{server.output()[-4000:]}")
        self._servers.clear()

    def _retire(self, server: ServerProcess) -> None:
        server.stop()
        self._models_seen.pop(server, None)

    def _start(self, flags: Sequence[str]) -> ServerProcess:
        self._started += 1
        return ServerProcess(list(flags), self.workdir / f"server-{self._started}.log")

    def _empty(self, server: ServerProcess) -> None:
        from tensorflow_serving.apis import model_management_pb2

        from serving.generated import rollouts_serving_pb2 as ext

        seen = self._models_seen.setdefault(server, set())
        listed = server.rollout_stub().ListModels(ext.ListModelsRequest(), timeout=30).models
        seen.update(info.name for info in listed)
        for name in sorted(seen):
            server.rollout_stub().ClearSplit(ext.ClearSplitRequest(model_name=name), timeout=30)
            server.rollout_stub().SetTransitionPolicy(ext.SetTransitionPolicyRequest(
                model_name=name, policy=ext.TRANSITION_POLICY_UNSPECIFIED), timeout=30)
        request = model_management_pb2.ReloadConfigRequest()
        request.config.model_config_list.SetInParent()  # an empty list: unload every model
        reply = server.model_stub().HandleReloadConfigRequest(request, timeout=120)
        assert reply.status.error_code == 0, reply.status.error_message
        assert wait_for(lambda: all(_unloaded(server, name) for name in seen), WAIT_S, 0.1), (
            f"versions still loaded after emptying the server:\n{server.output()[-4000:]}")
        config = server.rollout_stub().GetConfig(ext.GetConfigRequest(), timeout=30)
        assert not server.rollout_stub().ListModels(ext.ListModelsRequest(), timeout=30).models
        assert not config.splits and not config.transition_policies, config


def _unloaded(server: ServerProcess, model: str) -> bool:
    """Every version of `model` has ended (or the server no longer knows it)."""
    from tensorflow_serving.apis import get_model_status_pb2

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    try:
        reply = server.model_stub().GetModelStatus(request, timeout=10)
    except grpc.RpcError as exc:
        return bool(exc.code() == grpc.StatusCode.NOT_FOUND)
    end = get_model_status_pb2.ModelVersionStatus.END
    return all(status.state == end for status in reply.model_version_status)
