"""The running controller: git poll and reconcile jobs, webhook and status endpoint.

`Controller` holds only what git and the targets can rebuild (the commit seen,
the last good desired state, the last observations); killing it loses nothing.
apscheduler runs the jobs with `max_instances=1` and `coalesce=True`, so a job
never overlaps itself and a slow pass never queues a backlog.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

from apscheduler.schedulers.background import BackgroundScheduler

from controller.adapters.discovery import DnsDiscovery, parse_dns_server, parse_dns_target
from controller.adapters.gitrepo import GitRepo
from controller.adapters.gitresults import GitError, PathNotFound, Signing
from controller.adapters.journal import GitNotes
from controller.adapters.metrics import (
    MetricsProvider,
    PrometheusProvider,
    ScrapeProvider,
    metrics_url,
)
from controller.adapters.pulls import PullRequestRefs
from controller.adapters.redact import redact
from controller.adapters.targets import TargetClient
from controller.decide.desired import Snapshot, desired_from_tree
from controller.decide.fleet import DesiredState, TargetAddress
from controller.decide.gates import canary_out_of_traffic
from controller.decide.notices import Notice
from controller.decide.previous import KeptPrevious, keep_previous
from controller.runtime.dashboard.routes import DashboardSettings
from controller.runtime.dashboard.view import RolloutHistory, history_of
from controller.runtime.fleet import Fleet
from controller.runtime.logfields import fields
from controller.runtime.notify import Notifier
from controller.runtime.previous import PreviousVersions
from controller.runtime.pulls import PullRequestCanaries
from controller.runtime.reconcile import Backoff, Reconciler, ReconcileResult
from controller.runtime.rollout import RolloutDriver
from controller.runtime.settings import ControllerSettings as ControllerSettings  # re-export
from controller.runtime.status import ControllerState, StatusDoc, status_document
from controller.runtime.status_server import StatusServer
from controller.runtime.telemetry import CanaryView, ControllerMetrics, StateView, TimedTarget

log = logging.getLogger(__name__)


class _SkippedRunFilter(logging.Filter):
    """Drop apscheduler's "skipped: maximum number of running instances" warning:
    a job that never overlaps itself skipping a tick is the design, not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


logging.getLogger("apscheduler.scheduler").addFilter(_SkippedRunFilter())


