"""The dashboard in a real browser: headless Chromium against a live controller.

A real server with a canary in progress under real traffic, a real git remote,
the controller's real HTTP surface, and Debian's chromium driven by Playwright.
The charts must render (the DOM after scripts ran has the series), the page must
update itself without a reload, screenshots land in build/ for people to look at,
and without the token the page is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.decide.fleet import TargetAddress
from controller.runtime.runner import Controller, ControllerSettings
from tests.conftest import REPO, ServerProcess, free_port, monitored_flags, wait_for
from tests.gitops import Person, spec
from tests.traffic import Traffic

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# CI installs Debian's chromium and sets this so the browser test never skips there.
REQUIRED = os.environ.get("ROLLOUTS_REQUIRE_CHROMIUM") == "1"
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not REQUIRED,
    reason="chromium absent: apt-get install -y chromium (Debian package)")

TOKEN = "dashboard-test-token-0123456789"
CANARY = (
    "    split: {hashKey: x-user-id}\n"
    "    steps: [{weight: 30, hold: 1h}, {weight: 60, hold: 1h}]\n"
    "    analysis:\n"
    "      interval: 1s\n"
    "      minRequests: 5\n"
    "      checks: {errorRate: {max: 0.05}, latencyP99: {max: 2s}}\n"
)
# What Chromium needs on a closed, root-run machine (see the machine notes).
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync"]


@pytest.fixture
def live(tmp_path: Path, shared_servers: Any, server_pool: Any, make_model: Any,
         ) -> Iterator[dict[str, Any]]:
    root = tmp_path / "models"
    make_model(root / "hp2", 1)
    make_model(root / "hp2", 2)
    server: ServerProcess = shared_servers(monitored_flags(server_pool.workdir), 1)[0]
    person = Person(tmp_path)
    person.write("rollouts/hp2.yaml", spec(stable=1), "hp2 at v1")
    canary_commit = person.write("rollouts/hp2.yaml",
                                 spec(stable=1, canary=2, canary_block=CANARY), "canary hp2 v2")
    port = free_port()
    controller = Controller(ControllerSettings(
        repo=person.url, model_root=str(root),
        targets=[TargetAddress("s0", server.address, server.rest_url)],
        state_dir=tmp_path / "state", poll_interval_s=0.5, reconcile_interval_s=0.25,
        reconcile_deadline_s=30, listen=f"127.0.0.1:{port}", dashboard_token=TOKEN,
        commit_url="https://git.example.test/models/commit/{sha}",
    ))
    http = controller.http_server()
    assert http is not None
    traffic = Traffic([server.rest_url]).start()
    http.start()
    controller.start()
    try:
        yield {"url": f"http://127.0.0.1:{port}", "controller": controller,
               "canary_commit": canary_commit}
    finally:
        controller.stop()
        http.stop()
        traffic.stop()


def intervals(controller: Controller) -> int:
    history = controller.rollout_history("hp2")
    return len(history.intervals) if history is not None else 0


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@needs_chromium
def test_dashboard_renders_charts_live_and_refuses_without_token(live: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    url, controller = live["url"], live["controller"]
    assert wait_for(lambda: intervals(controller) >= 2, 120, 0.2), controller.status()

    # Plain HTTP first: without the token, the pages and their JSON are refused.
    status, body = get(url + "/")
    assert status == 401 and "needs the token" in body
    status, body = get(url + "/api/dashboard/rollouts/hp2")
    assert status == 401 and json.loads(body) == {"error": "dashboard token required"}
    status, body = get(url + "/api/dashboard/rollouts/hp2", token=TOKEN)
    assert status == 200
    data = json.loads(body)
    assert data["canary"] == 2 and data["stable"] == 1 and data["servedWeightPct"] == 30
    assert data["thresholds"]["errorRate"] == 0.05 and data["thresholds"]["p99Ms"] == 2000

    build = REPO / "build"
    build.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            # Signed in with a bearer token: the overview lists the rollout.
            page = browser.new_context(
                extra_http_headers={"Authorization": f"Bearer {TOKEN}"}).new_page()
            response = page.goto(url + "/")
            assert response is not None and response.status == 200
            page.wait_for_selector("#overview-rows a[href='rollouts/hp2']")
            row = page.inner_text("#overview-rows")
            assert "hp2" in row and "30%" in row and "1/1 up" in row
            page.screenshot(path=str(build / "dashboard-overview.png"), full_page=True)

            # The rollout page: uPlot drew each chart with its series and limits.
            page.click("a[href='rollouts/hp2']")
            page.wait_for_selector("#chart-errors canvas")
            for chart, series in (("errors", "3"), ("latency", "3"), ("traffic", "2"),
                                  ("weight", "1")):
                holder = page.locator(f"#chart-{chart}")
                assert holder.get_attribute("data-series") == series, chart
                assert holder.locator("canvas").count() == 1, chart
            # No shadow scoring on this canary: its chart says so instead of drawing nothing.
            assert page.locator("#chart-prediction").get_attribute("data-series") == "0"
            assert "no shadow scoring" in page.inner_text("#chart-prediction")
            legend = page.inner_text("#chart-errors")
            assert "canary" in legend and "stable" in legend and "limit" in legend
            assert "started" in page.inner_text("#timeline-rows")
            link = page.locator(f"a[href$='{live['canary_commit']}']").first
            assert link.get_attribute("href") == (
                "https://git.example.test/models/commit/" + live["canary_commit"])

            # Live: the next intervals arrive without a reload.
            points = int(page.locator("#chart-errors").get_attribute("data-points") or 0)
            page.wait_for_function(
                "n => Number(document.querySelector('#chart-errors')"
                ".getAttribute('data-points')) > n", arg=points, timeout=60_000)
            assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
            page.screenshot(path=str(build / "dashboard-rollout.png"), full_page=True)

            # No token: the browser gets the sign-in page; the token signs it in.
            anonymous = browser.new_context().new_page()
            response = anonymous.goto(url + "/rollouts/hp2")
            assert response is not None and response.status == 401
            assert anonymous.locator("input[name=token]").count() == 1
            assert anonymous.locator("#chart-errors").count() == 0
            anonymous.goto(url + "/login")
            anonymous.fill("input[name=token]", "wrong")
            anonymous.click("button")
            assert "not valid" in anonymous.inner_text("body")
            anonymous.goto(url + "/login")
            anonymous.fill("input[name=token]", TOKEN)
            anonymous.click("button")
            anonymous.wait_for_selector("#overview-rows a[href='rollouts/hp2']")
        finally:
            browser.close()
    assert (build / "dashboard-rollout.png").stat().st_size > 10_000
