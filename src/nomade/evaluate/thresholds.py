"""Choosing the alert threshold on training-side data (never on the test window)."""

from typing import Dict, List, Optional

import numpy as np

from .metrics import at_threshold


def max_f1_threshold(y, p, max_flagged: Optional[float] = None) -> float:
    """The threshold with the best F1 on (y, p); with ``max_flagged`` (e.g. 0.10) only thresholds
    that flag at most that share of jobs are considered (an alert budget)."""
    y = np.asarray(y).astype(np.int64)
    p = np.asarray(p, dtype=np.float64)
    if not len(y) or y.sum() == 0:
        return 0.5
    order = np.argsort(-p, kind="mergesort")
    ys, ps = y[order], p[order]
    tp = np.cumsum(ys)
    k = np.arange(1, len(ys) + 1)
    last = np.concatenate([np.flatnonzero(np.diff(ps)), [len(ps) - 1]])
    tp, k, thr = tp[last], k[last], ps[last]
    prec = tp / k
    rec = tp / y.sum()
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0.0)
    if max_flagged is not None:
        ok = k / len(ys) <= max_flagged
        if not ok.any():
            return float(thr[0])
        f1 = np.where(ok, f1, -1.0)
    return float(thr[int(np.argmax(f1))])


def budget_threshold(p, max_flagged: float) -> float:
    """The lowest threshold that flags at most ``max_flagged`` of the jobs in ``p``."""
    p = np.sort(np.asarray(p, dtype=np.float64))[::-1]
    if not len(p):
        return 0.5
    k = int(np.floor(max_flagged * len(p)))
    if k <= 0:
        return float(np.nextafter(p[0], np.inf))
    return float(p[k - 1])


def sweep(y, p, thresholds: List[float]) -> List[Dict[str, float]]:
    """precision/recall/f1/flagged at each threshold (for the report)."""
    return [dict(threshold=float(t), **at_threshold(y, p, t)) for t in thresholds]
