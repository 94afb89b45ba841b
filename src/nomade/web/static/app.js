// nomade dashboard: live updates (server-sent events), CSRF-carrying actions, small SVG charts.
// No framework; everything drawn from the JSON block the page carries (#page-data).
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";

  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }
  window.nomadeCsrf = csrf;

  function el(name, attrs, parent) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(e);
    return e;
  }
  function text(parent, x, y, s, anchor) {
    var t = el("text", { x: x, y: y, "text-anchor": anchor || "start" }, parent);
    t.textContent = s;
    return t;
  }
  function pageData() {
    var n = document.getElementById("page-data");
    if (!n) return null;
    try { return JSON.parse(n.textContent); } catch (e) { return null; }
  }
  function sigmoid(x) { return 1 / (1 + Math.exp(-x)); }

  // The factors as a waterfall in log-odds: base, one step per weighted factor, the final risk.
  function drawWaterfall(node, w) {
    if (!node || !w || w.base === null || w.base === undefined) return;
    var steps = (w.steps || []).filter(function (s) { return typeof s.weight === "number"; });
    var rows = [{ label: "base (no factors): " + Math.round(100 * sigmoid(w.base)) + "%", from: 0, to: w.base, cls: "total" }];
    var at = w.base;
    steps.forEach(function (s) { rows.push({ label: s.label, from: at, to: at + s.weight, cls: s.weight >= 0 ? "up" : "down" }); at += s.weight; });
    rows.push({ label: "risk: " + Math.round(100 * w.risk) + "%", from: 0, to: w.final_logit, cls: "total" });
    var vals = [0]; rows.forEach(function (r) { vals.push(r.from, r.to); });
    var lo = Math.min.apply(null, vals), hi = Math.max.apply(null, vals);
    if (hi - lo < 1e-9) hi = lo + 1;
    var W = 520, left = 210, right = 16, rowH = 24, H = rows.length * rowH + 24;
    var x = function (v) { return left + (v - lo) / (hi - lo) * (W - left - right); };
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "risk factors waterfall" });
    el("line", { x1: x(0), x2: x(0), y1: 0, y2: H - 18, "class": "axis" }, svg);
    rows.forEach(function (r, i) {
      var y = i * rowH + 4, a = x(Math.min(r.from, r.to)), b = x(Math.max(r.from, r.to));
      el("rect", { x: a, y: y, width: Math.max(1, b - a), height: rowH - 8, "class": r.cls }, svg);
      text(svg, left - 6, y + rowH - 11, String(r.label).slice(0, 40), "end");
    });
    var zx = x(0);
    text(svg, zx, H - 4, "0 (log-odds)", zx > W - 60 ? "end" : (zx < left + 60 ? "start" : "middle"));
    node.textContent = "";
    node.appendChild(svg);
    node.setAttribute("data-bars", String(rows.length));
  }

  // The recorder's memory series, its limit and the projection's straight line ahead.
  function drawSeries(node, s) {
    if (!node || !s || !s.memory || !s.memory.length) return;
    var pts = s.memory, W = 640, H = 220, L = 72, R = 10, T = 10, B = 24;
    var t0 = pts[0][0], t1 = pts[pts.length - 1][0];
    var proj = s.projection, tEnd = t1;
    if (proj && proj.ttl_s !== null && proj.ttl_s !== undefined) tEnd = t1 + Math.min(proj.ttl_s, (t1 - t0 || 600) * 2);
    var vmax = Math.max.apply(null, pts.map(function (p) { return p[1]; }).concat([s.limit_mb || 0])) * 1.05 || 1;
    var x = function (t) { return L + (t - t0) / ((tEnd - t0) || 1) * (W - L - R); };
    var y = function (v) { return T + (1 - v / vmax) * (H - T - B); };
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "memory over time" });
    el("line", { x1: L, x2: L, y1: T, y2: H - B, "class": "axis" }, svg);
    el("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, "class": "axis" }, svg);
    el("path", { d: pts.map(function (p, i) { return (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1); }).join(" "), "class": "line" }, svg);
    if (s.limit_mb) el("line", { x1: L, x2: W - R, y1: y(s.limit_mb), y2: y(s.limit_mb), "class": "limit" }, svg);
    if (proj && tEnd > t1) {
      var v2 = proj.value + proj.rate * (tEnd - t1) + 0.5 * proj.accel * Math.pow(tEnd - t1, 2);
      el("path", { d: "M" + x(t1) + " " + y(proj.value) + " L" + x(tEnd) + " " + y(Math.min(v2, vmax)), "class": "proj" }, svg);
    }
    text(svg, L - 4, y(vmax / 1.05) + 4, Math.round(vmax / 1.05) + " MiB", "end");
    text(svg, L, H - 6, "start");
    text(svg, W - R, H - 6, tEnd > t1 ? "projected" : "now", "end");
    node.textContent = "";
    node.appendChild(svg);
  }

  function drawCharts() {
    var d = pageData();
    if (!d) return;
    drawWaterfall(document.getElementById("waterfall"), d.waterfall);
    drawSeries(document.getElementById("series"), d.series);
  }

  function postJSON(url, body) {
    return fetch(url, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(body || {}) }).then(function (r) {
        return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || r.status); return j; });
      });
  }

  function wireAlerts() {
    document.querySelectorAll("button.ack, button.silence").forEach(function (b) {
      b.addEventListener("click", function () {
        var id = b.getAttribute("data-alert"), action = b.classList.contains("ack") ? "ack" : "silence";
        b.disabled = true;
        postJSON("/api/alerts/" + encodeURIComponent(id) + "/" + action, action === "silence" ? { duration_s: 3600 } : {})
          .then(refresh, function (e) { b.disabled = false; b.title = String(e.message); });
      });
    });
  }

  // Re-read this page and swap its content in place (the server renders, the page does not).
  var refreshing = false;
  function refresh() {
    if (refreshing || document.body.getAttribute("data-page") === "network") return Promise.resolve();
    refreshing = true;
    return fetch(location.href, { credentials: "same-origin" }).then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("live"), data = doc.getElementById("page-data");
        if (fresh) document.getElementById("live").innerHTML = fresh.innerHTML;
        var old = document.getElementById("page-data");
        if (data && old) old.textContent = data.textContent;
        drawCharts(); wireAlerts(); whilePending();
        document.body.setAttribute("data-refreshed", String(Date.now()));
        document.dispatchEvent(new CustomEvent("nomade:refreshed"));   // page scripts redraw
      }).catch(function () {}).then(function () { refreshing = false; });
  }
  window.nomadeRefresh = refresh;

  // a panel the server is still computing in the background: look again in 5 s
  function whilePending() {
    if (document.querySelector("[data-pending]")) setTimeout(refresh, 5000);
  }

  function live() {
    if (!window.EventSource || !document.getElementById("live-state")) return;
    var src = new EventSource("/events");
    var badge = document.getElementById("live-state");
    src.addEventListener("hello", function () { badge.className = "live on"; });
    src.addEventListener("change", function () {
      document.dispatchEvent(new CustomEvent("nomade:change"));
      refresh();
    });
    src.onerror = function () { badge.className = "live off"; };
  }

  document.addEventListener("DOMContentLoaded", function () { drawCharts(); wireAlerts(); live(); whilePending(); });
})();
