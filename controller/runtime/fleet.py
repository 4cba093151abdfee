"""The target set the controller reconciles: the static `--target`s plus those
discovered in DNS (`--targets-dns`), followed on every reconcile.

A discovered replica is reconciled from the pass it appears in (it gets the full
config, labels and split like any target) but its metrics count for canary analysis
only once a pass has found it in sync; until then a half-configured replica cannot
skew or gap an interval. A replica that leaves DNS leaves the fleet and the analysis
at once: it is not unreachable, so it is neither a failure nor a gap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from controller.adapters.discovery import DnsDiscovery
from controller.decide.fleet import TargetAddress
from controller.runtime.reconcile import Reconciler, ReconcileResult, Target

log = logging.getLogger(__name__)


class UrlProvider(Protocol):
    """A metrics provider whose scrape targets can change (`ScrapeProvider`)."""

    def set_urls(self, urls: Sequence[str]) -> None: ...


class Fleet:
    def __init__(
        self,
        static: Sequence[TargetAddress],
        discovery: DnsDiscovery | None,
        make_client: Callable[[TargetAddress], Target],
        scrape_url: Callable[[str], str],
    ) -> None:
        self.static = list(static)
        self.discovery = discovery
        self._make_client = make_client
        self._scrape_url = scrape_url
        self.addresses: list[TargetAddress] = list(static)
        self._clients: dict[str, Target] = {a.name: make_client(a) for a in static}
        self._counted: set[str] = set()  # discovered targets whose metrics count

    def clients(self) -> list[Target]:
        return [self._clients[a.name] for a in self.addresses]

    def refresh(self, reconciler: Reconciler) -> bool:
        """Resolve the DNS names; True when the target set changed."""
        if self.discovery is None:
            return False
        static_names = {a.name for a in self.static}
        found = [a for a in self.discovery.resolve() if a.name not in static_names]
        wanted = self.static + found
        if [a.name for a in wanted] == [a.name for a in self.addresses]:
            return False
        before = {a.name for a in self.addresses}
        for address in wanted:
            if address.name not in self._clients:
                self._clients[address.name] = self._make_client(address)
                log.info("target %s (%s) joined the fleet", address.name, address.grpc_address)
        for name in before - {a.name for a in wanted}:
            client = self._clients.pop(name)
            self._counted.discard(name)
            close = getattr(client, "close", None)
            if close is not None:
                close()
            log.info("target %s left the fleet (no longer in DNS)", name)
        self.addresses = wanted
        reconciler.set_targets(self.clients())
        return True

    def metrics_urls(self, result: ReconcileResult | None = None) -> list[str]:
        """The metrics URLs that count for analysis after this pass: every static
        target's, and each discovered target's once a pass found it in sync."""
        if result is not None:
            static_names = {a.name for a in self.static}
            for target in result.observed:
                if target.name not in static_names and target.reachable and not any(
                    a.target == target.name for a in result.plan.actions
                ) and not result.plan.pending:
                    self._counted.add(target.name)
        return [self._scrape_url(a.metrics_url) for a in self.addresses
                if a.metrics_url and (a in self.static or a.name in self._counted)]
