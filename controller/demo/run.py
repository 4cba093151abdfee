"""The demo's orchestration: real server, real controller, real git, four canaries' worth.

1. Workspace, models and processes: export v1..v4 (a subprocess), start the
   bundled server (`python -m serving`, free loopback ports, empty config) and
   the controller in this process, pointed at the workspace's bare remote.
2. A person pushes a canary of v2; the controller analyses it under traffic
   (error rate, p99, and its answers against v1's by shadow scoring) and
   pushes the promotion commit; the server's `stable` label moves to 2.
3. A person pushes a canary of v3 (faulty); the controller takes it out of
   traffic and pushes the revert commit (trailer Rollouts-Reverted-Version: 3).
4. A person pushes a dark launch of v4 (fast, OK and wrong): weight 0, shadow
   scored; its answers differ from v2's, so the controller reverts it during
   that weight-0 step (Rollouts-Reverted-Version: 4) and no user request is
   ever answered by v4 (the demo fails if one was).
5. A person rolls v2 back with `git revert` of the promotion; the canary block
   that revert restores is held out of traffic (the controller recognises a
   revert of its own promotion), and the server's `stable` label returns to 1.

Every wait polls a condition against a deadline and fails the demo with a
message naming what did not happen. Whatever happens (success, failure,
Ctrl-C, SIGTERM), `Demo.close` stops traffic, controller and server, and the
workspace is removed unless `--keep`.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from controller.demo.processes import (
    MODEL,
    ServerProcess,
    child_env,
    controller_logs_to,
    free_port,
    signals_as_interrupt,
    uninterruptible,
)
from controller.demo.traffic import TrafficGenerator
from controller.demo.view import (
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    DemoState,
    LiveView,
    PlainView,
    View,
    merge_intervals,
)
from controller.demo.workspace import FAST, NORMAL, Timings, Workspace, WorkspaceError, spec_text

POLL_S = 0.25
KEEP_MAX_S = 3600.0  # --keep in a terminal: serve until Ctrl-C, at most an hour

log = logging.getLogger(__name__)


class StageFailed(Exception):
    """A stage did not reach its expected state in time; the message says what."""


@dataclass(frozen=True)
class DemoOptions:
    fast: bool = False
    keep: bool = False
    live: bool = True
    # Where the temporary workspace is created (default: the system temp dir).
    parent: Path | None = None
    # --keep in a terminal waits for Ctrl-C; tests and pipes never do.
    wait_on_keep: bool = False


@dataclass
class Deadlines:
    """Seconds each stage may take before the demo gives up on it."""

    ready: float = 120.0
    promote: float = 120.0
    revert: float = 90.0
    dark_revert: float = 90.0
    rollback: float = 60.0


STAGES = (
    "export models v1, v2 (healthy), v3 (faulty) and v4 (wrong answers) with TensorFlow",
    "start the model server and the controller on 127.0.0.1",
    "v1 is stable and serves all traffic",
    "push canary v2 -> the controller analyses it and commits the promotion",
    "push canary v3 (faulty) -> the controller pulls it from traffic and commits a revert",
    "dark-launch v4 (fast, OK, wrong) at weight 0 -> its answers differ, reverted unseen",
    "a person reverts the v2 promotion -> v1 is stable again",
)


@dataclass
class Milestones:
    """The commits and timings the demo observed; the summary and tests read them."""

    canary_v2: str = ""
    promotion: str = ""
    canary_v3: str = ""
    revert: str = ""
    canary_v4: str = ""
    dark_revert: str = ""
    rollback: str = ""
    durations: dict[str, float] = field(default_factory=dict)


class Demo:
    def __init__(self, options: DemoOptions, view: View) -> None:
        self.options = options
        self.timings: Timings = FAST if options.fast else NORMAL
        self.deadlines = Deadlines()
        self.view = view
        self.started = time.monotonic()
        self.state = DemoState(MODEL, [(s, PENDING) for s in STAGES])
        self.milestones = Milestones()
        self.workspace: Workspace | None = None
        self.server: ServerProcess | None = None
        self.controller: Any = None
        self.status_server: Any = None
        self.status_url = ""
        self.traffic: TrafficGenerator | None = None
        self._cleanup = contextlib.ExitStack()

    # -- the stages --------------------------------------------------------
    def run(self) -> None:
        workspace = self.workspace = Workspace.create(MODEL, self.options.parent)
        self._cleanup.enter_context(controller_logs_to(workspace.logs / "controller.log"))
        with self._stage(0):
            self.server = ServerProcess(workspace)
            with open(workspace.logs / "export.log", "wb") as export_log:
                exporter = subprocess.Popen(
                    [sys.executable, "-m", "controller.demo.models", str(workspace.model_base)],
                    stdout=export_log, stderr=subprocess.STDOUT, env=child_env(),
                )
                try:
                    self.wait("the model export", lambda: exporter.poll() is not None, 180)
                finally:
                    if exporter.poll() is None:
                        exporter.kill()
                        exporter.wait(timeout=10)
            if exporter.returncode != 0:
                log_text = (workspace.logs / "export.log").read_text(errors="replace")
                raise StageFailed(f"exporting the models failed:\n{log_text[-2000:]}")
        with self._stage(1):
            self.wait("the model server to answer", self.server.answers, self.deadlines.ready)
            workspace.commit_spec(spec_text(MODEL, 1, None, self.timings), f"{MODEL}: serve v1")
            self._start_controller()
        with self._stage(2):
            self.wait("stable = v1 on the server", lambda: self._labels() == (1, None),
                      self.deadlines.ready)
            self.traffic = TrafficGenerator(self.server.rest_url, MODEL).start()
            # A little steady-state traffic first, so stable has a baseline.
            self.wait("traffic to v1", self._served_since("1", 0, 20), 30)
        with self._stage(3):
            self.milestones.canary_v2 = workspace.commit_spec(
                spec_text(MODEL, 1, 2, self.timings), f"{MODEL}: canary v2"
            )
            self.milestones.promotion = self.wait_commit(
                f"rollouts: promote {MODEL} to 2", self.deadlines.promote
            )
            self.wait("stable = v2 and no canary on the server",
                      lambda: self._labels() == (2, None), self.deadlines.ready)
        with self._stage(4):
            self.milestones.canary_v3 = workspace.commit_spec(
                spec_text(MODEL, 2, 3, self.timings), f"{MODEL}: canary v3"
            )
            self.milestones.revert = self.wait_commit(
                f"rollouts: revert {MODEL} canary 3", self.deadlines.revert
            )
            self.wait("no canary and stable = v2 on the server",
                      lambda: self._labels() == (2, None), self.deadlines.ready)
        with self._stage(5):
            self.milestones.canary_v4 = workspace.commit_spec(
                spec_text(MODEL, 2, 4, self.timings, dark_launch=True),
                f"{MODEL}: dark launch v4",
            )
            self.milestones.dark_revert = self.wait_commit(
                f"rollouts: revert {MODEL} canary 4", self.deadlines.dark_revert
            )
            self.wait("no canary and stable = v2 on the server",
                      lambda: self._labels() == (2, None), self.deadlines.ready)
            self.check_dark_launch()
        with self._stage(6):
            # The revert brings the promotion's canary block back; the controller
            # recognises a revert of its own promotion and holds that canary out
            # of traffic, so this is a rollback to v1, not a new canary of v2.
            self.milestones.rollback = workspace.revert(self.milestones.promotion)
            self.wait("stable = v1 again on the server", lambda: self._labels() == (1, None),
                      self.deadlines.rollback)
            self.wait("traffic served by v1 again", self._served_since("1", self._served("1"), 20),
                      30)
        if self.traffic is not None:
            self.traffic.stop()
            self.refresh()  # the final counts, for the summary
        self.check_history()

    def _start_controller(self) -> None:
        from controller.decide.fleet import TargetAddress
        from controller.runtime.runner import Controller, ControllerSettings

        assert self.workspace is not None and self.server is not None
        listen = f"127.0.0.1:{free_port()}"
        self.controller = Controller(
            ControllerSettings(
                repo=str(self.workspace.remote),
                model_root=str(self.workspace.model_root),
                targets=[TargetAddress("serving-0", self.server.grpc_address,
                                       self.server.rest_url)],
                state_dir=self.workspace.state_dir,
                poll_interval_s=self.timings.poll_s,
                reconcile_interval_s=self.timings.reconcile_s,
                reconcile_deadline_s=60,
                listen=listen,
            )
        )
        # The controller's own HTTP surface: status, webhook and the dashboard.
        status_server = self.controller.http_server()
        assert status_server is not None
        self.status_server = status_server
        self.status_server.start()
        self.status_url = f"http://{listen}"
        self.controller.start()

    # -- observing -----------------------------------------------------------
    def _labels(self) -> tuple[int | None, int | None]:
        assert self.server is not None
        return self.server.label_version("stable"), self.server.label_version("canary")

    def _served(self, version: str) -> int:
        if self.traffic is None:
            return 0
        stats = self.traffic.snapshot().versions.get(version)
        return stats.requests if stats else 0

    def _served_since(self, version: str, baseline: int, more: int) -> Callable[[], bool]:
        """A predicate: `version` served `more` requests beyond `baseline`."""
        return lambda: self._served(version) >= baseline + more

    def refresh(self) -> None:
        state = self.state
        state.elapsed_s = time.monotonic() - self.started
        if self.controller is not None:
            status = self.controller.status()
            model = (status.get("models") or {}).get(MODEL) or {}
            rollout = model.get("rollout") or {}
            state.stable, state.canary = model.get("stable"), model.get("canary")
            weight = model.get("splitWeightBp")
            state.weight_pct = None if weight is None else weight / 100
            state.phase = str(rollout.get("phase") or "")
            state.message = str(rollout.get("message") or "")
            state.intervals = merge_intervals(state.intervals, status, MODEL)
        if self.server is not None and self.controller is not None:
            state.served_stable, state.served_canary = self._labels()
        if self.traffic is not None:
            state.traffic = self.traffic.snapshot()
        if self.workspace is not None:
            with contextlib.suppress(WorkspaceError):
                state.git_log = self.workspace.log()
        self.view.update(state)

    def wait(self, what: str, predicate: Callable[[], bool], timeout_s: float) -> None:
        """Poll `predicate` (refreshing the view) until it holds; StageFailed after timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.refresh()
            if predicate():
                return
            if self.server is not None and not self.server.alive():
                raise StageFailed(
                    f"the model server exited (code {self.server.proc.returncode}) while "
                    f"waiting for {what}:\n{self.server.tail()}"
                )
            if time.monotonic() >= deadline:
                raise StageFailed(f"timed out after {timeout_s:g}s waiting for {what}"
                                  + self._diagnosis())
            time.sleep(POLL_S)

    def wait_commit(self, prefix: str, timeout_s: float) -> str:
        """Wait for a commit whose subject starts with `prefix` on main; its sha."""
        assert self.workspace is not None
        found: list[str] = []

        def present() -> bool:
            sha = self.workspace.find_subject(prefix) if self.workspace else None
            if sha:
                found.append(sha)
            return bool(sha)

        self.wait(f"the commit {prefix!r}", present, timeout_s)
        return found[-1]

    def _diagnosis(self) -> str:
        parts = []
        if self.controller is not None:
            status = self.controller.status()
            model = (status.get("models") or {}).get(MODEL) or {}
            rollout = model.get("rollout") or {}
            parts.append(
                f"controller: stable={model.get('stable')} canary={model.get('canary')} "
                f"phase={rollout.get('phase')} {rollout.get('message', '')}".rstrip()
            )
            problems = (status.get("specErrors") or []) + [
                status.get("gitError") or ""] + (status.get("reconcileErrors") or []) + (
                model.get("errors") or [])
            parts.extend(f"  {p}" for p in problems if p)
        if self.server is not None:
            stable, canary = self._labels()
            parts.append(f"server: stable={stable} canary={canary}")
        if self.state.traffic is not None:
            t = self.state.traffic
            parts.append(f"traffic: {t.sent} sent, {t.ok} ok, statuses {t.statuses}")
        if self.workspace is not None:
            parts += [f"  {line}" for line in _problems(self.workspace.logs / "controller.log")]
            parts.append(f"logs: {self.workspace.logs}")
        return "\n" + "\n".join(parts)

    @contextlib.contextmanager
    def _stage(self, index: int) -> Iterator[None]:
        description = STAGES[index]
        self.state.stages[index] = (description, RUNNING)
        began = time.monotonic()
        try:
            yield
        except BaseException:
            self.state.stages[index] = (description, FAILED)
            with contextlib.suppress(Exception):
                self.refresh()
            raise
        self.milestones.durations[description] = time.monotonic() - began
        self.state.stages[index] = (description, DONE)
        self.refresh()

    def check_dark_launch(self) -> None:
        """v4 was judged at weight 0 only, on shadow-scored requests, and no user
        request was answered by it (the client's count)."""
        if self._served("4"):
            raise StageFailed(f"{self._served('4')} user requests were answered by v4 during "
                              "its dark launch")
        judged = [row for row in self.state.intervals if row.version == 4]
        if not judged or any(row.weight_pct != 0 for row in judged):
            raise StageFailed("v4 was not judged at weight 0 only: "
                              + ", ".join(f"{row.weight_pct:g}%" for row in judged))

    # -- the end ---------------------------------------------------------------
    def check_history(self) -> None:
        """The git history must tell the story: each commit with its trailers."""
        assert self.workspace is not None
        expectations = (
            (self.milestones.promotion, "Rollouts-Promoted-Version: 2"),
            (self.milestones.revert, "Rollouts-Reverted-Version: 3"),
            (self.milestones.revert, f"This reverts commit {self.milestones.canary_v3}"),
            (self.milestones.dark_revert, "Rollouts-Reverted-Version: 4"),
            (self.milestones.dark_revert, f"This reverts commit {self.milestones.canary_v4}"),
            (self.milestones.dark_revert, "fail at 0%"),
        )
        for sha, needle in expectations:
            if needle not in self.workspace.message(sha):
                raise StageFailed(f"commit {sha[:12]} lacks {needle!r}")
        subjects = [subject for _, _, subject in self.workspace.log(50)]
        if f'Revert "rollouts: promote {MODEL} to 2"' not in subjects:
            raise StageFailed("the person's revert of the promotion is not on main")

    def summary(self) -> list[str]:
        m = self.milestones
        lines = ["", "Summary"]
        for description, seconds in m.durations.items():
            lines.append(f"  {seconds:5.1f}s  {description}")
        lines.append(f"  total {time.monotonic() - self.started:.0f}s")
        if self.state.traffic is not None:
            t = self.state.traffic
            served = ", ".join(f"v{v}: {s.requests}" for v, s in t.versions.items())
            lines.append(f"  traffic: {t.sent} requests, {t.errors} errors; served {served}")
        failed = [row for row in self.state.intervals if row.outcome == "fail"]
        passed = [row for row in self.state.intervals if row.outcome == "pass"]
        lines.append(f"  analysis: {len(passed)} interval(s) passed, {len(failed)} failed")
        dark = [row for row in self.state.intervals if row.version == 4]
        if dark:
            compared = sum(row.canary.compared for row in dark)
            lines.append(f"  dark launch v4: {self._served('4')} user requests answered by v4, "
                         f"{compared:.0f} requests shadow-scored on it")
        lines.append(f"  promotion commit {m.promotion[:12]}, revert commits {m.revert[:12]} "
                     f"(v3) and {m.dark_revert[:12]} (v4), person's rollback {m.rollback[:12]}")
        return lines

    def explore_hint(self) -> list[str]:
        assert self.workspace is not None
        ws = self.workspace
        lines = ["", f"Workspace kept at {ws.root}", "Explore it:",
                 f"  git -C {ws.clone} log --notes=rollouts",
                 f"  git -C {ws.clone} show --stat HEAD~1"]
        if self.server is not None and self.server.alive():
            lines += [
                f"  rollouts status --controller {self.status_url}",
                f"  open {self.status_url}/ (the dashboard)",
                f"  curl {self.server.rest_url}/v1/models/{MODEL}",
                f"  curl -d '{{\"instances\": [1.0]}}' -H 'x-user-id: me' "
                f"{self.server.rest_url}/v1/models/{MODEL}:predict",
                f"  curl {self.server.rest_url}/monitoring/prometheus/metrics",
            ]
        lines.append(f"  logs: {ws.logs}")
        return lines

    def close(self) -> None:
        """Stop everything this demo started, in reverse order; never raises."""
        steps: list[Callable[[], None]] = []
        if self.traffic is not None:
            steps.append(self.traffic.stop)
        if self.controller is not None:
            steps.append(self.controller.stop)
        if self.status_server is not None:
            steps.append(self.status_server.stop)
        if self.server is not None:
            steps.append(self.server.stop)
        with uninterruptible():
            for step in steps:
                try:
                    step()
                except Exception as err:  # noqa: BLE001 (cleanup goes on whatever failed)
                    log.warning("cleanup step %s failed: %s", step, err)
        self._cleanup.close()
        if self.workspace is not None and not self.options.keep:
            self.workspace.remove()


