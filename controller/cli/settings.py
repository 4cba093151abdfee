"""The controller's settings: flags first, then its config file, then the defaults.

`load_settings` turns the parsed `rollouts run | plan` flags (and `--config`, the
YAML file with the same names in camelCase) into `ControllerSettings`, checking
what can be checked before anything starts: required settings, files read, target
and DNS texts, the pull request refspec, who writes to git and how. The flags
themselves are `controller.cli.controller`'s.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path
from typing import Any

from controller.decide.fleet import TargetAddress
from controller.decide.verdict_text import WRITE_BACK_MODES
from controller.spec.durations import parse_duration

__all__ = ["DEFAULT_LISTEN", "git_write_settings", "load_settings", "parse_author", "parse_target"]

DEFAULT_LISTEN = "127.0.0.1:8686"


def parse_target(text: str) -> TargetAddress:
    name, eq, rest = text.partition("=")
    if not eq:
        name, rest = "", text
    address, _, metrics = rest.partition(",")
    if ":" not in address:
        raise ValueError(f"target {text!r}: expected HOST:PORT")
    return TargetAddress(name or address, address, metrics)


def load_settings(args: argparse.Namespace) -> Any:
    from controller.decide.notices import EVENTS
    from controller.runtime.dashboard.auth import check_listen
    from controller.runtime.dashboard.routes import command_names
    from controller.runtime.notify import NotificationTarget
    from controller.runtime.settings import ControllerSettings
    from controller.spec.controller_config import ControllerConfig, read_controller_config

    config = read_controller_config(args.config) if args.config else ControllerConfig()
    file_values = config.model_dump(by_alias=True, exclude_none=True)

    def pick(flag: str, key: str, default: Any = None) -> Any:
        value = getattr(args, flag, None)
        return value if value is not None else file_values.get(key, default)

    repo = pick("repo", "repo")
    model_root = pick("model_root", "modelRoot")
    targets_raw = args.target or config.target_texts()
    targets_dns = [str(t) for t in (getattr(args, "targets_dns", None)
                                    or file_values.get("targetsDns", []))]
    missing = [
        name
        for name, value in (
            ("--repo", repo),
            ("--model-root", model_root),
            ("--target or --targets-dns", targets_raw or targets_dns),
        )
        if not value
    ]
    if missing:
        raise ValueError("missing required setting(s): " + ", ".join(missing))
    state_dir = pick("state_dir", "stateDir")
    secret = b""
    secret_file = pick("webhook_secret_file", "webhookSecretFile")
    if secret_file:
        secret = Path(secret_file).read_bytes().strip()
    listen = pick("listen", "listen", DEFAULT_LISTEN)

    def read(flag: str, key: str) -> bytes:
        path = pick(flag, key)
        return Path(path).read_bytes() if path else b""

    dashboard_token = read("dashboard_token_file", "dashboardTokenFile").strip().decode(
        "utf-8", errors="replace")
    if listen != "off":
        check_listen(listen, dashboard_token)
    token_bytes = read("target_token_file", "targetTokenFile").strip()
    cert, key = read("target_cert_file", "targetCertFile"), read("target_key_file", "targetKeyFile")
    if bool(cert) != bool(key):
        raise ValueError("--target-cert-file and --target-key-file go together")
    return ControllerSettings(
        repo=str(repo),
        model_root=str(Path(model_root).resolve()),
        targets=[parse_target(t) for t in targets_raw],
        state_dir=Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="rollouts-")),
        branch=pick("branch", "branch", "main"),
        specs_dir=pick("specs_dir", "specsDir", "rollouts"),
        poll_interval_s=parse_duration(str(pick("poll_interval", "pollInterval", "10s"))),
        reconcile_interval_s=parse_duration(
            str(pick("reconcile_interval", "reconcileInterval", "5s"))
        ),
        listen="" if listen == "off" else listen,
        webhook_secret=secret,
        prometheus_url=pick("prometheus_url", "prometheusUrl", "") or "",
        reconcile_deadline_s=parse_duration(
            str(pick("reconcile_deadline", "reconcileDeadline", "60s"))
        ),
        target_token=token_bytes.decode("ascii", errors="replace"),
        target_root_ca=read("target_ca_file", "targetCaFile"),
        target_client_cert=cert,
        target_client_key=key,
        dashboard_token=dashboard_token,
        commit_url=pick("commit_url", "commitUrl", "") or "",
        acting_commands=command_names(_subcommands()),
        targets_dns=_checked_dns_targets(targets_dns),
        dns_server=_checked_dns_server(pick("dns_server", "dnsServer", "") or ""),
        notifications=tuple(
            NotificationTarget(
                url=entry.url, format=entry.format,
                events=frozenset(entry.events) if entry.events is not None else frozenset(EVENTS),
                secret=Path(entry.secret_file).read_bytes().strip() if entry.secret_file else b"",
            )
            for entry in config.notifications
        ),
        pull_requests=_checked_pull_requests(pick("pull_requests", "pullRequests", "") or ""),
        **git_write_settings(pick),
    )


def _checked_dns_targets(texts: list[str]) -> list[str]:
    from controller.adapters.discovery import parse_dns_target

    return [parse_dns_target(t).text for t in texts]


def _checked_pull_requests(text: str) -> str:
    from controller.adapters.pulls import parse_refspec

    if text:
        parse_refspec(text)
    return text


def _checked_dns_server(text: str) -> str:
    from controller.adapters.discovery import parse_dns_server

    if text:
        parse_dns_server(text)
    return text


def _subcommands() -> list[str]:
    """The `rollouts` subcommands this build has (the dashboard offers the acting ones)."""
    from controller.cli.main import build_parser

    for action in build_parser()._actions:  # argparse keeps subcommands as one action
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return []


_AUTHOR = re.compile(r"^\s*(?P<name>[^<>]*?)\s*<(?P<email>[^<>\s]+)>\s*$")


def parse_author(value: Any, where: str) -> tuple[str, str]:
    """`gitAuthor`: {name, email} in a config file, or 'Name <email>' (the flag)."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"name", "email"})
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; expected name, email")
        name, email = value.get("name"), value.get("email")
    else:
        match = _AUTHOR.match(str(value))
        name, email = (match["name"], match["email"]) if match else (None, None)
    if not isinstance(name, str) or not name.strip() or not isinstance(email, str) or (
        not email.strip() or any(c in email for c in "<> \n")
    ):
        raise ValueError(f"{where}: expected {{name, email}} or 'Name <email>', got {value!r}")
    return name.strip(), email.strip()


def git_write_settings(pick: Any) -> dict[str, Any]:
    """The settings of how the controller writes to git: who, signed how, and where."""
    values: dict[str, Any] = {}
    author = pick("git_author", "gitAuthor")
    if author is not None:
        values["git_author"] = parse_author(author, "gitAuthor (--git-author)")
    signing_key = pick("git_signing_key", "gitSigningKey")
    if signing_key:
        values["git_signing_key"] = str(signing_key)
    signing_format = str(pick("git_signing_format", "gitSigningFormat", "ssh"))
    if signing_format not in ("ssh", "openpgp"):
        raise ValueError(
            f"gitSigningFormat (--git-signing-format): {signing_format!r}; expected ssh or openpgp"
        )
    values["git_signing_format"] = signing_format
    if signing_format == "ssh" and signing_key and not Path(str(signing_key)).is_file():
        raise ValueError(f"gitSigningKey (--git-signing-key): no SSH key file {signing_key}")
    write_back = str(pick("write_back", "writeBack", "push"))
    if write_back not in WRITE_BACK_MODES:
        raise ValueError(f"writeBack (--write-back): {write_back!r}; expected push or branch")
    values["write_back"] = write_back
    return values
