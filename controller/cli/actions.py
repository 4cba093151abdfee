"""`rollouts promote | abort | retry | pause | resume MODEL`: an action as a commit.

Run in a checkout of the specs repo (or with `--repo URL`, in a temporary clone):
the model's spec is edited with its comments kept, committed with trailers saying
what, by whom and why (`--reason`), and with `--push` pushed to the branch checked
out, or with `--branch NAME` pushed to a new branch for a pull request.
`--dry-run` prints the diff and the message and writes nothing.

Exit codes: 0 done (or the dry run printed), 1 the action makes no sense for the
spec as it stands (the message says why), 2 a usage, file or git error.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
from pathlib import Path
from typing import Any

from controller.adapters.checkout import Checkout, CheckoutError
from controller.decide.actions import ACTIONS, ActionRefused, Edit, plan_action
from controller.decide.trailers import auto_reverted_versions
from controller.spec.load import LoadedSpec, load_specs

_HELP = {
    "promote": "make the canary stable now (a manual gate, or skip the remaining steps)",
    "abort": "take the canary out of traffic and back to stable (not a failed analysis)",
    "retry": "propose again a canary version the controller reverted (canary.retry: true), "
             "or restart a held failure's analysis (onFailure: pause; canary.attempt + 1)",
    "pause": "hold the canary at its step and weight: no step, no verdict (canary.paused)",
    "resume": "let a paused canary go on from where its hold stopped",
}


def add_parsers(subparsers: Any) -> None:
    for action in ACTIONS:
        parser = subparsers.add_parser(
            action, help=_HELP[action],
            description=f"{_HELP[action].capitalize()}: edit the spec, commit, and "
                        "optionally push. Exit 0 done, 1 refused, 2 usage or git error.")
        parser.add_argument("model", metavar="MODEL", help="the model's name (spec.model.name)")
        parser.add_argument("--reason", default="", help="why, for the commit's trailers")
        parser.add_argument("--specs-dir", default="rollouts",
                            help="the folder of specs in the repo (default rollouts)")
        parser.add_argument("--repo", default=None, metavar="URL",
                            help="act on a fresh clone of this repo instead of the checkout "
                                 "here (needs --push, --branch or --dry-run)")
        parser.add_argument("--base", default="main",
                            help="with --repo: the branch to clone and push to (default main)")
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--push", action="store_true",
                           help="push the commit to the checked-out branch's remote")
        where.add_argument("--branch", default=None, metavar="NAME",
                           help="commit on a new branch NAME and push it (for a pull request)")
        parser.add_argument("--dry-run", action="store_true",
                            help="print the diff and the commit message; write nothing")
        parser.set_defaults(handler=cmd_action, action=action)


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    print(f"rollouts {args.action}: {message}", file=sys.stderr)
    return code


def _document(checkout: Checkout, specs_dir: str, model: str) -> LoadedSpec:
    folder = checkout.root / specs_dir
    if not folder.is_dir():
        raise FileNotFoundError(f"no {specs_dir}/ folder in {checkout.root}")
    result = load_specs([folder])
    found = [d for d in result.documents if d.spec.spec.model.name == model]
    if not found:
        broken = sorted({p.path for p in result.problems})
        hint = f" (invalid spec files, not read: {', '.join(broken)})" if broken else ""
        named = [d.spec.spec.model.name for d in result.documents
                 if d.spec.metadata.name == model]
        models = sorted(d.spec.spec.model.name for d in result.documents)
        if named:
            hint += (f"; {model!r} is the metadata.name of the spec of model {named[0]!r}: "
                     "MODEL is spec.model.name")
        elif models:
            hint += f"; the models there: {', '.join(models)}"
        raise LookupError(f"no spec for model {model!r} under {folder}{hint}")
    if len(found) > 1:
        raise LookupError(f"model {model!r} has {len(found)} specs: "
                          + ", ".join(d.path for d in found))
    return found[0]


def _diff(path: Path, root: Path, before: str, after: str) -> str:
    name = str(path.relative_to(root))
    return "".join(difflib.unified_diff(before.splitlines(keepends=True),
                                        after.splitlines(keepends=True),
                                        f"a/{name}", f"b/{name}"))


def cmd_action(args: argparse.Namespace) -> int:
    if args.repo and not (args.push or args.branch or args.dry_run):
        return _fail(args, "--repo works on a temporary clone: add --push, --branch NAME "
                           "or --dry-run, or nothing would be kept", 2)
    with tempfile.TemporaryDirectory(prefix="rollouts-action-") as scratch:
        try:
            checkout = (Checkout.clone(args.repo, Path(scratch) / "repo", args.base)
                        if args.repo else Checkout.find(Path.cwd()))
            return _act(args, checkout)
        except CheckoutError as err:
            return _fail(args, str(err), 2)
        except (OSError, LookupError) as err:
            return _fail(args, str(err), 2)


def _act(args: argparse.Namespace, checkout: Checkout) -> int:
    branch = checkout.branch()
    if (args.push or args.branch) and not args.repo and not args.dry_run:
        # Decide on the spec as the remote has it: a stale checkout would act on a
        # canary that is gone or changed there, and its push would be rejected anyway.
        behind = checkout.behind("origin", branch)
        if behind:
            return _fail(args, f"{branch} is {behind} commit(s) behind origin/{branch}, "
                               "whose spec may differ: run `git pull`, then this again", 2)
    document = _document(checkout, args.specs_dir, args.model)
    path = Path(document.path).resolve()
    before = path.read_text(encoding="utf-8")
    canary = document.spec.spec.canary
    if args.action == "retry" and checkout.is_shallow():
        return _fail(args, "this clone is shallow, so git log cannot say whether the "
                           "controller reverted this version: run `git fetch --unshallow` "
                           "first", 2)
    try:
        edit: Edit = plan_action(
            args.action, before, args.model, by=checkout.identity(), reason=args.reason,
            reverted=auto_reverted_versions(checkout.messages()) if args.action == "retry"
            else None,
            retry_set=bool(canary and canary.retry),
            paused_set=bool(canary and canary.paused),
            holds_failures=bool(canary and canary.analysis.on_failure == "pause"),
        )
    except ActionRefused as err:
        return _fail(args, str(err), 1)
    if args.dry_run:
        print(_diff(path, checkout.root.resolve(), before, edit.text), end="")
        print("\n" + edit.message)
        return 0
    if args.branch:
        checkout.new_branch(args.branch)
    path.write_text(edit.text, encoding="utf-8")
    sha = checkout.commit(path, edit.message)
    subject = edit.message.splitlines()[0]
    if args.branch:
        try:
            checkout.push("origin", f"HEAD:refs/heads/{args.branch}")
        finally:
            # The person's checkout stays on the branch they were on: the action is
            # proposed on its own branch, and a later `--push` must not land there.
            checkout.switch(branch)
        where = (f"pushed to new branch {args.branch}: open a pull request from it "
                 f"(this checkout stays on {branch})")
    elif args.push:
        target = args.base if args.repo else branch
        try:
            checkout.push("origin", f"HEAD:{target}")
        except CheckoutError as err:
            if args.repo:
                raise
            return _fail(args, f"{subject}: commit {sha[:12]} is in this checkout but not "
                               f"on origin/{target}: {err}. Push it yourself once that is "
                               "fixed (`git pull --rebase` first if the remote moved on), "
                               "or drop it with `git reset --hard HEAD~1`", 2)
        where = f"pushed to {target}"
    else:
        where = "not pushed (add --push, or push it yourself)"
    print(f"rollouts {args.action}: {subject}\n  commit {sha[:12]}, {where}")
    return 0