def _problems(log_path: Path, limit: int = 3) -> list[str]:
    """The last few WARNING/ERROR records of a log file (first line of each)."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if " ERROR " in line or " WARNING " in line][-limit:]


def _make_view(options: DemoOptions, out: TextIO) -> View:
    if options.live and out.isatty():
        from rich.console import Console

        return LiveView(Console(file=out))
    return PlainView(out)


def run_demo(options: DemoOptions, out: TextIO | None = None) -> int:
    """Run the whole demo; 0 when every stage happened, 1 when one did not, 130 on Ctrl-C."""
    out = out or sys.stdout
    view = _make_view(options, out)
    demo = Demo(options, view)
    with signals_as_interrupt():
        try:
            code = _lifecycle(demo, view, out)
            if options.keep and demo.workspace is not None:
                for line in demo.explore_hint():
                    out.write(line + "\n")
                if code == 0 and options.wait_on_keep:
                    _serve_until_interrupted(demo, out)
        except KeyboardInterrupt:
            view.stop()
            out.write("\nrollouts demo interrupted; cleaning up\n")
            code = 130
        finally:
            view.stop()
            demo.close()
            if options.keep and demo.workspace is not None:
                out.write(f"\nProcesses stopped; workspace left at {demo.workspace.root}\n")
    out.flush()
    return code


def _lifecycle(demo: Demo, view: View, out: TextIO) -> int:
    """The stages, then the summary and the notes log; 0 or 1 (Ctrl-C propagates)."""
    view.start()
    try:
        demo.run()
    except (StageFailed, WorkspaceError) as err:
        view.stop()
        out.write(f"\nrollouts demo FAILED: {err}\n")
        return 1
    view.stop()
    for line in demo.summary():
        out.write(line + "\n")
    assert demo.workspace is not None
    try:
        notes = demo.workspace.notes_log()
    except WorkspaceError as err:
        out.write(f"\nrollouts demo: reading the workspace failed: {err}\n")
        return 1
    out.write("\n$ git log --notes=rollouts\n" + notes + "\n")
    return 0


def _serve_until_interrupted(demo: Demo, out: TextIO) -> None:
    """--keep in a terminal: leave server and controller up for exploring until Ctrl-C
    (the expected way out, so not an error), the server exits, or an hour passes."""
    out.write("\nServer and controller keep running; press Ctrl-C to stop them.\n")
    out.flush()
    deadline = time.monotonic() + KEEP_MAX_S
    try:
        while time.monotonic() < deadline and demo.server is not None and demo.server.alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        out.write("\nStopping.\n")
