"""The network as the dashboard renders it (``nomade similarity --export FILE.json``).

Format version 1: nodes (job, outcome, health, profile, the design's axes scaled to 0..1 as
``xyz``, the first three principal components of the z-scores as ``pca``), edges as
[node index, node index, similarity], zones (hotspots: 'danger' above the base failure rate,
'safe' below), profiles. Strict JSON: a missing value is null, never NaN.

Privacy: user names only for admins (``viewer`` None). For a non-admin viewer, nodes of other
users carry no job id (``job_id`` null, ``own`` false); zones and profiles are shown only for
groups of at least ``min_count`` jobs."""

import time
from typing import Any, Dict, List, Optional

import numpy as np

from .analysis import Analysis, Options, analyse, is_own, need
from .vectors import AXES

VERSION = 1


def _num(v: float, nd: int = 4) -> Optional[float]:
    return None if v != v or v in (float("inf"), float("-inf")) else round(float(v), nd)


def axis_bounds(X: np.ndarray, cols: List[int]) -> List[Optional[List[float]]]:
    """Per axis column, its 1st and 99th percentiles ([lo, hi]; None for a column with no value)."""
    out: List[Optional[List[float]]] = []
    for j in cols:
        fin = X[:, j][np.isfinite(X[:, j])]
        out.append([float(v) for v in np.percentile(fin, [1, 99])] if fin.size else None)
    return out


def apply_axes(X: np.ndarray, cols: List[int], bounds: List[Optional[List[float]]]) -> np.ndarray:
    """The axis columns scaled to 0..1 between their bounds (clipped; NaN kept)."""
    out = np.full((X.shape[0], len(cols)), np.nan)
    for c, (j, bound) in enumerate(zip(cols, bounds)):
        if bound is not None:
            lo, hi = bound
            out[:, c] = np.clip((X[:, j] - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    return out


def axes_01(X: np.ndarray, cols: List[int]) -> np.ndarray:
    """The axis columns scaled to 0..1 between their 1st and 99th percentiles (clipped; NaN kept)."""
    return apply_axes(X, cols, axis_bounds(X, cols))


def pca_fit(Z: np.ndarray, sample: int = 50000, seed: int = 0):
    """(mean, first three principal axes) of the rows of ``Z`` (fitted on a sample)."""
    rng = np.random.default_rng(seed)
    S = Z[rng.choice(Z.shape[0], sample, replace=False)] if Z.shape[0] > sample else Z
    mu = S.mean(axis=0)
    _, _, vt = np.linalg.svd(S - mu, full_matrices=False)
    return mu, vt[:3]


def pca_apply(Z: np.ndarray, mu: np.ndarray, comps: np.ndarray) -> np.ndarray:
    P = (Z - mu) @ comps.T
    if P.shape[1] < 3:
        P = np.hstack([P, np.zeros((P.shape[0], 3 - P.shape[1]))])
    return P


def pca3(Z: np.ndarray, sample: int = 50000, seed: int = 0) -> np.ndarray:
    """Projection of every row on the first three principal axes (fitted on a sample)."""
    return pca_apply(Z, *pca_fit(Z, sample, seed))


def export_analysis(a: Analysis, *, viewer=None, limit: Optional[int] = None,
                    cluster: Optional[str] = None, now: Optional[float] = None) -> Dict[str, Any]:
    b, g, opts = a.bset, need(a.network, "network"), a.options
    n = len(b)
    mine = is_own(b, np.arange(n), viewer)
    chosen = np.arange(n)
    if limit is not None and n > limit:
        rng = np.random.default_rng(opts.seed)
        own_rows = np.nonzero(mine)[0][:limit]
        rest = np.setdiff1d(np.arange(n), own_rows)
        extra = rng.choice(rest, max(0, limit - own_rows.size), replace=False)
        chosen = np.sort(np.concatenate([own_rows, extra]))
    pos = np.full(n, -1, dtype=np.int64)
    pos[chosen] = np.arange(chosen.size)
    xyz = axes_01(b.X, [b.names.index(x) for x in AXES if x in b.names])
    from .network import Scaled
    pca = pca3(Scaled.of(b.X).Z.astype(np.float64), seed=opts.seed)
    nodes = []
    for i in chosen:
        own = bool(mine[i])
        node = {"job_id": str(b.job_id[i]) if own else None,
                "user": (b.user[i] if viewer is None else None),
                "outcome": b.outcome[i], "failed": bool(b.y[i] == 1), "health": _num(b.health[i]),
                "profile": int(a.profile[i]) if a.profile is not None else None,
                "xyz": [_num(v) for v in xyz[i]], "pca": [_num(v) for v in pca[i]]}
        if viewer is not None:
            node["own"] = own
        nodes.append(node)
    keep = (pos[g.u] >= 0) & (pos[g.v] >= 0)
    edges = [[int(p), int(q), _num(w)] for p, q, w in zip(pos[g.u[keep]], pos[g.v[keep]], g.w[keep])]
    zones = [{"kind": h.kind, "feature": h.feature, "low": _num(h.low, 6), "high": _num(h.high, 6),
              "failure_rate": _num(h.failure_rate), "n": h.n,
              "ci": [_num(h.ci_low), _num(h.ci_high)]}
             for h in a.hotspots if h.n >= opts.min_count]
    profiles: List[Dict[str, Any]] = []
    if a.model is not None and a.profile is not None:
        from .profiles import summarize
        for p in summarize(a.model, a.profile, b.y, list(b.outcome)):
            if viewer is None or p.size >= opts.min_count:
                profiles.append({"id": p.id, "name": p.name, "size": p.size,
                                 "failure_rate": None if p.failure_rate is None else _num(p.failure_rate)})
    return {"version": VERSION, "generated_at": float(now if now is not None else time.time()),
            "cluster": cluster, "axes": list(AXES), "nodes": nodes, "edges": edges, "zones": zones,
            "profiles": profiles, "jobs": n, "sampled": bool(chosen.size < n)}


def network_export(store, cluster: Optional[str] = None, *, viewer=None, limit: Optional[int] = None,
                   options: Optional[Options] = None) -> Dict[str, Any]:
    """The export of the ended jobs in ``store`` (of ``cluster``, None = all); ``viewer`` None for
    an admin, else the non-admin caller (``whyservice.access.Caller``); ``limit``: at most this
    many nodes (a seeded sample, the viewer's own jobs first)."""
    from .vectors import load
    opts = options or Options(permutations=0)
    a = analyse(load(store, cluster), opts)
    return export_analysis(a, viewer=viewer, limit=limit, cluster=cluster)
