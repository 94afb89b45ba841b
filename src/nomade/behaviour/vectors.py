"""Behaviour vectors: one row per ended job describing how it ran (docs/features.md, "Behaviour
vectors"), from accounting, the node recorder's job summary and the node statistics of the
job's nodes over its run window. A source that is absent gives NaN, never 0.

Also the job's outcome class, its label (1 failed, 0 succeeded, -1 unlabelled: owner
cancellations, as in training) and a health score (``health_scores``)."""

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import states
from ..jobrecord import REQ_MEM_CPU, REQ_MEM_JOB

MIB = 1024.0 * 1024.0

# name, what it is (for docs and profile names)
FEATURES: Tuple[Tuple[str, str], ...] = (
    ("cpu_eff", "CPU"),
    ("mem_eff", "memory use"),
    ("gpu_util", "GPU use"),
    ("runtime_log", "runtime"),
    ("cores_log", "cores"),
    ("write_log", "writes"),
    ("nfs_write", "NFS write"),
    ("local_write", "local write"),
    ("tmpfs_write", "tmpfs write"),
    ("nfs_share", "NFS share of writes"),
    ("peak_write_rate", "peak write rate"),
    ("write_intensity", "write intensity"),
    ("io_wait", "I/O wait"),
    ("cpu_imbalance", "core imbalance"),
    ("mem_pressure", "memory pressure"),
    ("swap", "swapping"),
    ("blocked", "blocked processes"),
)
NAMES: Tuple[str, ...] = tuple(f[0] for f in FEATURES)
LABELS: Dict[str, str] = dict(FEATURES)
AXES: Tuple[str, ...] = ("nfs_write", "local_write", "io_wait")   # the design's 3-D axes

# feature -> (unit of the value people read, stored as log1p of it?)
UNITS: Dict[str, Tuple[str, bool]] = {
    "cpu_eff": ("", False), "mem_eff": ("", False), "gpu_util": ("", False), "nfs_share": ("", False),
    "runtime_log": ("s", True), "cores_log": ("cores", True), "write_log": ("MiB", True),
    "nfs_write": ("MiB", True), "local_write": ("MiB", True), "tmpfs_write": ("MiB", True),
    "peak_write_rate": ("MiB/s", True), "write_intensity": ("MiB/s", True), "io_wait": ("%", False),
    "cpu_imbalance": ("", False), "mem_pressure": ("%", False), "swap": ("pages/s", False),
    "blocked": ("processes", False),
}


def readable(name: str, value: float) -> str:
    """A feature's value as people read it: log1p features back in their unit."""
    unit, is_log = UNITS.get(name, ("", False))
    v = math.expm1(value) if is_log else value
    text = f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return text + (f" {unit}" if unit else "")

# node statistic features: feature -> nodestats metrics averaged (summed when several)
NODE_METRICS: Dict[str, Tuple[str, ...]] = {
    "io_wait": ("node.iowait_pct",),
    "cpu_imbalance": ("node.cpu_imbalance",),
    "mem_pressure": ("node.psi_memory_some",),
    "swap": ("node.swap_in_pps", "node.swap_out_pps"),
    "blocked": ("node.procs_blocked",),
}

# health of a job by outcome class; a success is 0.5 + 0.5 x its efficiency (below)
CLASS_HEALTH = {states.FAILED: 0.1, states.OOM: 0.1, states.TIMEOUT: 0.2,
                states.CANCELLED_OTHER: 0.2, states.SYSTEM: 0.3, states.CANCELLED_OWNER: 0.4}
UNKNOWN_EFFICIENCY_HEALTH = 0.75


