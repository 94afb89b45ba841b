"""Start-time extras: what the scheduler knows when a job starts (queue wait, cluster load, the
recent failure record of the nodes it got). Vectorised over a JobTable. Runtime-safe."""

import math
import re
from bisect import bisect_left
from typing import Dict, List

import numpy as np

from .. import states

NODE_WINDOW_S = 7 * 86400.0
NAN = float("nan")
_RANGE = re.compile(r"^(.*?)\[([^\]]+)\](.*)$")


def expand_nodes(text) -> List[str]:
    """'n[1-3,7],gpu2' -> ['n1','n2','n3','n7','gpu2'] (one bracket group per name)."""
    if not text or text in ("None assigned", "(null)"):
        return []
    parts, depth, cur = [], 0, ""
    for ch in str(text):
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "["
        depth -= ch == "]"
        cur += ch
    parts.append(cur)
    out: List[str] = []
    for p in parts:
        m = _RANGE.match(p)
        if not m:
            out.append(p)
            continue
        pre, body, post = m.groups()
        for r in body.split(","):
            a, _, b = r.partition("-")
            if b and a.isdigit() and b.isdigit():
                out.extend(f"{pre}{i:0{len(a)}d}{post}" for i in range(int(a), int(b) + 1))
            else:
                out.append(f"{pre}{a}{post}")
    return out


def start_features(jt, cls: np.ndarray) -> np.ndarray:
    """(n, 4) float32 in schema.START_NAMES order; NaN for jobs that never started."""
    sub, start, end = jt["submit_time"], jt["start_time"], jt["end_time"]
    n = len(jt)
    out = np.full((n, 4), np.nan, dtype=np.float32)
    has = ~np.isnan(start)
    out[has, 0] = np.log1p(np.maximum(start[has] - sub[has], 0.0))
    # running at t = started strictly before t and not ended strictly before t
    cpus = job_cpus(jt)
    s_idx = np.flatnonzero(has)
    s_order = s_idx[np.argsort(start[s_idx], kind="stable")]
    s_times = start[s_order]
    s_cum = np.concatenate([[0.0], np.cumsum(cpus[s_order])])
    e_idx = s_idx[~np.isnan(end[s_idx])]
    e_order = e_idx[np.argsort(end[e_idx], kind="stable")]
    e_times = end[e_order]
    e_cum = np.concatenate([[0.0], np.cumsum(cpus[e_order])])
    t = start[has]
    ns = np.searchsorted(s_times, t, side="left")
    ne = np.searchsorted(e_times, t, side="left")
    out[has, 1] = ns - ne
    out[has, 2] = np.log1p(np.maximum(s_cum[ns] - e_cum[ne], 0.0))
    out[:, 3] = _node_failures(jt, cls, has)
    return out


def failures_by_node(jt, cls: np.ndarray) -> Dict[str, List[float]]:
    """Per node, the sorted end times of system-class failures (NODE_FAIL, BOOT_FAIL, ...)."""
    nodes_col, end = jt["node_list"], jt["end_time"]
    by_node: Dict[str, List[float]] = {}
    for i in range(len(jt)):
        if cls[i] == states.SYSTEM and end[i] == end[i] and nodes_col[i]:
            for nd in expand_nodes(nodes_col[i]):
                by_node.setdefault(nd, []).append(float(end[i]))
    for lst in by_node.values():
        lst.sort()
    return by_node


def count_failures(by_node: Dict[str, List[float]], nodes: List[str], t: float) -> float:
    """Failures on ``nodes`` that ended in the NODE_WINDOW_S before ``t`` (strictly before);
    NaN without a node list."""
    if not nodes:
        return NAN
    c = 0
    for nd in nodes:
        lst = by_node.get(nd)
        if lst:
            c += bisect_left(lst, t) - bisect_left(lst, t - NODE_WINDOW_S)
    return float(c)


def job_cpus(jt) -> np.ndarray:
    """Allocated CPUs, else requested, else 1."""
    return np.nan_to_num(np.where(np.isnan(jt["alloc_cpus"]), jt["req_cpus"], jt["alloc_cpus"]), nan=1.0)


def _node_failures(jt, cls: np.ndarray, has: np.ndarray) -> np.ndarray:
    by_node = failures_by_node(jt, cls)
    res = np.full(len(jt), np.nan)
    for i in np.flatnonzero(has):
        res[i] = count_failures(by_node, expand_nodes(jt["node_list"][i]), jt["start_time"][i])
    return res


CONTEXT_FORMAT = 1
LOAD_WINDOW_S = 7 * 86400.0   # a job "running" at the snapshot started at most this long before


class StartContext:
    """What the start-time extras need when a single job is scored (the Prolog), shipped in a
    bundle as ``start_context.json`` and rebuilt by every history refresh: the cluster's load at
    the snapshot time (running jobs and CPUs) and, per node, the end times of system-class
    failures in the last ``NODE_WINDOW_S``. A request may carry ``running_jobs`` and
    ``running_cpus`` measured at its start; otherwise the snapshot's load stands in for it."""

    def __init__(self, time_s: float, running_jobs: float, running_cpus: float,
                 node_failures: Dict[str, List[float]]):
        self.time_s = float(time_s)
        self.running_jobs = float(running_jobs)
        self.running_cpus = float(running_cpus)
        self.node_failures = {n: sorted(float(t) for t in v) for n, v in node_failures.items()}

    @classmethod
    def from_table(cls, jt, cls_arr: np.ndarray, now: float = None) -> "StartContext":
        """The snapshot at ``now`` (default: the latest submit/start/end time in the table)."""
        sub, start, end = jt["submit_time"], jt["start_time"], jt["end_time"]
        if now is None:
            times = np.concatenate([sub, start, end])
            times = times[np.isfinite(times)]
            now = float(times.max()) if len(times) else 0.0
        cpus = job_cpus(jt)
        with np.errstate(invalid="ignore"):
            run = (start < now) & (start >= now - LOAD_WINDOW_S) & ~(end < now)
        fails = {nd: [e for e in lst if now - NODE_WINDOW_S <= e < now]
                 for nd, lst in failures_by_node(jt, cls_arr).items()}
        return cls(now, float(run.sum()), float(cpus[run].sum()), {n: v for n, v in fails.items() if v})

    def extras(self, req: Dict[str, object], at_time: float) -> List[float]:
        """The four START_NAMES values for one request scored at its start ``at_time``."""
        sub = req.get("submit_time")
        wait = math.log1p(max(at_time - float(sub), 0.0)) if sub is not None and sub == sub else NAN
        jobs = req.get("running_jobs")
        cpus = req.get("running_cpus")
        jobs = self.running_jobs if jobs is None else float(jobs)
        cpus = self.running_cpus if cpus is None else float(cpus)
        fails = count_failures(self.node_failures, expand_nodes(req.get("node_list")), at_time)
        return [wait, jobs, math.log1p(max(cpus, 0.0)), fails]

    def to_json(self) -> Dict[str, object]:
        return {"format": CONTEXT_FORMAT, "time": self.time_s, "running_jobs": self.running_jobs,
                "running_cpus": self.running_cpus, "node_failures": self.node_failures}

    @classmethod
    def from_json(cls, obj: Dict[str, object]) -> "StartContext":
        from ..errors import ModelError
        if obj.get("format") != CONTEXT_FORMAT:
            raise ModelError(f"start context has format {obj.get('format')!r}, this nomade reads "
                             f"{CONTEXT_FORMAT}", hint="retrain the model with this nomade (`nomade train`)")
        return cls(obj["time"], obj["running_jobs"], obj["running_cpus"], obj["node_failures"])
