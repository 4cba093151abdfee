"""What the controller runs with: `ControllerSettings`, plain values.

Built by `controller.cli.settings` from flags and the config file (or directly by
tests and the demo) and read by `controller.runtime.runner`, which wires the
adapters from it. Secrets (tokens, the client key) are kept out of its repr.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from controller.decide.fleet import TargetAddress
from controller.runtime.notify import NotificationTarget

__all__ = ["ControllerSettings"]


@dataclass
class ControllerSettings:
    repo: str
    model_root: str
    targets: Sequence[TargetAddress]
    state_dir: Path
    branch: str = "main"
    specs_dir: str = "rollouts"
    poll_interval_s: float = 10.0
    reconcile_interval_s: float = 5.0
    reconcile_deadline_s: float = 60.0
    listen: str = ""
    webhook_secret: bytes = b""
    # Empty: scrape every target's metrics endpoint directly.
    prometheus_url: str = ""
    # How the controller authenticates to its targets (empty: plaintext, no token).
    target_token: str = field(default="", repr=False)
    target_root_ca: bytes = b""
    target_client_cert: bytes = b""
    target_client_key: bytes = field(default=b"", repr=False)
    # Targets discovered in DNS ("NAME:PORT[,METRICS_PORT]", resolved every reconcile)
    # and the DNS server to ask ("IP[:PORT]"; empty: the system's resolver).
    targets_dns: Sequence[str] = ()
    dns_server: str = ""
    # The dashboard on `listen`: its token (empty: open, loopback only), the link
    # template for commits (`{sha}`), and the acting `rollouts` commands to offer.
    dashboard_token: str = field(default="", repr=False)
    commit_url: str = ""
    acting_commands: tuple[str, ...] = ()
    # Where to tell people what happened (the config file's `notifications`).
    notifications: tuple[NotificationTarget, ...] = ()
    # Who the verdict commits are by (author and committer), and git's own signing:
    # an SSH key file (format "ssh") or an OpenPGP key id ("openpgp"); empty: unsigned.
    git_author: tuple[str, str] = ("rollouts-controller", "rollouts@localhost")
    git_signing_key: str = ""
    git_signing_format: str = "ssh"
    # "push": verdicts go onto the followed branch; "branch": each onto
    # rollouts/<model>/<verdict>-<version> for a bot or person to merge.
    write_back: str = "push"
    # Canaries from pull requests (`--pull-requests`): the remote refs of their heads,
    # e.g. "+refs/pull/*/head"; empty: only the followed branch's canaries run.
    pull_requests: str = ""
