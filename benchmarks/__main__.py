"""`python -m benchmarks [--quick] [NAMES...]`: run the benchmarks, refresh RESULTS.md.

Runs every `benchmarks/bench_<name>.py` (or the NAMES given, e.g. `predict
swaps`) one after another, each in its own process so one benchmark's servers
and TensorFlow state never colour the next one's figures. Each leaves
`results/<name>.md` and `.json`; a module that only prints (bench_validate)
has its output saved as its markdown. Then the generated part of
`benchmarks/RESULTS.md` (between the two markers) is rebuilt from every
`results/*.md`, with a summary of this run; the hand-written part (what was
changed and why) is kept. `make bench` runs this.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import RESULTS_DIR, machine_info, machine_line

HERE = Path(__file__).resolve().parent
RESULTS_MD = HERE / "RESULTS.md"
BEGIN = "<!-- generated: python -m benchmarks rewrites from here -->"
END = "<!-- generated: end -->"
# Cheap first, so a quick look at the output comes early.
ORDER = ("validate", "controller", "scale", "predict", "shadow", "swaps", "isolation",
         "memory", "gitops")
TIMEOUT_S = 3600
# TensorFlow's C++ start-up chatter, kept out of saved output.
_NOISE = re.compile(r"^(?:[IWE]\d{4} |WARNING: All log messages|To enable the following)")


@dataclass(frozen=True)
class Outcome:
    name: str
    returncode: int
    seconds: float
    wrote_results: bool

    @property
    def status(self) -> str:
        if self.returncode == 0:
            return "goals met"
        if self.wrote_results:
            return "ran; a goal was missed"
        return f"failed (exit {self.returncode})"


def discover(directory: Path = HERE) -> list[str]:
    """Benchmark names (bench_<name>.py) in the preferred order, then any others."""
    found = sorted(p.stem.removeprefix("bench_") for p in directory.glob("bench_*.py"))
    return [n for n in ORDER if n in found] + [n for n in found if n not in ORDER]


def accepts_quick(module_path: Path) -> bool:
    """True when the module's own argument parser has --quick."""
    return '"--quick"' in module_path.read_text()


def result_files(name: str, directory: Path = RESULTS_DIR) -> list[Path]:
    """Where a benchmark may leave its markdown: <name>.md or bench_<name>.md."""
    return [directory / f"{name}.md", directory / f"bench_{name}.md"]


def latest_result(name: str, directory: Path = RESULTS_DIR) -> Path | None:
    found = [p for p in result_files(name, directory) if p.exists()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def clean_output(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not _NOISE.match(line)).strip()


def splice(document: str, generated: str) -> str:
    """`document` with the text between BEGIN and END replaced (appended if absent)."""
    block = f"{BEGIN}\n\n{generated.strip()}\n\n{END}"
    if BEGIN in document and END in document:
        head, _, rest = document.partition(BEGIN)
        _, _, tail = rest.partition(END)
        return head + block + tail
    return document.rstrip() + "\n\n" + block + "\n"


def summary_table(outcomes: Sequence[Outcome]) -> str:
    lines = ["| benchmark | result | seconds |", "|---|---|---:|"]
    lines += [f"| {o.name} | {o.status} | {o.seconds:.0f} |" for o in outcomes]
    return "\n".join(lines)


def generated_section(outcomes: Sequence[Outcome], names: Sequence[str], quick: bool,
                      date: str) -> str:
    parts = [
        "## Latest figures",
        "",
        f"Last run: {machine_line(machine_info(), date)}"
        + (" (`--quick`: shorter windows, smaller models)." if quick else "."),
        "",
    ]
    if outcomes:
        parts += [summary_table(outcomes), ""]
    for name in names:
        path = latest_result(name)
        if path is not None:
            # Each result file starts at "##"; nest it one level under this section.
            text = re.sub(r"^(#+) ", r"#\1 ", path.read_text().strip(), flags=re.M)
            parts += [text, ""]
    return "\n".join(parts)


def run_one(name: str, quick: bool) -> Outcome:
    module = HERE / f"bench_{name}.py"
    command = [sys.executable, "-m", f"benchmarks.bench_{name}"]
    if quick and accepts_quick(module):
        command.append("--quick")
    markdown = RESULTS_DIR / f"{name}.md"
    previous = latest_result(name)
    before = previous.stat().st_mtime if previous is not None else 0.0
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    print(f"== {name}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env,
                              cwd=HERE.parent, timeout=TIMEOUT_S)
        returncode, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        returncode, out, err = -1, str(exc.stdout or ""), f"timed out after {TIMEOUT_S} s"
    seconds = time.perf_counter() - start
    latest = latest_result(name)
    wrote = latest is not None and latest.stat().st_mtime > before
    output = clean_output(out)
    if not wrote and returncode in (0, 1) and output.startswith("|"):
        # A module that only prints its table: keep that table as its result.
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        markdown.write_text(f"## {name}\n\n{output}\n")
        wrote = True
    print(output, flush=True)
    if returncode not in (0, 1) or not wrote:
        print(clean_output(err)[-3000:], file=sys.stderr, flush=True)
    return Outcome(name, returncode, seconds, wrote)


def main(argv: list[str] | None = None) -> int:
    available = discover()
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (while iterating)")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default all): {', '.join(available)}")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in available]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    names = args.names or available
    date = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    outcomes = [run_one(name, args.quick) for name in names]
    document = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmark results\n"
    RESULTS_MD.write_text(splice(document, generated_section(outcomes, available, args.quick,
                                                             date)))
    print(f"\n{summary_table(outcomes)}\n\nupdated {RESULTS_MD}")
    return 1 if any(not o.wrote_results for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