@dataclass
class BehaviourSet:
    """Behaviour vectors of ended jobs, row i = job i. ``X`` (n, len(NAMES)) float64, NaN =
    missing; ``extra`` holds per-job numbers used by recommendations (runtime_frac, cpus,
    timelimit_s, req_gpus, mem_req_mb, mem_peak_mb, start_time, elapsed_s; partition: object)."""

    cluster: np.ndarray          # object
    job_id: np.ndarray           # object
    user: np.ndarray             # object (None unknown)
    uid: np.ndarray              # float (NaN unknown)
    outcome: np.ndarray          # object: failure class
    y: np.ndarray                # int8: 1 failed, 0 succeeded, -1 unlabelled
    health: np.ndarray           # float64 0..1
    end_time: np.ndarray         # float64 (NaN unknown)
    X: np.ndarray
    extra: Dict[str, np.ndarray] = field(default_factory=dict)
    names: Tuple[str, ...] = NAMES

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def index_of(self, job_id: str, cluster: Optional[str] = None) -> Optional[int]:
        hits = np.nonzero(self.job_id == job_id)[0]
        if cluster is not None:
            hits = [i for i in hits if self.cluster[i] == cluster]
        return int(hits[0]) if len(hits) else None

    def subset(self, rows: np.ndarray) -> "BehaviourSet":
        return BehaviourSet(self.cluster[rows], self.job_id[rows], self.user[rows], self.uid[rows],
                            self.outcome[rows], self.y[rows], self.health[rows], self.end_time[rows],
                            self.X[rows], {k: v[rows] for k, v in self.extra.items()}, self.names)