class Controller:
    def __init__(
        self,
        settings: ControllerSettings,
        *,
        reconciler: Reconciler | None = None,
        git_repo: GitRepo | None = None,
        provider: MetricsProvider | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.git = git_repo or GitRepo(
            settings.repo,
            settings.state_dir / "repo",
            settings.branch,
            identity=settings.git_author,
            signing=(
                Signing(settings.git_signing_key, settings.git_signing_format)
                if settings.git_signing_key
                else None
            ),
        )
        # A down target is retried at least once per git poll, so a restarted
        # server gets its config back within a poll rather than a long backoff.
        poll = max(settings.poll_interval_s, 0.1)
        self.metrics = ControllerMetrics(self._metrics_view)
        self.fleet = Fleet(
            settings.targets,
            DnsDiscovery([parse_dns_target(t) for t in settings.targets_dns],
                         parse_dns_server(settings.dns_server) if settings.dns_server else None)
            if settings.targets_dns else None,
            lambda address: TimedTarget(target_client(address, settings), self.metrics),
            scrape_url,
        )
        self.reconciler = reconciler or Reconciler(
            self.fleet.clients(), backoff=Backoff(min(1.0, poll), poll),
        )
        self.notes = GitNotes(self.git)
        self.notifier = Notifier(settings.notifications)
        self.pulls = (
            PullRequestCanaries(PullRequestRefs(self.git, settings.pull_requests), self.notes,
                                settings.specs_dir, settings.model_root)
            if settings.pull_requests else None
        )
        self.driver = RolloutDriver(
            self.git, self.notes, provider or default_provider(settings), clock=clock,
            branch_writer=self.git if settings.write_back == "branch" else None,
            notify=self.notifier.send,
            journal_home=self.pulls.journal_home if self.pulls is not None else None,
        )
        self.clock = clock
        # The previous stable kept loaded after a commit moved stable (keepPrevious).
        self.previous = PreviousVersions(self.git, settings.specs_dir)
        self._errors_told: set[str] = set()
        self.state = ControllerState()
        self._histories: dict[str, RolloutHistory] = {}
        self._lock = threading.RLock()
        self._reconciling = threading.Lock()
        self._git_requested = threading.Event()
        self._git_running = threading.Lock()
        # An unreachable remote is retried with backoff, capped at a few polls.
        self._git_backoff = Backoff(poll, max(poll, min(60.0, poll * 8)))
        self._scheduler: BackgroundScheduler | None = None
        self._stop = threading.Event()
        self._findings_logged: set[tuple[str, str, str]] = set()

    # -- jobs ------------------------------------------------------------
    def sync_git(self) -> bool:
        """Fetch; load the specs of a new head. True when the desired state changed."""
        now = time.monotonic()
        if self._git_backoff.waiting("git", now):
            return False  # the remote failed recently: the last good state keeps serving
        try:
            head = self.git.sync()
            # A pull request that opened, moved or closed is news even when the
            # followed branch did not move.
            pulls_moved = self.pulls.refresh() if self.pulls is not None else False
        except GitError as err:
            self._git_backoff.failed("git", now)
            with self._lock:
                self.state.git_error = redact(str(err))
            log.warning("git sync failed: %s", self.state.git_error, extra=fields("git"))
            return False
        self._git_backoff.succeeded("git")
        with self._lock:
            self.state.git_error = ""
            if head == self.state.commit_seen:
                return pulls_moved
            self.state.commit_seen = head
        self._record_fetch_lag(head)
        try:
            items = self.read_specs(head)
        except GitError as err:
            items, problems = [], [redact(str(err))]
            snapshot = None
        else:
            snapshot, problems = desired_from_tree(items, head, self.settings.model_root)
        with self._lock:
            if problems or snapshot is None:
                # Fail closed: the last good state keeps serving.
                self.state.spec_errors = [f"commit {head[:12]}: {p}" for p in problems]
                for line in self.state.spec_errors:
                    log.error("invalid specs, nothing applied: %s", line,
                              extra=fields("specs", commit=head))
                return False
            self.state.spec_errors = []
            self.state.snapshot = snapshot
        log.info(
            "desired state from commit %s: %d model(s)", head[:12], len(snapshot.desired.models),
            extra=fields("specs", commit=head),
        )
        return True

    def read_specs(self, head: str) -> list[tuple[str, str]]:
        """The spec files at `head`; none when git history shows the folder was deleted.

        Removing every spec removes the folder from git's tree: that means "serve
        nothing". A folder that never existed is a configuration error (a mistyped
        --specs-dir), and PathNotFound fails closed.
        """
        folder = self.settings.specs_dir
        try:
            return self.git.read_tree(head, folder)
        except PathNotFound:
            if folder.strip("/") and self.git.log(head, paths=[folder], max_count=1):
                return []
            raise

    def reconcile(self, wait_s: float = 0.0) -> ReconcileResult | None:
        """Drive the canaries one tick, then converge the fleet on the result.

        With `wait_s`, wait that long for a pass already running (it returns
        early once it sees a newer desired state) instead of skipping.
        """
        acquired = (
            self._reconciling.acquire(timeout=wait_s)
            if wait_s > 0
            else self._reconciling.acquire(blocking=False)
        )
        if not acquired:
            return None  # the other job is reconciling right now
        try:
            return self._reconcile()
        finally:
            self._reconciling.release()

    def refresh_targets(self) -> None:
        """Follow the DNS names (`--targets-dns`): the fleet is what they resolve to now."""
        if self.fleet.refresh(self.reconciler):
            self._count_metrics_of(None)

    def _count_metrics_of(self, result: ReconcileResult | None) -> None:
        provider = self.driver.provider
        if self.fleet.discovery is not None and isinstance(provider, ScrapeProvider):
            provider.set_urls(self.fleet.metrics_urls(result))

    def _reconcile(self) -> ReconcileResult | None:
        with self._lock:
            snapshot = self.state.snapshot
        if snapshot is None:
            return None
        self.refresh_targets()
        try:
            view = self.pulls.tick(snapshot, self.clock()) if self.pulls is not None else None
        except GitError as err:
            # Keep what the targets serve: skip the tick rather than drop a canary.
            log.warning("reading pull requests failed: %s", redact(str(err)),
                        extra=fields("git"))
            return None
        driven = view.snapshot if view is not None else snapshot
        drive = self.driver.drive(driven, self.reconciler.observe(driven.desired),
                                  view.running if view is not None else None)
        desired, kept = self.with_previous(snapshot, drive.desired)
        # A kept version is dropped when its window ends, not at the next drift check.
        due = [k.until for k in kept.values()]
        due += [drive.next_due] if drive.next_due is not None else []
        self._schedule_tick(min(due, default=None))
        started = time.monotonic()
        result = self.reconciler.run(
            desired,
            deadline_s=self.settings.reconcile_deadline_s,
            # A person's commit (or a stop) must not wait behind a slow load.
            superseded=lambda: self._stop.is_set() or self.state.snapshot is not snapshot,
        )
        self.metrics.reconciled(result, time.monotonic() - started)
        self._count_metrics_of(result)
        with self._lock:
            self.state.last_result = result
            self.state.rollouts = drive.statuses
            self.state.serving = driven
            self.state.pulls = view.pulls if view is not None else ()
            self.state.previous = kept
            self.state.last_reconcile_at = datetime.now(UTC).isoformat(timespec="seconds")
            if result.in_sync:
                self.state.commit_applied = desired.commit
            commits = {name: self.state.model_commits[name] for name in desired.models
                       if name in self.state.model_commits}
            for name in result.plan.models_in_sync(desired.models):
                commits[name] = desired.commit
            self.state.model_commits = commits
        self._log_new_findings(result, desired.commit)
        self._tell_new_errors(result, desired.commit)
        wrote = False
        for pending in drive.pending:
            if pending.kind == "fail" and not canary_out_of_traffic(
                pending.model, pending.version, result.observed
            ):
                log.warning(
                    "%s: canary %s still in traffic; revert waits", pending.model, pending.version
                )
                continue
            wrote |= self.driver.finish(pending) is not None
        if wrote and self.sync_git():
            # Apply our own promotion or revert at once rather than at the next poll.
            return self._reconcile()
        return result

    def with_previous(
        self, snapshot: Snapshot, desired: DesiredState
    ) -> tuple[DesiredState, dict[str, KeptPrevious]]:
        """`desired` plus the previous stable versions kept loaded now, and those."""
        kept = self.previous.kept(snapshot, self.clock())
        return keep_previous(desired, kept), kept

    def _tell_new_errors(self, result: ReconcileResult, commit: str) -> None:
        """A change that could not be applied is told once, when it first fails."""
        current = set(result.errors)
        for error in sorted(current - self._errors_told):
            self.notifier.send(Notice("failed_to_apply", "", time.time(), commit=commit,
                                      summary=redact(error)))
        self._errors_told = current

    def _record_fetch_lag(self, head: str) -> None:
        """Commit time of a new head -> now: how long a push takes to be seen."""
        try:
            infos = self.git.log(head, max_count=1)
        except GitError:
            return
        if infos:
            self.metrics.git_seen(infos[0].committed_at, time.time())

    def _metrics_view(self) -> StateView:
        with self._lock:
            return StateView(
                model_commits=dict(self.state.model_commits),
                canaries={name: CanaryView(s.phase, s.weight_bp)
                          for name, s in self.state.rollouts.items()},
                verdicts=dict(self.driver.verdicts),
                write_failures=dict(self.driver.write_failures),
            )

    def metrics_text(self) -> bytes:
        """The body of GET /metrics: the controller's own series, Prometheus text."""
        return self.metrics.render()

    def _log_new_findings(self, result: ReconcileResult, commit: str) -> None:
        """A finding is logged when it appears, not again on every tick it persists."""
        current = {(f.target, f.model, f.message) for f in result.findings}
        for target, model, message in sorted(current - self._findings_logged):
            log.warning("%s %s: %s", target, model, message,
                        extra=fields("finding", model=model, target=target, commit=commit))
        self._findings_logged = current

    def _schedule_tick(self, due: float | None) -> None:
        """Run the reconcile job when a canary's next interval or hold ends.

        The fixed reconcile interval is a floor for drift checks; analysis
        timing must not be rounded up to it.
        """
        scheduler = self._scheduler
        if due is None or scheduler is None or self._stop.is_set():
            return
        job = scheduler.get_job("reconcile")
        when = datetime.fromtimestamp(max(due, time.time()) + 0.01, UTC)
        if job is not None and (job.next_run_time is None or when < job.next_run_time):
            scheduler.modify_job("reconcile", next_run_time=when)

    def run_once(self) -> bool:
        """One git sync and one reconcile pass; True when the fleet is in sync."""
        self.sync_git()
        result = self.reconcile()
        return bool(result and result.in_sync and not self.state.spec_errors)

    def trigger(self) -> None:
        """Run the git job now (webhook); if it is running, it runs once more."""
        with self._lock:
            self.state.webhook_deliveries += 1
        self._git_requested.set()
        scheduler = self._scheduler
        if scheduler is not None and not self._stop.is_set():
            scheduler.modify_job("git", next_run_time=datetime.now(UTC))

    def _git_then_reconcile(self) -> None:
        with self._git_running:
            self._git_loop()

    def _git_loop(self) -> None:
        # A trigger that arrives while this job runs would be dropped by the
        # scheduler (max_instances=1); the flag makes this run go round again.
        for _ in range(100):
            self._git_requested.clear()
            if self.sync_git():
                self.reconcile(wait_s=self.settings.reconcile_deadline_s)
            if not self._git_requested.is_set() or self._stop.is_set():
                return

    # -- lifecycle -------------------------------------------------------
    def start(self) -> None:
        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.add_job(
            self._git_then_reconcile,
            "interval",
            seconds=self.settings.poll_interval_s,
            id="git",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
        scheduler.add_job(
            self.reconcile,
            "interval",
            seconds=self.settings.reconcile_interval_s,
            id="reconcile",
            max_instances=1,
            coalesce=True,
        )
        scheduler.start()
        self._scheduler = scheduler

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop the jobs; a pass in progress sees the stop and returns early."""
        self._stop.set()
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            # Not wait=True: apscheduler holds its job-store lock while it waits,
            # and a running job that touches the scheduler would deadlock.
            scheduler.shutdown(wait=False)
            if self._reconciling.acquire(timeout=timeout_s):
                self._reconciling.release()
            if self._git_running.acquire(timeout=timeout_s):
                self._git_running.release()
        self.reconciler.close()
        self.notifier.close()

    def serve_forever(self, *, install_signals: bool = True) -> None:
        server = self.http_server()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._stop.set())
        if server is not None:
            server.start()
        self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            if server is not None:
                server.stop()
            self.stop()

    # -- status ----------------------------------------------------------
    def http_server(self) -> StatusServer | None:
        """The status, webhook and dashboard server on `listen`, or None without one."""
        if not self.settings.listen:
            return None
        dashboard = DashboardSettings(
            token=self.settings.dashboard_token,
            commit_url=self.settings.commit_url,
            available_commands=self.settings.acting_commands,
        )
        return StatusServer(self, self.settings.listen, (self, dashboard))

    def rollout_history(self, model: str) -> RolloutHistory | None:
        """The model's canary journal for the dashboard: the running one, else the last
        one this process saw (a restarted controller rebuilds running ones from notes)."""
        with self._lock:
            status = self.state.rollouts.get(model)
            snapshot = self.state.serving or self.state.snapshot
            plan = snapshot.canary_plan(model) if snapshot else None
            if status is None or plan is None or snapshot is None:
                return self._histories.get(model)
            history = history_of(status, plan, snapshot.criteria(model))
            self._histories[model] = history
            return history

    @property
    def webhook_secret(self) -> bytes:
        return self.settings.webhook_secret

    def status(self) -> StatusDoc:
        with self._lock:
            return status_document(
                self.state,
                repo=self.settings.repo,
                branch=self.settings.branch,
                targets=[t.name for t in self.fleet.addresses],
            )


def target_client(address: TargetAddress, settings: ControllerSettings) -> TargetClient:
    return TargetClient(
        address,
        token=settings.target_token,
        root_ca=settings.target_root_ca,
        client_cert=settings.target_client_cert,
        client_key=settings.target_client_key,
    )


def default_provider(settings: ControllerSettings) -> MetricsProvider:
    if settings.prometheus_url:
        return PrometheusProvider(settings.prometheus_url)
    return ScrapeProvider([scrape_url(t.metrics_url) for t in settings.targets if t.metrics_url])


def scrape_url(given: str) -> str:
    """A target's metrics URL; host:port or a URL without a path gets the default path."""
    with_scheme = given if "://" in given else f"http://{given}"
    if urlsplit(with_scheme).path.strip("/"):
        return with_scheme
    return metrics_url(with_scheme)
