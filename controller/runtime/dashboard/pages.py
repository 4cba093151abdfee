"""The dashboard's HTML, rendered on the server from the view data (pure).

Each page is complete without scripts (tables of the same numbers); `dashboard.js`
then draws the charts with the bundled uPlot and keeps the page live by polling the
JSON the page was rendered from. Every value is HTML-escaped; the page's data rides
along as JSON in a `<script type="application/json">` block, escaped for it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from controller.runtime.dashboard.assets import CSS_URL, JS_URL, UPLOT_CSS_URL, UPLOT_JS_URL

__all__ = ["login_page", "overview_page", "rollout_page"]

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0}
td,th{border-bottom:1px solid #ddd;padding:.3em .8em;text-align:left;vertical-align:top}
th{background:#f4f4f4}
.phase{font-weight:600}
.fail,.down{color:#b00020}.pass,.up{color:#1b7f3b}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:1em}
.chart h3{margin:.2em 0;font-size:14px}
code{background:#f4f4f4;padding:.1em .3em}
.muted{color:#777}
"""


def _json_block(element_id: str, data: Any) -> str:
    # "</" would end the script element early: JSON allows "<\/" for "</".
    text = json.dumps(data, sort_keys=True).replace("</", "<\\/")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def _page(title: str, body: str, data: Any = None, page: str = "") -> str:
    scripts = ""
    if page:
        scripts = (
            _json_block("dashboard-data", data)
            + f'<script src="{UPLOT_JS_URL}"></script>'
            + f'<script src="{JS_URL}" data-page="{escape(page)}"></script>'
        )
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title>"
        f'<link rel="stylesheet" href="{UPLOT_CSS_URL}">'
        f'<link rel="stylesheet" href="{CSS_URL}">'
        f"<style>{_STYLE}</style></head><body>{body}{scripts}</body></html>"
    )


def _text(value: Any) -> str:
    return "" if value is None else escape(str(value))


def _pct(value: Any) -> str:
    return "" if value is None else f"{float(value):g}%"


def _health(health: Mapping[str, Any]) -> str:
    css = "up" if health.get("up") == health.get("total") else "down"
    down = ", ".join(health.get("down", []))
    return (f'<span class="{css}">{health.get("up", 0)}/{health.get("total", 0)} up</span>'
            + (f' <span class="muted">down: {escape(down)}</span>' if down else ""))


def overview_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    """The overview table's body (also what the live update replaces)."""
    if not rows:
        return '<tr><td colspan="8" class="muted">no rollouts in the followed branch</td></tr>'
    out = []
    for row in rows:
        model = escape(str(row["model"]))
        out.append(
            "<tr>"
            f'<td><a href="rollouts/{model}">{model}</a></td>'
            f'<td class="phase">{_text(row["phase"])}</td>'
            f"<td>{_text(row['stable'])}</td><td>{_text(row['canary'])}</td>"
            f"<td>{_pct(row['servedWeightPct'])}</td><td>{_text(row['step'])}</td>"
            f"<td>{_health(row['health'])}</td><td>{_text(row['lastVerdict'])}</td>"
            "</tr>"
        )
    return "".join(out)


def overview_page(rows: Sequence[Mapping[str, Any]], doc: Mapping[str, Any]) -> str:
    sync = "in sync" if doc.get("inSync") else "not in sync"
    body = (
        "<h1>Rollouts</h1>"
        f'<p id="sync">{escape(str(doc.get("branch", "")))} at '
        f'<code>{escape(str(doc.get("commitSeen", ""))[:12])}</code>: {sync}</p>'
        '<table id="overview"><thead><tr><th>model</th><th>phase</th><th>stable</th>'
        "<th>canary</th><th>weight served</th><th>step</th><th>targets</th>"
        f'<th>last verdict</th></tr></thead><tbody id="overview-rows">{overview_rows(rows)}'
        "</tbody></table>"
    )
    return _page("Rollouts", body, {"rows": list(rows)}, page="overview")


_CHARTS = (
    ("errors", "Error rate (canary vs stable)"),
    ("latency", "p99 latency, ms"),
    ("traffic", "Requests per second"),
    ("weight", "Canary weight, %"),
    ("prediction", "Prediction diff (differing rate)"),
)


