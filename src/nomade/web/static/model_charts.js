// The Models page's evaluation charts, drawn as SVG from the JSON the page carries
// (#page-data: {"charts": [...]}, made by nomade/web/model_charts.py). No library.
// Bars: one row per model (baselines hatched, the published model outlined) with reference
// lines (chance). Lines: one path per model with its points, marked operating points and
// reference lines (chance, the diagonal). body[data-charts-drawn] counts what was drawn.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var PALETTE = ["#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#00838f", "#ad1457",
                 "#5d4037", "#827717", "#37474f", "#c62828", "#283593", "#00695c"];

  function el(name, attrs, parent) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(e);
    return e;
  }
  function text(parent, x, y, s, anchor, cls) {
    var t = el("text", { x: x, y: y, "text-anchor": anchor || "start" }, parent);
    if (cls) t.setAttribute("class", cls);
    t.textContent = s;
    return t;
  }
  function fmt(v) { return Math.abs(v) >= 10 ? v.toFixed(0) : (Math.abs(v) >= 1 ? v.toFixed(1) : v.toFixed(2)); }
  function short(s, n) { s = String(s); return s.length > n ? s.slice(0, n - 1) + "\u2026" : s; }
  function finite(v) { return typeof v === "number" && isFinite(v); }
  function ticks(lo, hi, n) {
    var step = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log(step) / Math.LN10)), out = [];
    [1, 2, 2.5, 5, 10].some(function (m) { if (m * mag >= step) { step = m * mag; return true; } return false; });
    for (var v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(Math.round(v / step) * step);
    return out;
  }
  function pageData() {
    var n = document.getElementById("page-data");
    if (!n) return null;
    try { return JSON.parse(n.textContent); } catch (e) { return null; }
  }
  function hatch(svg, id, colour) {
    var p = el("pattern", { id: id, width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" },
               el("defs", {}, svg));
    el("rect", { width: 6, height: 6, fill: "#fff" }, p);
    el("line", { x1: 0, y1: 0, x2: 0, y2: 6, stroke: colour, "stroke-width": 3 }, p);
  }

  function bars(node, c) {
    var rows = c.bars || [], W = 560, L = 150, R = 24, T = 8, rowH = 22, B = 34, H = T + rows.length * rowH + B;
    var vals = rows.map(function (b) { return b.value; }).concat((c.refs || []).map(function (r) { return r.value; }))
      .filter(finite);
    var hi = Math.max.apply(null, vals.concat([0])) * 1.08 || 1;
    var x = function (v) { return L + v / hi * (W - L - R); };
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": c.title || "chart" });
    hatch(svg, "hatch-" + c.id, "#90a4ae");
    ticks(0, hi, 5).forEach(function (v) {
      el("line", { x1: x(v), x2: x(v), y1: T, y2: H - B, "class": "grid" }, svg);
      text(svg, x(v), H - B + 14, fmt(v), "middle");
    });
    rows.forEach(function (b, i) {
      var y = T + i * rowH, w = Math.max(1, x(b.value) - L);
      var r = el("rect", { x: L, y: y + 3, width: w, height: rowH - 6, "class": "bar role-" + b.role,
                           fill: b.role === "baseline" ? "url(#hatch-" + c.id + ")" : (b.role === "published" ? "#1565c0" : "#64b5f6") }, svg);
      r.setAttribute("data-label", b.label);
      text(svg, L - 6, y + rowH - 7, short(b.label, 20), "end");
      text(svg, x(b.value) + 4, y + rowH - 7, fmt(b.value), "start", "value");
    });
    (c.refs || []).forEach(function (r) {
      if (!finite(r.value)) return;
      el("line", { x1: x(r.value), x2: x(r.value), y1: T - 4, y2: H - B, "class": "ref" }, svg);
      var label = r.label || "", fits = x(r.value) + 4 + 6.2 * label.length <= W;   // else left of the line
      text(svg, fits ? x(r.value) + 4 : x(r.value) - 4, H - 4, label, fits ? "start" : "end", "ref-label");
    });
    el("line", { x1: L, x2: L, y1: T, y2: H - B, "class": "axis" }, svg);
    node.appendChild(svg);
    node.setAttribute("data-bars", String(rows.length));
  }

  function extent(series, k, given) {
    if (given) return given;
    var v = [];
    series.forEach(function (s) { (s.points || []).forEach(function (p) { if (finite(p[k])) v.push(p[k]); }); });
    if (!v.length) return [0, 1];
    var lo = Math.min.apply(null, v), hi = Math.max.apply(null, v), pad = (hi - lo) * 0.08 || 0.05;
    return [k === 1 ? Math.max(0, lo - pad) : lo, hi + pad];
  }

  function lines(node, c) {
    var series = c.series || [], W = 580, H = 300, L = 50, R = 170, T = 10, B = 40;
    var xr = extent(series, 0, c.x_range), yr = extent(series, 1, c.y_range);
    if (xr[1] - xr[0] < 1e-9) xr = [xr[0] - 0.5, xr[0] + 0.5];
    if (yr[1] - yr[0] < 1e-9) yr = [yr[0] - 0.05, yr[0] + 0.05];
    var x = function (v) { return L + (v - xr[0]) / (xr[1] - xr[0]) * (W - L - R); };
    var y = function (v) { return T + (1 - (v - yr[0]) / (yr[1] - yr[0])) * (H - T - B); };
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": c.title || "chart" });
    ticks(yr[0], yr[1], 5).forEach(function (v) {
      el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), "class": "grid" }, svg);
      text(svg, L - 4, y(v) + 4, fmt(v), "end");
    });
    if (c.x_ticks) {
      c.x_ticks.forEach(function (t) { text(svg, x(t[0]), H - B + 14, String(t[1]), "middle"); });
    } else {
      ticks(xr[0], xr[1], 5).forEach(function (v) { text(svg, x(v), H - B + 14, fmt(v), "middle"); });
    }
    el("line", { x1: L, x2: L, y1: T, y2: H - B, "class": "axis" }, svg);
    el("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, "class": "axis" }, svg);
    text(svg, (L + W - R) / 2, H - 6, c.x_label || "", "middle", "axis-label");
    var yl = text(svg, 12, (T + H - B) / 2, c.y_label || "", "middle", "axis-label");
    yl.setAttribute("transform", "rotate(-90 12 " + (T + H - B) / 2 + ")");
    (c.refs || []).forEach(function (r) {
      if (r.axis === "diagonal") {
        var a = Math.max(xr[0], yr[0]), b = Math.min(xr[1], yr[1]);
        if (b > a) el("line", { x1: x(a), y1: y(a), x2: x(b), y2: y(b), "class": "ref" }, svg);
      } else if (finite(r.value) && r.value >= yr[0] && r.value <= yr[1]) {
        el("line", { x1: L, x2: W - R, y1: y(r.value), y2: y(r.value), "class": "ref" }, svg);
        text(svg, W - R - 2, y(r.value) - 3, r.label || "", "end", "ref-label");
      }
    });
    var drawn = 0;
    series.forEach(function (s, i) {
      var pts = (s.points || []).filter(function (p) { return finite(p[0]) && finite(p[1]); });
      if (!pts.length) return;
      var colour = s.role === "policy" ? "#20262d" : PALETTE[i % PALETTE.length];
      var g = el("g", { "class": "series role-" + s.role, "data-label": s.label }, svg);
      el("path", { d: pts.map(function (p, k) { return (k ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1); }).join(" "),
                   fill: "none", stroke: colour, "stroke-width": s.role === "published" || s.role === "policy" ? 2.2 : 1.3,
                   "stroke-dasharray": s.role === "baseline" ? "5 3" : "none" }, g);
      pts.forEach(function (p) { el("circle", { cx: x(p[0]), cy: y(p[1]), r: 2.5, fill: colour }, g); });
      (s.marks || []).forEach(function (m) {
        if (!finite(m[0]) || !finite(m[1])) return;
        el("circle", { cx: x(m[0]), cy: y(m[1]), r: 6, fill: "none", stroke: "#c62828", "stroke-width": 2, "class": "mark" }, g);
        text(svg, x(m[0]) + 8, y(m[1]) - 6, String(m[2] || ""), "start", "mark-label");
      });
      var ly = T + 12 + drawn * 16;
      el("line", { x1: W - R + 8, x2: W - R + 26, y1: ly - 4, y2: ly - 4, stroke: colour, "stroke-width": 2,
                   "stroke-dasharray": s.role === "baseline" ? "5 3" : "none" }, svg);
      text(svg, W - R + 30, ly, short(s.label, s.role === "baseline" ? 14 : 24) + (s.role === "baseline" ? " (baseline)" : ""), "start", "legend");
      drawn++;
    });
    node.appendChild(svg);
    node.setAttribute("data-series", String(drawn));
  }

  function draw() {
    var d = pageData(), n = 0;
    ((d && d.charts) || []).forEach(function (c) {
      var box = document.querySelector('[data-chart="' + CSS.escape(String(c.id)) + '"] .plot');
      if (!box) return;
      box.textContent = "";
      (c.kind === "bars" ? bars : lines)(box, c);
      n++;
    });
    document.body.setAttribute("data-charts-drawn", String(n));
  }
  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("nomade:refreshed", draw);
})();
