// The job similarity network: three.js, one Points and one LineSegments (one draw call per
// layer), 2D/3D, design axes or PCA, coloured by outcome; click a point to open its job.
// window.nomadeNetwork exposes count, drawCalls and measure(frames) for tests and benchmarks.
import * as THREE from "./vendor/three.module.js";

const box = document.getElementById("net");
const status = document.getElementById("net-status");
const state = { data: null, mode3d: true, layout: "xyz", yaw: 0.6, pitch: 0.35, dist: 3.2, zoom: 1 };
const api = { count: 0, drawCalls: 0, ready: false, webgl: false, measure: null };
window.nomadeNetwork = api;

const COLORS = { success: [0.40, 0.73, 0.42], failed: [0.94, 0.33, 0.31], other: [0.56, 0.64, 0.68] };

let renderer = null, scene, persp, ortho, points, lines, raycaster;
try {
  renderer = new THREE.WebGLRenderer({ antialias: false, powerPreference: "high-performance" });
  renderer.setPixelRatio(1);
  box.appendChild(renderer.domElement);
  scene = new THREE.Scene();
  persp = new THREE.PerspectiveCamera(50, 1, 0.01, 100);
  ortho = new THREE.OrthographicCamera(-1.2, 1.2, 1.2, -1.2, -10, 10);
  raycaster = new THREE.Raycaster();
  raycaster.params.Points.threshold = 0.03;
  api.webgl = true;
} catch (e) {
  renderer = null;
  status.textContent = "WebGL is not available in this browser: the network cannot be drawn.";
}

function colourOf(n) {
  if (n.failed) return COLORS.failed;
  return n.outcome === "success" ? COLORS.success : COLORS.other;
}

// each axis of the chosen layout scaled to [-1, 1] (the exporter's axes are 0..1, PCA unscaled)
function positions(nodes) {
  const pos = new Float32Array(nodes.length * 3), lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
  const raw = nodes.map((n) => ((state.layout === "pca" ? n.pca : n.xyz) || [0, 0, 0]).map((v) => (typeof v === "number" ? v : 0)));
  raw.forEach((p) => { for (let k = 0; k < 3; k++) { lo[k] = Math.min(lo[k], p[k] || 0); hi[k] = Math.max(hi[k], p[k] || 0); } });
  raw.forEach((p, i) => {
    for (let k = 0; k < 3; k++) {
      const span = hi[k] - lo[k];
      pos[3 * i + k] = span > 0 ? (2 * ((p[k] || 0) - lo[k]) / span - 1) : 0;
    }
    if (!state.mode3d) pos[3 * i + 2] = 0;
  });
  return pos;
}

function zoneText(z) {
  const pct = (v) => (typeof v === "number" ? Math.round(100 * v) + "%" : "?");
  return (z.kind || "zone") + ": " + (z.feature || "?") + " in [" + z.low + ", " + z.high + "], failure rate " + pct(z.failure_rate) + " of " + z.n;
}

function build() {
  const d = state.data, nodes = d.nodes || [], edges = d.edges || [];
  api.count = nodes.length;
  box.setAttribute("data-count", String(nodes.length));
  document.getElementById("net-axes").textContent = (d.axes || []).length ? "axes: " + d.axes.join(", ") : "";
  document.getElementById("net-zones").textContent = (d.zones || []).length
    ? "safe and danger zones: " + d.zones.slice(0, 12).map(zoneText).join("; ") : "";
  status.textContent = nodes.length + " jobs, " + edges.length + " links" + (d.source === "requests" ? " (placed by what they requested; behaviour analysis: " + (d.problem || "not installed") + ")" : "");
  if (!renderer) { api.ready = true; return; }
  if (points) { scene.remove(points); points.geometry.dispose(); }
  if (lines) { scene.remove(lines); lines.geometry.dispose(); lines = null; }
  const pos = positions(nodes), col = new Float32Array(nodes.length * 3);
  nodes.forEach((n, i) => col.set(colourOf(n), 3 * i));
  const g = new THREE.BufferGeometry();
  g.setAttribute("position", new THREE.BufferAttribute(pos, 3));
  g.setAttribute("color", new THREE.BufferAttribute(col, 3));
  points = new THREE.Points(g, new THREE.PointsMaterial({ size: 4, sizeAttenuation: false, vertexColors: true }));
  scene.add(points);
  if (edges.length) {
    const lp = new Float32Array(edges.length * 6);
    edges.forEach((e, k) => { lp.set(pos.subarray(3 * e[0], 3 * e[0] + 3), 6 * k); lp.set(pos.subarray(3 * e[1], 3 * e[1] + 3), 6 * k + 3); });
    const lg = new THREE.BufferGeometry();
    lg.setAttribute("position", new THREE.BufferAttribute(lp, 3));
    lines = new THREE.LineSegments(lg, new THREE.LineBasicMaterial({ color: 0x546e7a, transparent: true, opacity: 0.35 }));
    scene.add(lines);
  }
  draw();
  api.ready = true;
}

