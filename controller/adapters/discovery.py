"""Serving targets discovered in DNS: the A and AAAA records of a name (in Kubernetes, a
headless Service of the serving StatefulSet), resolved on every reconcile.

`--targets-dns NAME:PORT[,METRICS_PORT]` makes every address of NAME a target at PORT
(its metrics at http://ADDRESS:METRICS_PORT/monitoring/prometheus/metrics). A name
that cannot be resolved right now (timeout, SERVFAIL) keeps its last known addresses:
a DNS outage must not look like the whole fleet scaling to zero. A name that
resolves to nothing (NXDOMAIN, no records) is an empty fleet for that name.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.resolver

from controller.decide.fleet import TargetAddress

log = logging.getLogger(__name__)

__all__ = ["DnsDiscovery", "DnsName", "parse_dns_server", "parse_dns_target"]


@dataclass(frozen=True)
class DnsName:
    host: str
    port: int
    metrics_port: int | None = None

    @property
    def text(self) -> str:
        return f"{self.host}:{self.port}" + (f",{self.metrics_port}" if self.metrics_port else "")


def _port(text: str, what: str, where: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{where}: {what} {text!r} is not a port (1-65535)")
    return int(text)


def parse_dns_target(text: str) -> DnsName:
    """`NAME:PORT[,METRICS_PORT]`, e.g. model-server.model-rollouts.svc:8500,8501."""
    where = f"--targets-dns {text!r}"
    address, _, metrics = text.partition(",")
    host, colon, port = address.rpartition(":")
    if not colon or not host or any(c.isspace() for c in host):
        raise ValueError(f"{where}: expected NAME:PORT[,METRICS_PORT]")
    return DnsName(host.rstrip("."), _port(port, "port", where),
                   _port(metrics, "metrics port", where) if metrics else None)


def parse_dns_server(text: str) -> tuple[str, int]:
    """`IP[:PORT]` (IPv6 as `[IP]:PORT`) of the DNS server to ask; port 53 by default."""
    where = f"--dns-server {text!r}"
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{where}: expected IP[:PORT] of a DNS server") from None
    return host, _port(port, "port", where)


class DnsDiscovery:
    """Resolves each name's A and AAAA records into targets, one per address."""

    def __init__(
        self, names: Sequence[DnsName], server: tuple[str, int] | None = None,
        *, timeout_s: float = 2.0,
    ) -> None:
        self.names = list(names)
        # configure=False: with an explicit server, /etc/resolv.conf is not read at all.
        self._resolver = dns.resolver.Resolver(configure=server is None)
        if server is not None:
            self._resolver.nameservers = [server[0]]
            self._resolver.port = server[1]
        self._resolver.lifetime = timeout_s
        self._resolver.cache = None  # every reconcile sees the records as they are now
        self._last: dict[DnsName, list[TargetAddress]] = {}

    def resolve(self) -> list[TargetAddress]:
        targets: list[TargetAddress] = []
        for name in self.names:
            try:
                found = self._addresses(name.host)
            except dns.exception.DNSException as err:
                log.warning("resolving %s failed (%s); keeping its %d known target(s)",
                            name.host, err, len(self._last.get(name, [])))
                targets.extend(self._last.get(name, []))
                continue
            current = [_target(name, address) for address in sorted(found, key=_sort_key)]
            self._last[name] = current
            targets.extend(current)
        return targets

    def _addresses(self, host: str) -> set[str]:
        found: set[str] = set()
        for kind in ("A", "AAAA"):
            try:
                answer = self._resolver.resolve(host, kind, search=False)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            found.update(record.to_text() for record in answer)
        return found


def _sort_key(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    return ip.version, int(ip)


def _target(name: DnsName, address: str) -> TargetAddress:
    host = f"[{address}]" if ":" in address else address
    metrics = f"http://{host}:{name.metrics_port}" if name.metrics_port else ""
    return TargetAddress(f"{name.host}/{address}", f"{host}:{name.port}", metrics)
