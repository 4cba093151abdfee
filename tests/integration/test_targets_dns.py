"""Targets discovered in DNS: a real dnsmasq on loopback answers for a name whose A
records are real servers on 127.0.0.x; the controller follows the records as
replicas join and leave, mid-canary."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.resolver
import pytest

from controller.adapters.discovery import DnsDiscovery, DnsName
from controller.adapters.metrics import ScrapeProvider
from controller.decide.fleet import TargetAddress
from controller.runtime.runner import Controller, ControllerSettings
from tests.conftest import ServerProcess, free_port, wait_for
from tests.gitops import Person, spec
from tests.integration.test_controller_canary import (
    MONITORING,
    canary_block,
    label_version,
    split_of,
)

pytestmark = pytest.mark.integration

NAME = "model-server.rollouts.test"
READY = "127.0.0.9 dnsmasq-ready.test\n"


class Dnsmasq:
    """dnsmasq answering only from a hosts file, on 127.0.0.1:<free port>."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        if not Path(binary).exists():
            pytest.fail("dnsmasq is missing: apt-get install -y dnsmasq")
        self.hosts = folder / "hosts"
        self.hosts.write_text(READY)
        self.port = free_port()
        self.log = folder / "dnsmasq.log"
        self.proc = subprocess.Popen(
            [binary, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
             "--no-hosts", f"--addn-hosts={self.hosts}", "--local=/test/",
             "--listen-address=127.0.0.1",
             "--bind-interfaces", f"--port={self.port}", "--no-negcache", "--local-ttl=0",
             "--pid-file", "--user=root", f"--log-facility={self.log}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        # Answering means its signal handlers are in place (a SIGHUP before that
        # would end it).
        if not wait_for(lambda: self.answer("dnsmasq-ready.test") == ["127.0.0.9"], 20, 0.1):
            self.stop()
            pytest.fail(f"dnsmasq did not start: {self.log.read_text(errors='replace')}")

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def publish(self, *addresses: str) -> None:
        """The name's A records are now exactly `addresses` (SIGHUP rereads the file)."""
        self.hosts.write_text(READY + "".join(f"{a} {NAME}\n" for a in addresses))
        self.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: self.answer() == sorted(addresses), 10, 0.1), self.answer()

    def answer(self, name: str = NAME) -> list[str]:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port, resolver.lifetime = ["127.0.0.1"], self.port, 2
        try:
            return sorted(r.to_text() for r in resolver.resolve(name, "A", search=False))
        except dns.exception.DNSException:
            return []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[Dnsmasq]:
    server = Dnsmasq(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def test_discovery_resolves_the_records_and_keeps_them_through_an_outage(
    dnsmasq: Dnsmasq,
) -> None:
    dnsmasq.publish("127.0.0.3", "127.0.0.2")
    host, port = dnsmasq.server.split(":")
    discovery = DnsDiscovery([DnsName(NAME, 8500, 8501)], (host, int(port)), timeout_s=1)
    assert discovery.resolve() == [
        TargetAddress(f"{NAME}/127.0.0.2", "127.0.0.2:8500", "http://127.0.0.2:8501"),
        TargetAddress(f"{NAME}/127.0.0.3", "127.0.0.3:8500", "http://127.0.0.3:8501"),
    ]
    dnsmasq.publish()  # no records: no targets for that name
    assert discovery.resolve() == []
    dnsmasq.publish("127.0.0.2")
    assert [t.name for t in discovery.resolve()] == [f"{NAME}/127.0.0.2"]
    dnsmasq.stop()  # the DNS server is down: the last known targets stay
    assert [t.name for t in discovery.resolve()] == [f"{NAME}/127.0.0.2"]


def test_fleet_follows_dns_mid_canary(
    tmp_path: Path, start_server: Any, make_model: Any, dnsmasq: Dnsmasq
) -> None:
    root = tmp_path / "models"
    make_model(root / "hp2", 1)
    make_model(root / "hp2", 2)
    (tmp_path / "empty.conf").write_text("model_config_list {}\n")
    (tmp_path / "monitoring.conf").write_text(MONITORING)
    flags = [f"--model_config_file={tmp_path / 'empty.conf'}",
             f"--monitoring_config_file={tmp_path / 'monitoring.conf'}"]
    port, rest_port = free_port(), free_port()
    a, b = (start_server(*flags, port=port, rest_port=rest_port, host=host)
            for host in ("127.0.0.2", "127.0.0.3"))
    dnsmasq.publish("127.0.0.2")
    person = Person(tmp_path)
    person.write("rollouts/hp2.yaml", spec(stable=1), "hp2 at v1")
    controller = Controller(ControllerSettings(
        repo=person.url, model_root=str(root), targets=[], state_dir=tmp_path / "state",
        poll_interval_s=0.5, reconcile_interval_s=0.25, reconcile_deadline_s=30,
        targets_dns=[f"{NAME}:{port},{rest_port}"], dns_server=dnsmasq.server,
    ))
    provider = controller.driver.provider
    assert isinstance(provider, ScrapeProvider)
    url = {s: f"http://{s.host}:{rest_port}/monitoring/prometheus/metrics" for s in (a, b)}

    def serves_canary(server: ServerProcess) -> bool:
        split = split_of(server)
        return (label_version(server, "stable") == 1 and label_version(server, "canary") == 2
                and split is not None and split.canary_weight_bp == 5000)

    def targets() -> list[str]:
        return list(controller.status()["models"]["hp2"]["targets"])

    controller.start()
    try:
        person.write("rollouts/hp2.yaml",
                     spec(stable=1, canary=2, canary_block=canary_block(hold="1h")),
                     "canary hp2 v2")
        assert wait_for(lambda: serves_canary(a), 60, 0.2), controller.status()
        assert label_version(b, "stable") is None  # not in DNS: not a target
        assert targets() == [f"{NAME}/127.0.0.2"]
        assert wait_for(lambda: provider.urls == (url[a],), 10, 0.1), provider.urls

        # A replica joins: it gets the config, labels and split, then counts.
        dnsmasq.publish("127.0.0.2", "127.0.0.3")
        assert wait_for(lambda: serves_canary(b), 60, 0.2), controller.status()
        assert wait_for(lambda: provider.urls == (url[a], url[b]), 10, 0.1), provider.urls
        assert targets() == [f"{NAME}/127.0.0.2", f"{NAME}/127.0.0.3"]

        # A replica leaves: out of the fleet and the analysis; not a failure.
        dnsmasq.publish("127.0.0.3")
        assert wait_for(lambda: targets() == [f"{NAME}/127.0.0.3"], 30, 0.2)
        assert wait_for(lambda: provider.urls == (url[b],), 10, 0.1), provider.urls
        rollout = controller.status()["models"]["hp2"]["rollout"]
        assert rollout is not None and rollout["phase"] != "fail", rollout
        assert not wait_for(
            lambda: any(s.startswith("rollouts: revert") for s in person.remote_log()), 3, 0.3
        )
        assert serves_canary(b)
    finally:
        controller.stop()
