"""Start-time extras: what the scheduler knows when a job starts (queue wait, cluster load, the
recent failure record of the nodes it got). Vectorised over a JobTable. Runtime-safe."""

import re
from bisect import bisect_left
from typing import Dict, List

import numpy as np

from .. import states

NODE_WINDOW_S = 7 * 86400.0
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
    cpus = np.where(np.isnan(jt["alloc_cpus"]), jt["req_cpus"], jt["alloc_cpus"])
    cpus = np.nan_to_num(cpus, nan=1.0)
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


def _node_failures(jt, cls: np.ndarray, has: np.ndarray) -> np.ndarray:
    """System-class failures (NODE_FAIL, BOOT_FAIL, ...) on the job's nodes among jobs that
    ended in the NODE_WINDOW_S before its start (strictly before). NaN without a node list."""
    res = np.full(len(jt), np.nan)
    nodes_col, start, end = jt["node_list"], jt["start_time"], jt["end_time"]
    fail_idx = [i for i in range(len(jt)) if cls[i] == states.SYSTEM and end[i] == end[i]
                and nodes_col[i]]
    by_node: Dict[str, List[float]] = {}
    for i in sorted(fail_idx, key=lambda j: end[j]):
        for nd in expand_nodes(nodes_col[i]):
            by_node.setdefault(nd, []).append(end[i])
    for i in np.flatnonzero(has):
        nl = expand_nodes(nodes_col[i])
        if not nl:
            continue
        t = start[i]
        c = 0
        for nd in nl:
            lst = by_node.get(nd)
            if lst:
                c += bisect_left(lst, t) - bisect_left(lst, t - NODE_WINDOW_S)
        res[i] = c
    return res
