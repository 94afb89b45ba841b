// The job similarity network: three.js, one Points, one LineSegments and one Mesh of the safe
// and danger zones (translucent ellipsoids, ellipses in 2D; one draw call per layer), 2D/3D,
// design axes or PCA, coloured by outcome; click a point to open its job. Running jobs are one more
// Points layer (ringed, /api/network/running), moved to their new places on each live update.
// window.nomadeNetwork exposes count, zones, drawCalls, running, runningAt and measure(frames) for
// tests and benchmarks.
import * as THREE from "./vendor/three.module.js";

const box = document.getElementById("net");
const status = document.getElementById("net-status");
const state = { data: null, running: [], mode3d: true, layout: "xyz", yaw: 0.6, pitch: 0.35, dist: 3.2, zoom: 1, zonesOn: true, lo: [0, 0, 0], hi: [1, 1, 1] };
const api = { count: 0, zones: 0, drawCalls: 0, ready: false, webgl: false, measure: null,
  source: null, running: 0, runningAt: "", runningLoads: 0 };
window.nomadeNetwork = api;

const COLORS = { success: [0.40, 0.73, 0.42], failed: [0.94, 0.33, 0.31], other: [0.56, 0.64, 0.68] };
const ZONE_COLORS = { danger: [0.94, 0.33, 0.31], safe: [0.40, 0.73, 0.42] };
const RUNNING_COLOR = 0x1e88e5;
const ZONES_PER_KIND = 4;       // the strongest danger and safe zones are drawn, the rest listed

let renderer = null, scene, persp, ortho, points, lines, zoneMesh, runningPoints, raycaster;
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
  state.lo = lo; state.hi = hi;
  raw.forEach((p, i) => {
    for (let k = 0; k < 3; k++) {
      const span = hi[k] - lo[k];
      pos[3 * i + k] = span > 0 ? (2 * ((p[k] || 0) - lo[k]) / span - 1) : 0;
    }
    if (!state.mode3d) pos[3 * i + 2] = 0;
  });
  return pos;
}

// the running jobs in the page's [-1, 1] scaling of the layout (the ended jobs' own lo/hi)
function runningPositions(jobs) {
  const pos = new Float32Array(jobs.length * 3);
  jobs.forEach((j, i) => {
    const p = (state.layout === "pca" ? j.pca : j.xyz) || [0, 0, 0];
    for (let k = 0; k < 3; k++) {
      const v = typeof p[k] === "number" ? p[k] : 0, span = state.hi[k] - state.lo[k];
      pos[3 * i + k] = span > 0 && isFinite(span) ? Math.max(-1.5, Math.min(1.5, 2 * (v - state.lo[k]) / span - 1)) : 0;
    }
    if (!state.mode3d) pos[3 * i + 2] = 0.01;
  });
  return pos;
}

// a ring: the running jobs' sprite (drawn once on a canvas; no image is fetched)
let ringTexture = null;
function ring() {
  if (ringTexture) return ringTexture;
  const c = document.createElement("canvas");
  c.width = c.height = 32;
  const g = c.getContext("2d");
  g.strokeStyle = "#fff"; g.lineWidth = 6;
  g.beginPath(); g.arc(16, 16, 12, 0, 2 * Math.PI); g.stroke();
  ringTexture = new THREE.CanvasTexture(c);
  return ringTexture;
}

// the running layer: one Points object (one draw call), none when no job runs
function buildRunning() {
  const jobs = state.running || [];
  api.running = jobs.length;
  box.setAttribute("data-running", String(jobs.length));
  const pos = runningPositions(jobs);
  api.runningAt = Array.from(pos, (v) => v.toFixed(4)).join(",");
  const legend = document.getElementById("net-running");
  if (legend) legend.textContent = jobs.length ? jobs.length + " running" : "none running with recorder samples";
  if (!renderer) return;
  if (runningPoints) { scene.remove(runningPoints); runningPoints.geometry.dispose(); runningPoints = null; }
  if (!jobs.length) return;
  const g = new THREE.BufferGeometry();
  g.setAttribute("position", new THREE.BufferAttribute(pos, 3));
  runningPoints = new THREE.Points(g, new THREE.PointsMaterial({
    size: 14, sizeAttenuation: false, color: RUNNING_COLOR, map: ring(), transparent: true, alphaTest: 0.3, depthTest: false }));
  runningPoints.renderOrder = 2;
  runningPoints.frustumCulled = false;     // a few points: always one draw call, even off-screen
  scene.add(runningPoints);
}

