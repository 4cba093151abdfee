"""`rollouts demo`: the whole rollout lifecycle on an embedded default (see docs/demo.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parsers(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run the full lifecycle for real on a temporary workspace (about 2 minutes)",
        description="Export three versions of a small TensorFlow model, start the bundled "
        "server and the controller on 127.0.0.1, and walk a canary that is promoted, one "
        "that is auto-reverted, and a person's git revert, under live traffic.",
    )
    demo.add_argument(
        "--fast", action="store_true", help="short analysis intervals and holds (for CI)"
    )
    demo.add_argument(
        "--keep",
        action="store_true",
        help="keep the workspace and print how to explore it; in a terminal, keep the "
        "server and controller running until Ctrl-C",
    )
    demo.add_argument(
        "--no-live",
        dest="live",
        action="store_false",
        help="plain progress lines instead of the live terminal view",
    )
    demo.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from controller.demo.run import DemoOptions, run_demo

    options = DemoOptions(
        fast=args.fast, keep=args.keep, live=args.live, wait_on_keep=sys.stdin.isatty()
    )
    return run_demo(options, sys.stdout)
