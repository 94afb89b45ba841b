"""Choosing the alert threshold on training-side data (never on the test window)."""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

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


@dataclass
class ThresholdChoice:
    """The alert threshold the policy chose on one window, which rule decided, and what it
    does there (share flagged, precision, recall); ``table``: the trade-off at other thresholds."""
    threshold: float
    rule: str
    flagged: float
    precision: float
    recall: float
    budget: float
    min_precision: float
    table: List[Dict[str, float]] = field(default_factory=list)
    margin: float = 0.0   # share of the budget kept free on the window for drift

    def as_dict(self) -> Dict[str, Any]:
        return {"threshold": self.threshold, "rule": self.rule, "flagged": self.flagged,
                "precision": self.precision, "recall": self.recall, "budget": self.budget,
                "margin": self.margin, "min_precision": self.min_precision, "table": self.table}


TRADEOFF = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _operating_points(y: np.ndarray, p: np.ndarray):
    """Per distinct score t (descending): flagged share, precision and recall of ``p >= t``."""
    order = np.argsort(-p, kind="mergesort")
    ys, ps = y[order], p[order]
    tp = np.cumsum(ys)
    k = np.arange(1, len(ys) + 1)
    last = np.concatenate([np.flatnonzero(np.diff(ps)), [len(ps) - 1]])
    pos = max(int(y.sum()), 1)
    return ps[last], k[last] / len(ys), tp[last] / k[last], tp[last] / pos


def choose_alert_threshold(y, p, budget: float, min_precision: float = 0.0,
                           margin: float = 0.0) -> ThresholdChoice:
    """The alert policy on (y, p): the lowest threshold whose flagged share is at most
    ``budget * (1 - margin)`` (``budget`` 0 = the best-F1 threshold; the margin keeps part of the
    budget free on this window so that the share flagged on later jobs, whose scores drift, stays
    within the budget - nomade.risk_scale.BUDGET_MARGIN), raised to the lowest higher one whose
    precision is at least ``min_precision`` when it falls short; when none does, 1.0 (nobody
    warned below a certain failure). ``rule`` names what decided."""
    y = np.asarray(y).astype(np.int64)
    p = np.asarray(p, dtype=np.float64)
    table = sweep(y, p, list(TRADEOFF)) if len(y) else []
    if not len(y) or y.sum() == 0:
        return ThresholdChoice(0.5, "no failures on the window: default 0.5", 0.0, 0.0, 0.0,
                               budget, min_precision, table, margin)
    thr, flagged, prec, rec = _operating_points(y, p)   # thr descending, flagged ascending
    if budget > 0:
        aim = budget * (1.0 - margin)
        ok = np.flatnonzero(flagged <= aim + 1e-12)
        i = int(ok[-1]) if len(ok) else -1
        rule = f"alert budget: at most {budget:.0%} of jobs flagged"
        if margin > 0:
            rule += f" ({aim:.0%} on this window, a {margin:.0%} margin for drift)"
        if i < 0:   # even the top score alone exceeds the budget: flag nobody below a tie-break
            return ThresholdChoice(float(np.nextafter(thr[0], np.inf)), rule + " (no score fits)",
                                   0.0, 0.0, 0.0, budget, min_precision, table, margin)
    else:
        i = int(np.flatnonzero(thr == max_f1_threshold(y, p))[0])
        rule = "best F1 (no alert budget)"
    if prec[i] < min_precision:
        better = np.flatnonzero(prec[:i + 1] >= min_precision)
        if not len(better):
            return ThresholdChoice(1.0, f"min precision {min_precision:.2f}: no threshold reaches "
                                        "it, nobody warned", 0.0, 0.0, 0.0, budget, min_precision,
                                   table, margin)
        i = int(better[-1])
        rule = f"min precision {min_precision:.2f} (raised above the budget's threshold)"
    return ThresholdChoice(float(thr[i]), rule, float(flagged[i]), float(prec[i]), float(rec[i]),
                           budget, min_precision, table, margin)


def sweep(y, p, thresholds: List[float]) -> List[Dict[str, float]]:
    """precision/recall/f1/flagged at each threshold (for the report)."""
    return [dict(threshold=float(t), **at_threshold(y, p, t)) for t in thresholds]
