"""Behaviour vectors: one row per ended job describing how it ran (docs/features.md, "Behaviour
vectors"), from accounting, the node recorder's job summary and the node statistics of the
job's nodes over its run window. A source that is absent gives NaN, never 0.

Also the job's outcome class, its label (1 failed, 0 succeeded, -1 unlabelled: owner
cancellations, as in training) and a health score (``health_scores``)."""

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

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


def is_own(b: BehaviourSet, rows: np.ndarray, viewer) -> np.ndarray:
    """Which of ``rows`` belong to ``viewer`` (access rule: the uid, else the user name when the
    record has no uid); all True for an admin (viewer None)."""
    if viewer is None:
        return np.ones(len(rows), dtype=bool)
    uid = b.uid[rows]
    name = viewer.name
    by_name = np.array([u is not None and u == name for u in b.user[rows]], dtype=bool)
    return np.where(np.isfinite(uid), uid == viewer.uid, by_name & (name is not None))


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
    out = np.empty(len(outcome), dtype=object)
    out[:] = list(outcome)
    for cls in set(out.tolist()):
        if cls != states.SUCCESS:
            h[out == cls] = CLASS_HEALTH.get(cls, 0.0) if cls is not None else float("nan")
    return h


def label_of(cls: Optional[str]) -> int:
    if cls is None or cls == states.CANCELLED_OWNER:
        return -1
    return 0 if cls == states.SUCCESS else 1


def build(rows: Sequence[Sequence[Any]], columns: Sequence[str],
          node_points: Optional[Dict[Tuple[str, str], List[Tuple[float, float]]]] = None) -> BehaviourSet:
    """Behaviour vectors from ``store.behaviour.ended_jobs`` rows (``columns`` = ENDED_COLUMNS)
    and ``store.behaviour.node_stat_points`` (None: no node statistics -> NaN)."""
    return build_batches([rows], columns, node_points)


TEXT_COLUMNS = ("cluster", "job_id", "user", "state", "node_list", "partition")
SHARED_TEXT = ("cluster", "user", "state", "partition")      # few distinct values


def build_batches(batches: Iterable[Sequence[Sequence[Any]]], columns: Sequence[str],
                  node_points: Optional[Dict[Tuple[str, str], List[Tuple[float, float]]]] = None) -> BehaviourSet:
    """``build`` over rows that come in batches (``store.behaviour.ended_job_batches``): each
    batch is turned into column arrays at once (numpy over columns, no Python work per value),
    so the rows of one batch at a time are held as Python objects."""
    parts: Dict[str, List[np.ndarray]] = {c: [] for c in columns}
    same: Dict[str, Dict[Any, Any]] = {c: {} for c in SHARED_TEXT}
    for batch in batches:
        if not len(batch):
            continue
        for c, values in zip(columns, zip(*batch)):
            if c in TEXT_COLUMNS:
                arr = np.empty(len(values), dtype=object)
                seen = same.get(c)     # one string object per distinct value, not one per job
                arr[:] = values if seen is None else [seen.setdefault(v, v) for v in values]
            else:
                arr = np.array(values, dtype=np.float64)     # None -> NaN
            parts[c].append(arr)
    cols: Dict[str, np.ndarray] = {}
    for c in columns:
        chunks = parts.pop(c)           # each column's chunks freed as it is joined
        cols[c] = np.concatenate(chunks) if chunks else np.empty(0, dtype=object if c in TEXT_COLUMNS else np.float64)
    return _from_columns(cols, node_points)


def _from_columns(c: Dict[str, np.ndarray], node_points) -> BehaviourSet:
    n = len(c["job_id"])
    X = np.full((n, len(NAMES)), np.nan)
    fi = {name: j for j, name in enumerate(NAMES)}
    with np.errstate(invalid="ignore", divide="ignore"):
        extra = _accounting_features(c, X, fi)
        _recorder_features(c, X, fi, extra["elapsed_s"])
    outcome = _outcomes(c["state"], c["cancelled_by"], c["uid"])
    if node_points:
        _node_features(c, X, fi, node_points)
    y = _labels(outcome)
    health = health_scores(outcome, X[:, fi["cpu_eff"]], X[:, fi["mem_eff"]])
    end = c["end_time"].copy()
    base = np.where(np.isnan(c["start_time"]), c["submit_time"], c["start_time"])
    end = np.where(np.isnan(end), base + c["elapsed_s"], end)
    return BehaviourSet(c["cluster"], c["job_id"], c["user"], c["uid"].copy(), outcome, y, health, end, X, extra)