def _clock(at: float) -> str:
    """A journal time as UTC HH:MM:SS (as the live update writes it)."""
    return time.strftime("%H:%M:%S", time.gmtime(at))


def timeline_rows(items: Sequence[Mapping[str, Any]]) -> str:
    out = []
    for item in items:
        commit = ""
        if item.get("commit"):
            sha = escape(str(item["commit"])[:12])
            url = item.get("commitUrl")
            commit = f'<a href="{escape(str(url))}">{sha}</a>' if url else f"<code>{sha}</code>"
        out.append(
            f"<tr><td>{_clock(float(item.get('at', 0.0)))}</td>"
            f"<td>{_text(item.get('kind'))}</td>"
            f'<td class="{escape(str(item.get("outcome", "")))}">{_text(item.get("outcome"))}</td>'
            f"<td>{_text(item.get('text'))}</td><td>{commit}</td></tr>"
        )
    return "".join(out) or '<tr><td colspan="5" class="muted">no events yet</td></tr>'


def rollout_page(view: Mapping[str, Any]) -> str:
    model = escape(str(view["model"]))
    targets = "".join(
        f'<tr><td>{escape(t["name"])}</td>'
        f'<td class="{"up" if t["reachable"] else "down"}">'
        f'{"up" if t["reachable"] else "down"}</td>'
        f"<td>{_pct(t['servedWeightPct'])}</td><td>{_text(t['error'])}</td></tr>"
        for t in view["targets"]
    )
    commits = "".join(
        f"<li>{escape(c['role'])}: "
        + (f'<a href="{escape(c["url"])}">{escape(c["sha"][:12])}</a>' if c["url"]
           else f"<code>{escape(c['sha'][:12])}</code>")
        + "</li>"
        for c in view["commits"]
    ) or '<li class="muted">none yet</li>'
    commands = "".join(
        f"<tr><td>{escape(c['action'])}</td><td><code>{escape(c['command'])}</code></td></tr>"
        for c in view["commands"]
    ) or '<tr><td class="muted">no canary to act on</td></tr>'
    charts = "".join(
        f'<div class="chart" id="chart-{key}"><h3>{escape(title)}</h3></div>'
        for key, title in _CHARTS
    )
    steps = ", ".join(f"{w:g}%" for w in view["stepsWeightPct"])
    body = (
        '<p><a href="../">all rollouts</a></p>'
        f"<h1>{model}</h1>"
        f'<p id="summary"><span class="phase">{_text(view["phase"])}</span>: stable '
        f"{_text(view['stable'])}, canary {_text(view['canary'])}, weight served "
        f"{_pct(view['servedWeightPct'])}, step {_text(view['step'])}"
        + (f" of steps [{escape(steps)}]" if steps else "")
        + f'</p><p id="message">{_text(view["message"])}</p>'
        f'<div class="charts">{charts}</div>'
        "<h2>Targets</h2><table><thead><tr><th>target</th><th>state</th><th>weight</th>"
        f"<th>error</th></tr></thead><tbody>{targets}</tbody></table>"
        "<h2>Timeline</h2><table><thead><tr><th>at</th><th>event</th><th>outcome</th>"
        f'<th>numbers</th><th>commit</th></tr></thead><tbody id="timeline-rows">'
        f"{timeline_rows(view['timeline'])}</tbody></table>"
        f"<h2>Commits</h2><ul>{commits}</ul>"
        "<h2>Act (every action is a commit)</h2>"
        f"<table>{commands}</table>"
    )
    return _page(f"{view['model']}: rollout", body, view, page="rollout")


def login_page(failed: bool = False) -> str:
    note = '<p class="fail">That token is not valid.</p>' if failed else ""
    body = (
        "<h1>Rollouts dashboard</h1>"
        "<p>This dashboard needs the token from <code>--dashboard-token-file</code>.</p>"
        f'{note}<form method="post" action="login"><input type="password" name="token" '
        'autocomplete="current-password" aria-label="token"> <button>Sign in</button></form>'
    )
    return _page("Sign in: rollouts", body)