// where running job i is drawn, in page pixels (tests click it)
api.runningOnScreen = function (i) {
  if (!runningPoints) return null;
  const a = runningPoints.geometry.getAttribute("position"), r = renderer.domElement.getBoundingClientRect();
  const v = new THREE.Vector3(a.getX(i), a.getY(i), a.getZ(i)).project(camera());
  return { x: r.left + (v.x + 1) / 2 * r.width, y: r.top + (1 - v.y) / 2 * r.height, job: state.running[i].job_id };
};

function loadRunning() {
  const lim = new URLSearchParams(location.search).get("limit");
  return fetch("/api/network/running" + (lim ? "?limit=" + encodeURIComponent(lim) : ""), { credentials: "same-origin" })
    .then((r) => r.json()).then((d) => {
      if (d.error || !state.data) return;
      state.running = d.jobs || [];
      buildRunning(); draw();
      api.runningLoads += 1;
    }).catch(() => {});
}

function zoneText(z) {
  const pct = (v) => (typeof v === "number" ? Math.round(100 * v) + "%" : "?");
  const where = z.range ? (z.label || z.feature) + " in " + z.range : (z.feature || "?") + " in [" + z.low + ", " + z.high + "]";
  return (z.kind || "zone") + ": " + where + ", failure rate " + pct(z.failure_rate) + " of " + z.n;
}

// the zones drawn: the ZONES_PER_KIND highest-rate danger zones and lowest-rate safe zones
// that have a shape in the current layout
function drawnZones(zones) {
  const withShape = zones.filter((z) => z.shape && z.shape[state.layout] && (z.kind === "danger" || z.kind === "safe"));
  const rate = (z) => (typeof z.failure_rate === "number" ? z.failure_rate : 0);
  const danger = withShape.filter((z) => z.kind === "danger").sort((a, b) => rate(b) - rate(a)).slice(0, ZONES_PER_KIND);
  const safe = withShape.filter((z) => z.kind === "safe").sort((a, b) => rate(a) - rate(b)).slice(0, ZONES_PER_KIND);
  return danger.concat(safe);
}

// a zone's ellipsoid in the page's [-1, 1] scaling of the layout (the points' own lo/hi)
function zoneBox(z) {
  const sh = z.shape[state.layout], c = [0, 0, 0], r = [0, 0, 0];
  for (let k = 0; k < 3; k++) {
    const span = state.hi[k] - state.lo[k], cv = typeof sh.centre[k] === "number" ? sh.centre[k] : 0;
    const rv = typeof sh.radii[k] === "number" ? sh.radii[k] : 0;
    c[k] = span > 0 ? 2 * (cv - state.lo[k]) / span - 1 : 0;
    r[k] = span > 0 ? Math.max(0.02, 2 * rv / span) : 0.05;
  }
  if (!state.mode3d) { c[2] = -0.01; r[2] = 0.001; }
  return [c, r];
}

// every drawn zone in one BufferGeometry (one draw call): a unit sphere moved and stretched
function zoneGeometry(zones) {
  const unit = new THREE.SphereGeometry(1, 24, 16).toNonIndexed(), u = unit.getAttribute("position").array;
  const pos = new Float32Array(u.length * zones.length), col = new Float32Array(u.length * zones.length);
  zones.forEach((z, i) => {
    const [c, r] = zoneBox(z), rgb = ZONE_COLORS[z.kind], off = i * u.length;
    for (let v = 0; v < u.length; v += 3) {
      for (let k = 0; k < 3; k++) pos[off + v + k] = c[k] + r[k] * u[v + k];
      col.set(rgb, off + v);
    }
  });
  unit.dispose();
  const g = new THREE.BufferGeometry();
  g.setAttribute("position", new THREE.BufferAttribute(pos, 3));
  g.setAttribute("color", new THREE.BufferAttribute(col, 3));
  return g;
}