def _known_or(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a`` where it is known and not 0, else ``b`` (Slurm's 0 = not allocated)."""
    return np.where(np.isfinite(a) & (a != 0), a, b)


def _ratio_v(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b where a is known and b > 0, else NaN."""
    return np.where(~np.isnan(a) & (b > 0), a / np.where(b > 0, b, 1.0), np.nan)


def _log_mib_v(b: np.ndarray) -> np.ndarray:
    return np.where(b >= 0, np.log1p(np.where(b >= 0, b, 0.0) / MIB), np.nan)


def _accounting_features(c: Dict[str, np.ndarray], X: np.ndarray, fi: Dict[str, int]) -> Dict[str, np.ndarray]:
    """CPU and memory efficiency, runtime, cores, and ``extra``. Cores: allocated, else
    requested; the whole job's requested memory from ReqMem and its form (per CPU x cores, per
    node x nodes, or the job's; unknown when not > 0); peak memory: the largest known of sacct's
    MaxRSS and the recorder's peaks."""
    elapsed = c["elapsed_s"]
    cpus = _known_or(c["alloc_cpus"], c["req_cpus"])
    nodes = _known_or(c["alloc_nodes"], c["req_nodes"])
    cpu_eff = _ratio_v(c["total_cpu_s"], elapsed * cpus)
    X[:, fi["cpu_eff"]] = np.where(np.isnan(cpu_eff), c["s_mean_cpu_eff"], cpu_eff)
    peaks = np.vstack([c["max_rss_mb"], c["s_peak_rss_mb"], c["s_peak_cg_mem_mb"]])
    peak = np.fmax.reduce(np.where(peaks > 0, peaks, np.nan), axis=0)
    req_mem, per = c["req_mem_mb"], c["req_mem_per_cpu"]
    req = np.where(per == REQ_MEM_JOB, req_mem,
                   np.where(per == REQ_MEM_CPU, req_mem * cpus,
                            req_mem * np.where(nodes > 0, nodes, 1.0)))
    req = np.where(req_mem > 0, req, np.nan)
    X[:, fi["mem_eff"]] = _ratio_v(peak, req)
    X[:, fi["runtime_log"]] = np.where(elapsed >= 0, np.log1p(np.where(elapsed >= 0, elapsed, 0.0)), np.nan)
    X[:, fi["cores_log"]] = np.where(cpus > 0, np.log1p(np.where(cpus > 0, cpus, 0.0)), np.nan)
    tl = c["timelimit_s"]
    return {"runtime_frac": _ratio_v(elapsed, tl), "cpus": cpus, "timelimit_s": tl.copy(),
            "req_gpus": c["req_gpus"].copy(), "mem_req_mb": req, "mem_peak_mb": peak,
            "start_time": c["start_time"].copy(), "elapsed_s": elapsed.copy(),
            "partition": c["partition"] if "partition" in c else np.full(len(elapsed), None, dtype=object)}


def _recorder_features(c: Dict[str, np.ndarray], X: np.ndarray, fi: Dict[str, int], elapsed: np.ndarray) -> None:
    X[:, fi["gpu_util"]] = c["s_mean_gpu_util"] / 100.0
    wb = c["s_write_bytes"]
    parts = [c["s_write_network_bytes"], c["s_write_local_bytes"], c["s_write_tmpfs_bytes"]]
    X[:, fi["write_log"]] = _log_mib_v(wb)
    for name, p in zip(("nfs_write", "local_write", "tmpfs_write"), parts):
        X[:, fi[name]] = _log_mib_v(p)
    X[:, fi["nfs_share"]] = _ratio_v(parts[0], parts[0] + parts[1] + parts[2])
    X[:, fi["peak_write_rate"]] = _log_mib_v(c["s_peak_write_rate"])
    X[:, fi["write_intensity"]] = np.log1p(_ratio_v(wb, elapsed) / MIB)


def _outcomes(state: np.ndarray, cancelled_by: np.ndarray, uid: np.ndarray) -> np.ndarray:
    """The failure class per job (None without a state); ``failure_class`` once per distinct
    state, and per job only for cancellations (who cancelled matters)."""
    out = np.empty(len(state), dtype=object)
    for st in set(state.tolist()):
        rows = np.nonzero(state == st)[0]
        if not st:
            out[rows] = None
        elif st == "CANCELLED":
            out[rows] = [states.failure_class(st, None if cb != cb else int(cb), None if u != u else int(u))
                         for cb, u in zip(cancelled_by[rows].tolist(), uid[rows].tolist())]
        else:
            out[rows] = states.failure_class(st, None, None)
    return out


def _labels(outcome: np.ndarray) -> np.ndarray:
    y = np.empty(len(outcome), dtype=np.int8)
    for cls in set(outcome.tolist()):
        y[outcome == cls] = label_of(cls)
    return y


def _node_features(c: Dict[str, np.ndarray], X: np.ndarray, fi: Dict[str, int],
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
    starts, ends, lists = c["start_time"], c["end_time"], c["node_list"]
    for i in np.nonzero(np.isfinite(starts) & np.isfinite(ends))[0]:
        start, end, text = float(starts[i]), float(ends[i]), lists[i]
        if not text:
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
    metrics = sorted({m for ms in NODE_METRICS.values() for m in ms})
    points = sb.node_stat_points(store, metrics, cluster)
    return build_batches(sb.ended_job_batches(store, cluster), sb.ENDED_COLUMNS, points)


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
