"""`rollouts run | status | plan`: the controller's subcommands.

Settings come from flags, or from a controller config file (YAML, same names in
camelCase) with flags taking precedence (`controller.cli.settings` reads them).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import urllib.error
import urllib.request
from typing import Any

from controller.adapters.redact import redact
from controller.cli import logs
from controller.cli.settings import DEFAULT_LISTEN, load_settings
from controller.decide.verdict_text import WRITE_BACK_MODES
from controller.spec.durations import parse_duration


def add_parsers(subparsers: Any) -> None:
    run = subparsers.add_parser(
        "run",
        help="run the controller: watch git, reconcile the serving targets",
        description="Watch a git repo of rollout specs and make every serving target match it.",
    )
    _add_common(run)
    run.add_argument("--poll-interval", default=None, help="git poll interval (default 10s)")
    run.add_argument("--reconcile-interval", default=None, help="drift check interval (default 5s)")
    run.add_argument(
        "--listen",
        default=None,
        help=f"status/webhook HTTP address (default {DEFAULT_LISTEN}; 'off' disables)",
    )
    run.add_argument(
        "--webhook-secret-file", default=None, help="file with the webhook HMAC secret"
    )
    run.add_argument(
        "--dashboard-token-file",
        default=None,
        help="file with the dashboard's token (required when --listen is not loopback)",
    )
    run.add_argument(
        "--commit-url",
        default=None,
        help="link commits on the dashboard: a URL template with {sha}",
    )
    run.add_argument(
        "--prometheus-url",
        default=None,
        help="judge canaries with PromQL against this Prometheus server "
        "(default: scrape each target's metrics URL directly)",
    )
    run.add_argument(
        "--reconcile-deadline",
        default=None,
        help="how long one reconcile pass waits for versions to load (default 60s)",
    )
    run.add_argument("--once", action="store_true", help="one sync and reconcile pass, then exit")
    run.add_argument(
        "--git-author", default=None, metavar="'NAME <EMAIL>'",
        help="author and committer of the verdict commits "
        "(default 'rollouts-controller <rollouts@localhost>')",
    )
    run.add_argument(
        "--git-signing-key", default=None, metavar="KEY",
        help="sign verdict commits with git's own signing: an SSH key file, "
        "or an OpenPGP key id with --git-signing-format openpgp",
    )
    run.add_argument(
        "--git-signing-format", default=None, choices=("ssh", "openpgp"),
        help="what --git-signing-key is (default ssh)",
    )
    run.add_argument(
        "--write-back", default=None, choices=WRITE_BACK_MODES,
        help="push: verdicts onto the followed branch (default); branch: each onto "
        "rollouts/<model>/<promote|revert>-<version> for a bot or person to merge",
    )
    run.add_argument(
        "--pull-requests", default=None, metavar="REFSPEC",
        help="run canaries from pull requests before merge: the remote refs of their heads "
        "with '*' for the number, e.g. +refs/pull/*/head (GitHub) or "
        "refs/merge-requests/*/head (GitLab); a pass is ready to merge, merging promotes",
    )
    run.set_defaults(handler=cmd_run)

    plan = subparsers.add_parser(
        "plan",
        help="show what a reconcile would change on each target (exit 2 when changes pending)",
    )
    _add_common(plan)
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.set_defaults(handler=cmd_plan)

    status = subparsers.add_parser("status", help="show a running controller's state")
    status.add_argument(
        "--controller",
        default=f"http://{DEFAULT_LISTEN}",
        help=f"the controller's HTTP address (default http://{DEFAULT_LISTEN})",
    )
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    status.add_argument("--watch", action="store_true",
                        help="keep the view on screen, redrawn when the status changes "
                             "(Ctrl-C ends it)")
    status.add_argument("--interval", default="1s",
                        help="with --watch: how often to read the status (default 1s)")
    status.set_defaults(handler=cmd_status)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="controller config file (YAML)")
    parser.add_argument("--repo", default=None, help="git URL or path of the rollout specs repo")
    parser.add_argument("--branch", default=None, help="branch to follow (default main)")
    parser.add_argument(
        "--specs-dir", default=None, help="folder of specs inside the repo (default rollouts)"
    )
    parser.add_argument(
        "--model-root",
        default=None,
        help="directory that spec basePaths are relative to, as the servers see it",
    )
    parser.add_argument(
        "--target",
        action="append",
        default=None,
        metavar="[NAME=]HOST:PORT[,METRICS_URL]",
        help="a serving target (repeatable): gRPC address and optional metrics URL",
    )
    parser.add_argument(
        "--state-dir", default=None, help="work directory for the controller's clone"
    )
    parser.add_argument(
        "--targets-dns",
        action="append",
        default=None,
        metavar="NAME:PORT[,METRICS_PORT]",
        help="targets discovered in DNS (repeatable): every A/AAAA record of NAME (e.g. a "
        "headless Service) is a target at PORT, resolved on every reconcile",
    )
    parser.add_argument(
        "--dns-server", default=None, metavar="IP[:PORT]",
        help="the DNS server --targets-dns asks (default: the system's resolver)",
    )
    parser.add_argument(
        "--target-token-file", default=None,
        help="file with the targets' admin bearer token (their --admin_token_file)",
    )
    parser.add_argument(
        "--target-ca-file", default=None, help="PEM CA to verify the targets' TLS certificates"
    )
    parser.add_argument(
        "--target-cert-file", default=None, help="PEM client certificate for mutual TLS"
    )
    parser.add_argument("--target-key-file", default=None, help="PEM key of --target-cert-file")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--log-format", choices=logs.FORMATS, default="text",
        help="text (default) or json: one object per line with time, level, model, target, "
        "commit, event, message",
    )


def cmd_run(args: argparse.Namespace) -> int:
    from controller.runtime.runner import Controller

    logs.setup(args.verbose, args.log_format)
    try:
        settings = load_settings(args)
    except (ValueError, OSError) as err:
        print(f"rollouts run: {redact(str(err))}", file=sys.stderr)
        return 2
    controller = Controller(settings)
    if args.once:
        try:
            ok = controller.run_once()
        finally:
            controller.stop()
        print(json.dumps(controller.status(), indent=2))
        return 0 if ok else 1
    controller.serve_forever()
    return 0


# `rollouts plan` exit codes: a CI drift check must never get a false green.
PLAN_IN_SYNC = 0
PLAN_CHANGES = 2
PLAN_BLOCKED = 3  # a target could not be observed, a version failed, or a canary is held


def plan_exit_code(result: Any, held: dict[str, Any]) -> int:
    """3 when the plan is incomplete or stuck, else 2 with changes pending, else 0."""
    if result.unreachable or result.failed or held:
        return PLAN_BLOCKED
    if result.actions or result.pending:
        return PLAN_CHANGES
    return PLAN_IN_SYNC


def cmd_plan(args: argparse.Namespace) -> int:
    from controller.decide.plan import ReloadConfig, action_text, plan
    from controller.runtime.runner import Controller

    # The report is the output; only warnings go to the log.
    logs.setup(args.verbose, args.log_format, level=logging.WARNING)
    try:
        settings = load_settings(args)
    except (ValueError, OSError) as err:
        print(f"rollouts plan: {redact(str(err))}", file=sys.stderr)
        return 2
    controller = Controller(settings)
    try:
        controller.sync_git()
        snapshot = controller.state.snapshot
        if snapshot is None:
            for line in controller.state.spec_errors or [controller.state.git_error]:
                print(line, file=sys.stderr)
            return 1
        controller.refresh_targets()
        observed = controller.reconciler.observe(snapshot.desired)
        preview = controller.driver.drive_preview(snapshot, observed)
        desired, _ = controller.with_previous(snapshot, preview.desired)
        result = plan(desired, observed)
    finally:
        controller.stop()
    code = plan_exit_code(result, preview.held)
    if args.json:
        document = _plan_json(desired.commit, result, preview.held)
        print(json.dumps(document | {"exit_code": code}, indent=2))
        return code
    print(f"commit {desired.commit[:12]}")
    for action in result.actions:
        detail = "; ".join(action.reasons) if isinstance(action, ReloadConfig) else ""
        print(f"  ~ {action.target}: {action_text(action)}" + (f" ({detail})" if detail else ""))
    for model, version in result.pending:
        print(f"  … waiting for {model} version {version} to become AVAILABLE")
    for finding in result.findings:
        where = f"{finding.target} {finding.model}".strip()
        print(f"  ! {where}: {finding.message}")
    for model, version in result.failed:
        print(f"  ✗ {model} version {version} failed to load: nothing to wait for")
    for name, status in sorted(preview.held.items()):
        print(f"  ✗ {name}: canary {status.version} {status.phase}: {status.message}")
    print("  " + _plan_verdict(code, result, preview.held))
    return code


def _plan_verdict(code: int, result: Any, held: dict[str, Any]) -> str:
    if code == PLAN_IN_SYNC:
        return "in sync: no changes"
    if code == PLAN_CHANGES:
        return f"changes pending: {len(result.actions)} action(s), {len(result.pending)} load(s)"
    reasons = []
    if result.unreachable:
        reasons.append(f"{len(result.unreachable)} target(s) could not be observed "
                       f"({', '.join(result.unreachable)})")
    if result.failed:
        reasons.append(f"{len(result.failed)} version(s) failed to load")
    if held:
        reasons.append(f"{len(held)} canary(ies) held back ({', '.join(sorted(held))})")
    return "not in sync: " + "; ".join(reasons)


def _plan_json(commit: str, result: Any, held: dict[str, Any]) -> dict[str, Any]:
    from controller.decide.plan import action_text

    return {
        "commit": commit,
        "in_sync": result.in_sync and not held,
        "unobserved": list(result.unreachable),
        "failed": [{"model": m, "version": v} for m, v in result.failed],
        "held": [
            {"model": name, "version": s.version, "phase": s.phase, "message": s.message}
            for name, s in sorted(held.items())
        ],
        "actions": [{"target": a.target, "action": action_text(a)} for a in result.actions],
        "pending": [{"model": m, "version": v} for m, v in result.pending],
        "findings": [
            {"target": f.target, "model": f.model, "message": f.message} for f in result.findings
        ],
    }


def _read_status(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        document: dict[str, Any] = json.load(reply)
        return document


def cmd_status(args: argparse.Namespace) -> int:
    url = args.controller.rstrip("/") + "/status"
    if args.watch:
        if args.json:
            print("rollouts status: --watch shows the view; use --json without it",
                  file=sys.stderr)
            return 2
        try:
            interval_s = parse_duration(args.interval)
        except ValueError as err:
            print(f"rollouts status: --interval: {err}", file=sys.stderr)
            return 2
        return watch_status(url, max(interval_s, 0.05))
    try:
        document = _read_status(url)
    except (urllib.error.URLError, OSError, ValueError) as err:
        print(f"rollouts status: cannot read {url}: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    from controller.cli.status_view import render_status

    render_status(document)
    return 0


def watch_status(url: str, interval_s: float) -> int:
    """Redraw the view whenever the status document changes, until Ctrl-C (exit 0).

    On a terminal the view stays in place (rich Live); into a pipe each new view is
    printed once, after a rule with the time. A controller that stops answering is
    shown as such, and the watch goes on until it answers again.
    """
    import time

    from rich.console import Console, Group
    from rich.live import Live
    from rich.rule import Rule

    from controller.cli.status_view import status_view

    console = Console()
    last: Any = object()
    live = Live(console=console, auto_refresh=False) if console.is_terminal else None
    try:
        if live is not None:
            live.start()
        while True:
            try:
                current: Any = _read_status(url)
            except (urllib.error.URLError, OSError, ValueError) as err:
                current = f"cannot read {url}: {err}"
            if current != last:
                last = current
                parts = (status_view(current) if isinstance(current, dict)
                         else [f"[red]{current}[/]"])
                stamp = time.strftime("%H:%M:%S")
                if live is not None:
                    live.update(Group(*parts, f"[dim]{stamp}, refreshed every "
                                              f"{interval_s:g}s; Ctrl-C ends[/]"),
                                refresh=True)
                else:
                    console.print(Rule(stamp))
                    for part in parts:
                        console.print(part)
            time.sleep(interval_s)
    except KeyboardInterrupt:
        return 0
    finally:
        if live is not None:
            live.stop()