function zoneLegend(all, drawn) {
  const box = document.getElementById("net-zones");
  box.textContent = "";
  if (!all.length) {
    box.textContent = state.data && state.data.source === "behaviour"
      ? "no safe or danger zone: no feature range's failure rate differs significantly from the rest"
      : "safe and danger zones come from the behaviour analysis (not shown for this layout)";
    return;
  }
  const head = document.createElement("span");
  head.textContent = "zones (" + drawn.length + " of " + all.length + " drawn" +
    (drawn.length ? "" : state.layout === "xyz" ? "; their jobs have no position on the design axes (no I/O samples): see PCA" : "") + "):";
  box.appendChild(head);
  drawn.forEach((z) => {
    const item = document.createElement("span");
    item.className = "zone-item zone-" + z.kind;
    const sw = document.createElement("span");
    sw.className = "swatch " + z.kind;
    item.appendChild(sw);
    item.appendChild(document.createTextNode(zoneText(z) + " jobs"));
    box.appendChild(item);
  });
}

function build() {
  const d = state.data, nodes = d.nodes || [], edges = d.edges || [];
  api.count = nodes.length;
  box.setAttribute("data-count", String(nodes.length));
  document.getElementById("net-axes").textContent = (d.axes || []).length ? "axes: " + d.axes.join(", ") : "";
  status.textContent = nodes.length + " jobs, " + edges.length + " links" + (d.source === "requests" ? " (placed by what they requested; behaviour analysis: " + (d.problem || "not installed") + ")" : "");
  if (!renderer) { zoneLegend(d.zones || [], []); api.ready = true; return; }
  if (points) { scene.remove(points); points.geometry.dispose(); }
  if (lines) { scene.remove(lines); lines.geometry.dispose(); lines = null; }
  if (zoneMesh) { scene.remove(zoneMesh); zoneMesh.geometry.dispose(); zoneMesh = null; }
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
  const zones = drawnZones(d.zones || []);
  zoneLegend(d.zones || [], zones);
  api.zones = zones.length;
  box.setAttribute("data-zones", String(zones.length));
  if (zones.length) {
    zoneMesh = new THREE.Mesh(zoneGeometry(zones), new THREE.MeshBasicMaterial({
      vertexColors: true, transparent: true, opacity: 0.22, depthWrite: false }));   // front faces: one pass
    zoneMesh.visible = state.zonesOn;
    scene.add(zoneMesh);
  }
  buildRunning();
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
    const n = frames || 60, shown = [points, lines, zoneMesh, runningPoints].filter(Boolean);
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
    state.data = d; api.source = d.source; build();
    if (d.source === "requests" && /being computed/.test(d.problem || "")) setTimeout(load, 5000);
    return loadRunning();
  });
}

function setButtons() {
  document.getElementById("view-3d").classList.toggle("on", state.mode3d);
  document.getElementById("view-2d").classList.toggle("on", !state.mode3d);
  document.getElementById("layout-axes").classList.toggle("on", state.layout === "xyz");
  document.getElementById("layout-pca").classList.toggle("on", state.layout === "pca");
  document.getElementById("toggle-zones").classList.toggle("on", state.zonesOn);
}
[["view-2d", () => { state.mode3d = false; }], ["view-3d", () => { state.mode3d = true; }],
 ["layout-axes", () => { state.layout = "xyz"; }], ["layout-pca", () => { state.layout = "pca"; }],
 ["toggle-zones", () => { state.zonesOn = !state.zonesOn; }]].forEach(([id, f]) => {
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
    const live = runningPoints ? raycaster.intersectObject(runningPoints)[0] : null;
    if (live) {
      const j = state.running[live.index];
      if (j && j.job_id) location.href = "/job/" + encodeURIComponent(j.job_id) + (j.cluster ? "?cluster=" + encodeURIComponent(j.cluster) : "");
      return;
    }
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