function camera() {
  if (!state.mode3d) return ortho;
  const d = state.dist / state.zoom;
  persp.position.set(d * Math.cos(state.pitch) * Math.sin(state.yaw), d * Math.sin(state.pitch), d * Math.cos(state.pitch) * Math.cos(state.yaw));
  persp.lookAt(0, 0, 0);
  return persp;
}

function resize() {
  if (!renderer) return;
  const w = box.clientWidth, h = box.clientHeight;
  renderer.setSize(w, h, false);
  renderer.domElement.style.width = "100%"; renderer.domElement.style.height = "100%";
  persp.aspect = w / h; persp.updateProjectionMatrix();
  const a = w / h, s = 1.2 / state.zoom;
  ortho.left = -s * a; ortho.right = s * a; ortho.top = s; ortho.bottom = -s; ortho.updateProjectionMatrix();
}

function draw() {
  if (!renderer) return;
  renderer.render(scene, camera());
  api.drawCalls = renderer.info.render.calls;
  box.setAttribute("data-draw-calls", String(api.drawCalls));
}

// frames rendered back to back, each finished on the GPU (gl.finish): mean ms per frame
api.measure = function (frames) {
  if (!renderer) return null;
  const gl = renderer.getContext(), n = frames || 60, t0 = performance.now();
  for (let i = 0; i < n; i++) { state.yaw += 0.01; renderer.render(scene, camera()); gl.finish(); }
  return (performance.now() - t0) / n;
};

// frames drawn on requestAnimationFrame, the camera turning: resolves to mean ms per frame
// (empty: the same with the layers hidden, the page's own cost per frame)
api.measureRaf = function (frames, empty) {
  return new Promise((resolve) => {
    if (!renderer) { resolve(null); return; }
    const n = frames || 60, shown = [points, lines].filter(Boolean);
    let i = 0, t0 = 0;
    shown.forEach((o) => { o.visible = !empty; });
    const step = (t) => {
      if (i === 0) t0 = t;
      state.yaw += 0.01; draw();
      if (++i > n) { shown.forEach((o) => { o.visible = true; }); resolve((t - t0) / n); } else requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  });
};

function load() {
  const lim = new URLSearchParams(location.search).get("limit");
  return fetch("/api/network" + (lim ? "?limit=" + encodeURIComponent(lim) : ""), { credentials: "same-origin" }).then((r) => r.json()).then((d) => {
    if (d.error) { status.textContent = d.error; return; }
    state.data = d; build();
    if (d.source === "requests" && /being computed/.test(d.problem || "")) setTimeout(load, 5000);
  });
}

function setButtons() {
  document.getElementById("view-3d").classList.toggle("on", state.mode3d);
  document.getElementById("view-2d").classList.toggle("on", !state.mode3d);
  document.getElementById("layout-axes").classList.toggle("on", state.layout === "xyz");
  document.getElementById("layout-pca").classList.toggle("on", state.layout === "pca");
}
[["view-2d", () => { state.mode3d = false; }], ["view-3d", () => { state.mode3d = true; }],
 ["layout-axes", () => { state.layout = "xyz"; }], ["layout-pca", () => { state.layout = "pca"; }]].forEach(([id, f]) => {
  document.getElementById(id).addEventListener("click", () => { f(); setButtons(); if (state.data) build(); });
});

if (renderer) {
  let drag = null, moved = false;
  const cv = renderer.domElement;
  cv.addEventListener("pointerdown", (e) => { drag = [e.clientX, e.clientY]; moved = false; });
  window.addEventListener("pointerup", () => { drag = null; });
  cv.addEventListener("pointermove", (e) => {
    if (!drag || !state.mode3d) return;
    const dx = e.clientX - drag[0], dy = e.clientY - drag[1];
    if (Math.abs(dx) + Math.abs(dy) > 2) moved = true;
    state.yaw -= dx * 0.01; state.pitch = Math.max(-1.4, Math.min(1.4, state.pitch + dy * 0.01));
    drag = [e.clientX, e.clientY]; draw();
  });
  cv.addEventListener("wheel", (e) => { e.preventDefault(); state.zoom *= e.deltaY > 0 ? 0.9 : 1.1; resize(); draw(); }, { passive: false });
  cv.addEventListener("click", (e) => {
    if (moved || !points || !state.data) return;
    const r = cv.getBoundingClientRect();
    const m = new THREE.Vector2(((e.clientX - r.left) / r.width) * 2 - 1, -((e.clientY - r.top) / r.height) * 2 + 1);
    raycaster.setFromCamera(m, camera());
    const hit = raycaster.intersectObject(points)[0];
    if (hit) {
      const n = state.data.nodes[hit.index];
      location.href = "/job/" + encodeURIComponent(n.job_id) + (state.data.cluster ? "?cluster=" + encodeURIComponent(state.data.cluster) : "");
    }
  });
  window.addEventListener("resize", () => { resize(); draw(); });
  resize();
}
document.addEventListener("nomade:change", load);
load();
