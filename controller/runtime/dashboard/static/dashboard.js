// The rollouts dashboard: draws the charts with uPlot and keeps the page live by
// polling the JSON it was rendered from (no reload). Read-only: no request it
// sends changes anything.
(function () {
  "use strict";
  var script = document.currentScript;
  var page = script.getAttribute("data-page");
  var data = JSON.parse(document.getElementById("dashboard-data").textContent);
  var POLL_MS = 2000;
  var charts = {};

  function esc(value) {
    return String(value === null || value === undefined ? "" : value)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  }
  function pct(v) { return v === null || v === undefined ? "" : v + "%"; }

  function poll(url, apply) {
    function tick() {
      fetch(url, {credentials: "same-origin", headers: {"accept": "application/json"}})
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
        .then(apply)
        .catch(function () { /* keep the last view; try again next tick */ })
        .then(function () { setTimeout(tick, POLL_MS); });
    }
    setTimeout(tick, POLL_MS);
  }

  // --- overview --------------------------------------------------------------
  function overviewRows(rows) {
    if (!rows.length) {
      return '<tr><td colspan="8" class="muted">no rollouts in the followed branch</td></tr>';
    }
    return rows.map(function (r) {
      var h = r.health;
      var css = h.up === h.total ? "up" : "down";
      return "<tr><td><a href=\"rollouts/" + esc(r.model) + "\">" + esc(r.model) + "</a></td>" +
        '<td class="phase">' + esc(r.phase) + "</td><td>" + esc(r.stable) + "</td><td>" +
        esc(r.canary) + "</td><td>" + pct(r.servedWeightPct) + "</td><td>" + esc(r.step) +
        '</td><td><span class="' + css + '">' + h.up + "/" + h.total + " up</span></td><td>" +
        esc(r.lastVerdict) + "</td></tr>";
    }).join("");
  }

  // --- one rollout -------------------------------------------------------------
  var CANARY = "#d9480f", STABLE = "#1864ab", LIMIT = "#868e96";

  function line(label, color, dash) {
    return {label: label, stroke: color, width: 2, dash: dash, spanGaps: false};
  }
  function flat(value, n) {
    var out = [];
    for (var i = 0; i < n; i++) { out.push(value); }
    return out;
  }
  function chartSpecs(view) {
    var s = view.series, t = view.thresholds, n = s.at.length;
    var specs = {
      errors: {series: [line("canary", CANARY), line("stable", STABLE)],
               data: [s.canaryErrorRate, s.stableErrorRate], limit: t.errorRate},
      latency: {series: [line("canary", CANARY), line("stable", STABLE)],
                data: [s.canaryP99Ms, s.stableP99Ms], limit: t.p99Ms},
      traffic: {series: [line("canary", CANARY), line("stable", STABLE)],
                data: [s.canaryRps, s.stableRps], limit: null},
      weight: {series: [line("canary weight", CANARY)], data: [s.weightPct], limit: null},
      prediction: {series: [line("differing rate", CANARY)], data: [s.differingRate],
                   limit: t.differingRate}
    };
    Object.keys(specs).forEach(function (key) {
      var spec = specs[key];
      if (spec.limit !== null && spec.limit !== undefined) {
        spec.series.push(line("limit", LIMIT, [6, 4]));
        spec.data.push(flat(spec.limit, n));
      }
    });
    return specs;
  }
  function drawCharts(view) {
    if (!view.series || !window.uPlot) { return; }
    var specs = chartSpecs(view), s = view.series;
    Object.keys(specs).forEach(function (key) {
      var spec = specs[key];
      var holder0 = document.getElementById("chart-" + key);
      if (key === "prediction" && !s.differingRate.some(function (v) { return v !== null; })) {
        if (holder0) {
          holder0.setAttribute("data-series", "0");
          var note = holder0.querySelector(".muted") || document.createElement("p");
          note.className = "muted";
          note.textContent = "no shadow scoring on this canary";
          holder0.appendChild(note);
        }
        return;
      }
      var plotData = [view.series.at].concat(spec.data);
      var holder = document.getElementById("chart-" + key);
      if (!holder) { return; }
      if (charts[key] && charts[key].series.length === spec.series.length + 1) {
        charts[key].setData(plotData);
      } else {
        if (charts[key]) { charts[key].destroy(); }
        charts[key] = new window.uPlot({
          width: Math.max(holder.clientWidth || 460, 320), height: 220,
          series: [{}].concat(spec.series), scales: {x: {time: true}}
        }, plotData, holder);
      }
      // What the browser test reads: how many series and points are drawn.
      holder.setAttribute("data-series", String(spec.series.length));
      holder.setAttribute("data-points", String(view.series.at.length));
    });
  }
  function timelineRows(items) {
    if (!items.length) { return '<tr><td colspan="5" class="muted">no events yet</td></tr>'; }
    return items.map(function (i) {
      var commit = "";
      if (i.commit) {
        var sha = esc(i.commit.slice(0, 12));
        commit = i.commitUrl ? '<a href="' + esc(i.commitUrl) + '">' + sha + "</a>" :
          "<code>" + sha + "</code>";
      }
      return "<tr><td>" + new Date(i.at * 1000).toISOString().slice(11, 19) + "</td><td>" +
        esc(i.kind) + '</td><td class="' + esc(i.outcome) + '">' + esc(i.outcome) +
        "</td><td>" + esc(i.text) + "</td><td>" + commit + "</td></tr>";
    }).join("");
  }
  function applyRollout(view) {
    var summary = document.getElementById("summary");
    summary.innerHTML = '<span class="phase">' + esc(view.phase) + "</span>: stable " +
      esc(view.stable) + ", canary " + esc(view.canary) + ", weight served " +
      pct(view.servedWeightPct) + ", step " + esc(view.step);
    document.getElementById("message").textContent = view.message || "";
    document.getElementById("timeline-rows").innerHTML = timelineRows(view.timeline);
    drawCharts(view);
    document.body.setAttribute("data-updated", String(Date.now()));
  }

  if (page === "overview") {
    poll("api/dashboard/overview", function (doc) {
      document.getElementById("overview-rows").innerHTML = overviewRows(doc.rows);
      document.body.setAttribute("data-updated", String(Date.now()));
    });
  } else if (page === "rollout") {
    drawCharts(data);
    poll("../api/dashboard/rollouts/" + encodeURIComponent(data.model), applyRollout);
  }
})();