def _f(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _log_mib(b: float) -> float:
    return math.log1p(b / MIB) if b == b and b >= 0 else float("nan")


def _ratio(a: float, b: float) -> float:
    return a / b if a == a and b == b and b > 0 else float("nan")


def requested_mem_mb(req_mem: Any, per: Any, cpus: float, nodes: float) -> float:
    """The whole job's requested memory (MiB) from ReqMem and its form (nomade.efficiency)."""
    if req_mem is None or req_mem <= 0:
        return float("nan")
    if per == REQ_MEM_JOB:
        return float(req_mem)
    if per == REQ_MEM_CPU:
        return float(req_mem) * cpus if cpus == cpus else float("nan")
    return float(req_mem) * (nodes if nodes == nodes and nodes > 0 else 1.0)


def health_scores(outcome: Sequence[Optional[str]], cpu_eff: np.ndarray, mem_eff: np.ndarray) -> np.ndarray:
    """0 (catastrophic) .. 1 (perfect). A failure gets its class's fixed value (CLASS_HEALTH:
    failed/oom 0.1, timeout 0.2, cancelled by another 0.2, system 0.3, cancelled by its owner
    0.4); a success 0.5 + 0.5 x the mean of min(CPU efficiency, 1) and min(memory efficiency, 1)
    over those known (0.75 when neither is)."""
    c = np.clip(cpu_eff, 0.0, 1.0)
    m = np.clip(mem_eff, 0.0, 1.0)
    known = np.isfinite(c).astype(float) + np.isfinite(m)
    with np.errstate(invalid="ignore", divide="ignore"):
        eff = (np.nan_to_num(c) + np.nan_to_num(m)) / known     # NaN where neither is known
    h = np.where(np.isnan(eff), UNKNOWN_EFFICIENCY_HEALTH, 0.5 + 0.5 * np.nan_to_num(eff))
    for i, cls in enumerate(outcome):
        if cls != states.SUCCESS:
            h[i] = CLASS_HEALTH.get(cls, 0.0) if cls is not None else float("nan")
    return h


def label_of(cls: Optional[str]) -> int:
    if cls is None or cls == states.CANCELLED_OWNER:
        return -1
    return 0 if cls == states.SUCCESS else 1


def build(rows: Sequence[Sequence[Any]], columns: Sequence[str],
          node_points: Optional[Dict[Tuple[str, str], List[Tuple[float, float]]]] = None) -> BehaviourSet:
    """Behaviour vectors from ``store.behaviour.ended_jobs`` rows (``columns`` = ENDED_COLUMNS)
    and ``store.behaviour.node_stat_points`` (None: no node statistics -> NaN)."""
    n = len(rows)
    col = {c: i for i, c in enumerate(columns)}
    X = np.full((n, len(NAMES)), np.nan)
    fi = {name: j for j, name in enumerate(NAMES)}
    meta = {k: np.empty(n, dtype=object) for k in ("cluster", "job_id", "user", "outcome")}
    uid = np.full(n, np.nan)
    end = np.full(n, np.nan)
    extra = {k: np.full(n, np.nan) for k in ("runtime_frac", "cpus", "timelimit_s", "req_gpus",
                                             "mem_req_mb", "mem_peak_mb", "start_time", "elapsed_s")}
    extra["partition"] = np.empty(n, dtype=object)
    for i, r in enumerate(rows):
        _one(r, col, X[i], fi, extra, i)
        meta["cluster"][i], meta["job_id"][i], meta["user"][i] = r[col["cluster"]], r[col["job_id"]], r[col["user"]]
        uid[i] = _f(r[col["uid"]])
        cls = states.failure_class(r[col["state"]], r[col["cancelled_by"]], r[col["uid"]]) if r[col["state"]] else None
        meta["outcome"][i] = cls
        end[i] = _end_time(r, col)
    if node_points:
        _node_features(rows, col, X, fi, node_points)
    y = np.array([label_of(c) for c in meta["outcome"]], dtype=np.int8)
    health = health_scores(list(meta["outcome"]), X[:, fi["cpu_eff"]], X[:, fi["mem_eff"]])
    return BehaviourSet(meta["cluster"], meta["job_id"], meta["user"], uid, meta["outcome"], y,
                        health, end, X, extra)


def _end_time(r, col) -> float:
    e = r[col["end_time"]]
    if e is not None:
        return float(e)
    el = r[col["elapsed_s"]]
    base = r[col["start_time"]] if r[col["start_time"]] is not None else r[col["submit_time"]]
    return float(base) + float(el) if base is not None and el is not None else float("nan")


def _one(r, col, x: np.ndarray, fi: Dict[str, int], extra: Dict[str, np.ndarray], i: int) -> None:
    elapsed = _f(r[col["elapsed_s"]])
    cpus = _f(r[col["alloc_cpus"]] if r[col["alloc_cpus"]] else r[col["req_cpus"]])
    nodes = _f(r[col["alloc_nodes"]] if r[col["alloc_nodes"]] else r[col["req_nodes"]])
    cpu_eff = _ratio(_f(r[col["total_cpu_s"]]), elapsed * cpus)
    if cpu_eff != cpu_eff:
        cpu_eff = _f(r[col["s_mean_cpu_eff"]])
    x[fi["cpu_eff"]] = cpu_eff
    peaks = [_f(r[col[c]]) for c in ("max_rss_mb", "s_peak_rss_mb", "s_peak_cg_mem_mb")]
    peaks = [p for p in peaks if p == p and p > 0]
    peak = max(peaks) if peaks else float("nan")
    req = requested_mem_mb(r[col["req_mem_mb"]], r[col["req_mem_per_cpu"]], cpus, nodes)
    x[fi["mem_eff"]] = _ratio(peak, req)
    gpu = _f(r[col["s_mean_gpu_util"]])
    x[fi["gpu_util"]] = gpu / 100.0 if gpu == gpu else gpu
    x[fi["runtime_log"]] = math.log1p(elapsed) if elapsed == elapsed and elapsed >= 0 else float("nan")
    x[fi["cores_log"]] = math.log1p(cpus) if cpus == cpus and cpus > 0 else float("nan")
    wb = _f(r[col["s_write_bytes"]])
    parts = [_f(r[col[c]]) for c in ("s_write_network_bytes", "s_write_local_bytes", "s_write_tmpfs_bytes")]
    x[fi["write_log"]] = _log_mib(wb)
    x[fi["nfs_write"]], x[fi["local_write"]], x[fi["tmpfs_write"]] = (_log_mib(p) for p in parts)
    x[fi["nfs_share"]] = _ratio(parts[0], sum(parts)) if all(p == p for p in parts) else float("nan")
    rate = _f(r[col["s_peak_write_rate"]])
    x[fi["peak_write_rate"]] = math.log1p(rate / MIB) if rate == rate and rate >= 0 else float("nan")
    mean_rate = _ratio(wb, elapsed)
    x[fi["write_intensity"]] = math.log1p(mean_rate / MIB) if mean_rate == mean_rate else float("nan")
    tl = _f(r[col["timelimit_s"]])
    extra["runtime_frac"][i] = _ratio(elapsed, tl)
    extra["cpus"][i], extra["timelimit_s"][i] = cpus, tl
    extra["req_gpus"][i] = _f(r[col["req_gpus"]])
    extra["mem_req_mb"][i], extra["mem_peak_mb"][i] = req, peak
    extra["start_time"][i] = _f(r[col["start_time"]])
    extra["elapsed_s"][i] = elapsed
    extra["partition"][i] = r[col["partition"]] if "partition" in col else None


def _node_features(rows, col, X: np.ndarray, fi: Dict[str, int],
                   points: Dict[Tuple[str, str], List[Tuple[float, float]]]) -> None:
    """Mean of each node statistic over [start, end] on the job's nodes (the mean of its nodes'
    means; nodes without a point in the window do not count; no node with one -> NaN)."""
    from ..features.start import expand_nodes
    prefix: Dict[Tuple[str, str], Tuple[List[float], List[float]]] = {}
    for key, pts in points.items():
        ts = [p[0] for p in pts]
        cum = [0.0]
        for p in pts:
            cum.append(cum[-1] + p[1])
        prefix[key] = (ts, cum)
    cache: Dict[str, List[str]] = {}
    for i, r in enumerate(rows):
        start, end, text = r[col["start_time"]], r[col["end_time"]], r[col["node_list"]]
        if start is None or end is None or not text:
            continue
        hosts = cache.get(text)
        if hosts is None:
            hosts = cache[text] = expand_nodes(text)
        for feat, metrics in NODE_METRICS.items():
            means = []
            for h in hosts:
                vals = [_window_mean(prefix.get((m, h)), start, end) for m in metrics]
                vals = [v for v in vals if v is not None]
                if vals:
                    means.append(sum(vals))
            if means:
                X[i, fi[feat]] = sum(means) / len(means)


def _window_mean(pc: Optional[Tuple[List[float], List[float]]], start: float, end: float) -> Optional[float]:
    if pc is None:
        return None
    ts, cum = pc
    a, b = bisect_left(ts, start), bisect_right(ts, end)
    return (cum[b] - cum[a]) / (b - a) if b > a else None


def load(store, cluster: Optional[str] = None) -> BehaviourSet:
    """The behaviour vectors of every ended job in ``store`` (of ``cluster``, None = all)."""
    from ..store import behaviour as sb
    rows = sb.ended_jobs(store, cluster)
    metrics = sorted({m for ms in NODE_METRICS.values() for m in ms})
    points = sb.node_stat_points(store, metrics, cluster)
    return build(rows, sb.ENDED_COLUMNS, points)


def from_arrays(X: np.ndarray, y: np.ndarray, *, users: Optional[Sequence[str]] = None,
                outcome: Optional[Sequence[str]] = None, cluster: str = "synthetic") -> BehaviourSet:
    """A BehaviourSet from plain arrays (benchmarks, tests): job ids 1..n, failed -> class
    ``failed``, succeeded -> ``success``, unlabelled -> ``cancelled_owner``."""
    n = X.shape[0]
    if outcome is None:
        outcome = [states.FAILED if v == 1 else states.SUCCESS if v == 0 else states.CANCELLED_OWNER
                   for v in y]
    out = np.empty(n, dtype=object)
    out[:] = list(outcome)
    u = np.empty(n, dtype=object)
    u[:] = list(users) if users is not None else [None] * n
    ids = np.empty(n, dtype=object)
    ids[:] = [str(i + 1) for i in range(n)]
    cl = np.empty(n, dtype=object)
    cl[:] = [cluster] * n
    Xf = np.asarray(X, dtype=np.float64)
    fi = {name: j for j, name in enumerate(NAMES)}
    cpu = Xf[:, fi["cpu_eff"]] if Xf.shape[1] == len(NAMES) else np.full(n, np.nan)
    mem = Xf[:, fi["mem_eff"]] if Xf.shape[1] == len(NAMES) else np.full(n, np.nan)
    return BehaviourSet(cl, ids, u, np.full(n, np.nan), out, np.asarray(y, dtype=np.int8),
                        health_scores(list(out), cpu, mem), np.full(n, np.nan), Xf,
                        {}, NAMES if Xf.shape[1] == len(NAMES) else tuple(f"f{j}" for j in range(Xf.shape[1])))
