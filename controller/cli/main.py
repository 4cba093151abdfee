"""The `rollouts` command line: one argparse parser, one handler per subcommand.

Owns argument parsing, output formats and exit codes of `validate`, `render`
and `schema`, and the `serve` pass-through to the bundled model server. Each
subcommand sets `handler(args) -> int`; other modules add theirs through an
`add_parsers(subparsers)` function listed in `_EXTENSIONS`. Heavy imports
(protos, the server) happen inside the handlers so `rollouts validate` starts
fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from controller.spec.load import Problem

DEFAULT_SPEC_DIR = "rollouts/"
# Modules that contribute subcommands; a missing one is skipped so the CLI
# keeps working while a module is being written.
_EXTENSIONS = ("controller.cli.controller", "controller.cli.actions", "controller.cli.demo")
_BUILTIN = ("validate", "render", "schema")
DISTRIBUTION = "model-rollouts"
COMPLETION_SHELLS = ("bash", "zsh")

Handler = Callable[[argparse.Namespace], int]


def build_parser(extensions: bool = True) -> argparse.ArgumentParser:
    """The full parser; `extensions=False` leaves out subcommands of other modules."""
    parser = argparse.ArgumentParser(
        prog="rollouts", description="GitOps rollouts for ML models served by TF Serving."
    )
    parser.add_argument("--version", action="version", version=f"rollouts {package_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    validate = commands.add_parser(
        "validate", help="check rollout specs (exit 0 valid, 1 invalid, 2 usage or I/O error)"
    )
    _add_paths(validate)
    validate.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="text: path:line:col lines; github: workflow annotations",
    )
    validate.add_argument(
        "--model-root",
        metavar="DIR",
        help="also check each referenced version dir holds a SavedModel",
    )
    validate.set_defaults(handler=cmd_validate)

    render = commands.add_parser(
        "render", help="print the ModelServerConfig (and split rules) the specs produce"
    )
    _add_paths(render)
    render.add_argument(
        "--model-root",
        metavar="DIR",
        required=True,
        help="directory the specs' basePath values are relative to",
    )
    render.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: ModelServerConfig text proto; json: config, splits, transition policies",
    )
    render.set_defaults(handler=cmd_render)

    schema = commands.add_parser("schema", help="print the JSON Schema of a rollout spec")
    schema.set_defaults(handler=cmd_schema)

    # Parsed by serving.main itself; registered here only for --help listings.
    commands.add_parser(
        "serve",
        help="run the bundled model server (flags as tensorflow_model_server's)",
        add_help=False,
    )

    completion = commands.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description="Print a completion script for every command and option. bash: "
        "`source <(rollouts completion bash)`; zsh: `rollouts completion zsh > "
        "\"${fpath[1]}/_rollouts\"`.",
    )
    completion.add_argument("shell", choices=COMPLETION_SHELLS)
    completion.set_defaults(handler=cmd_completion)

    for module_name in _EXTENSIONS if extensions else ():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        module.add_parsers(commands)
    return parser


def package_version() -> str:
    """The installed distribution's version (pyproject.toml's `version`)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _add_paths(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        default=[DEFAULT_SPEC_DIR],
        help=f"spec files or directories (default {DEFAULT_SPEC_DIR})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    # TensorFlow's C++ info logs (oneDNN, CUDA probing) are noise on a CLI.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["serve"]:
        # Forward verbatim: the server's flags (--port=8500, --model_config_file)
        # are not ours to parse or reorder.
        return cmd_serve(args_list[1:])
    try:
        # Extension modules import TensorFlow's protos (seconds); CI runs
        # `validate` on every push, so the built-in commands skip them.
        builtin = bool(args_list) and args_list[0] in _BUILTIN
        args = build_parser(extensions=not builtin).parse_args(args_list)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    handler: Handler = args.handler
    try:
        code = handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        return closed_stdout()
    return code


def closed_stdout() -> int:
    """The reader went away (`rollouts status --json | head`): stop quietly.

    What is still buffered for stdout can never be written; pointing stdout at
    /dev/null keeps the interpreter's final flush from raising again. 141 is
    what a shell reports for a command killed by SIGPIPE.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


# --- validate ------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from controller.cli.validate import validate

    report = validate(args.paths, args.model_root)
    print_problems(report.problems, args.format, sys.stdout)
    if args.format == "json":
        json.dump(
            {
                "valid": not report.problems,
                "files": report.files,
                "rollouts": len(report.documents),
                "problems": [_problem_json(p) for p in report.problems],
            },
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
    print(summary(report.files, len(report.documents), report.problems), file=sys.stderr)
    return report.exit_code


def print_problems(problems: Sequence[Problem], fmt: str, out: TextIO) -> None:
    """Text and github formats, one line per problem (json is whole-report)."""
    if fmt == "json":
        return
    for problem in problems:
        out.write((github_annotation(problem) if fmt == "github" else str(problem)) + "\n")


def summary(files: int, rollouts: int, problems: Sequence[Problem]) -> str:
    if not problems:
        return f"rollouts validate: {_plural(files, 'file')} valid ({_plural(rollouts, 'rollout')})"
    bad_files = len({problem.path for problem in problems})
    return (
        f"rollouts validate: {_plural(len(problems), 'problem')} in "
        f"{_plural(bad_files, 'file')} ({_plural(files, 'file')} checked)"
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _problem_json(problem: Problem) -> dict[str, Any]:
    return {
        "path": problem.path,
        "line": problem.line,
        "col": problem.col,
        "message": problem.message,
        "kind": problem.kind,
    }


def github_annotation(problem: Problem) -> str:
    """A GitHub Actions `::error` workflow command (escaped as the runner expects)."""
    props = f"file={_escape_property(problem.path)}"
    if problem.line:
        props += f",line={problem.line},col={problem.col}"
    return f"::error {props}::{_escape_data(problem.message)}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


# --- render and schema -------------------------------------------------------------


def cmd_render(args: argparse.Namespace) -> int:
    from controller.spec.load import load_specs

    result = load_specs(args.paths)
    if result.problems:
        print_problems(result.problems, "text", sys.stderr)
        return 2 if any(problem.kind == "io" for problem in result.problems) else 1
    from controller.decide import render

    specs = [document.spec for document in result.documents]
    if args.format == "json":
        json.dump(render.render_json(specs, args.model_root), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render.config_text(render.render_config(specs, args.model_root)))
    return 0


def schema_text() -> str:
    """`rollouts schema` output; schemas/rollout.schema.json holds exactly this."""
    from controller.spec.model import json_schema

    return json.dumps(json_schema(), indent=2) + "\n"


def cmd_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text())
    return 0


# --- completion --------------------------------------------------------------------


def cmd_completion(args: argparse.Namespace) -> int:
    """shtab walks the real parser, so completion never lags behind a new flag."""
    import shtab

    sys.stdout.write(shtab.complete(build_parser(), shell=args.shell))
    return 0


# --- serve -----------------------------------------------------------------------


def cmd_serve(argv: list[str]) -> int:
    try:
        from serving.cli import main as serve_main
    except ImportError as exc:
        print(f"rollouts serve: the model server is not available: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while TensorFlow imports: an ordinary stop
        print("Start-up stopped by SIGINT while loading the server", file=sys.stderr)
        return 128 + signal.SIGINT
    return serve_main(argv)
