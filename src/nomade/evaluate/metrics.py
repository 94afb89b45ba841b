"""Binary-classification metrics in numpy: ROC-AUC, PR-AUC (average precision), Brier score,
expected calibration error, precision/recall/F1 at a threshold, recall per failure class.
Rows with y < 0 (no label) must be removed by the caller."""

from typing import Dict, Optional, Sequence

import numpy as np


def _check(y: np.ndarray, p: np.ndarray):
    y = np.asarray(y).astype(np.int64)
    p = np.asarray(p, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and scores {p.shape} differ in shape")
    return y, p


def roc_auc(y, p) -> float:
    """Area under the ROC curve (ties get half credit, via average ranks); NaN with one class."""
    y, p = _check(y, p)
    npos = int(y.sum())
    nneg = len(y) - npos
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    ps = p[order]
    ranks = np.empty(len(p), dtype=np.float64)
    # average ranks over ties
    bounds = np.flatnonzero(np.diff(ps)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(ps)]])
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y == 1].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def pr_auc(y, p) -> float:
    """Average precision: sum over thresholds of (R_k - R_{k-1}) * P_k (as scikit-learn);
    tied scores form one threshold. NaN without positives."""
    y, p = _check(y, p)
    npos = int(y.sum())
    if npos == 0:
        return float("nan")
    order = np.argsort(-p, kind="mergesort")
    ys, ps = y[order], p[order]
    tp = np.cumsum(ys)
    fp = np.cumsum(1 - ys)
    last = np.concatenate([np.flatnonzero(np.diff(ps)), [len(ps) - 1]])
    tp, fp = tp[last], fp[last]
    precision = tp / (tp + fp)
    recall = tp / npos
    prev = np.concatenate([[0.0], recall[:-1]])
    return float(np.sum((recall - prev) * precision))


def brier(y, p) -> float:
    y, p = _check(y, p)
    return float(np.mean((p - y) ** 2)) if len(y) else float("nan")


def ece(y, p, bins: int = 10) -> float:
    """Expected calibration error over ``bins`` equal-width probability bins (weighted by the
    share of rows in each bin)."""
    y, p = _check(y, p)
    if not len(y):
        return float("nan")
    idx = np.clip((p * bins).astype(np.int64), 0, bins - 1)
    cnt = np.bincount(idx, minlength=bins).astype(np.float64)
    conf = np.bincount(idx, weights=p, minlength=bins)
    acc = np.bincount(idx, weights=y.astype(np.float64), minlength=bins)
    nz = cnt > 0
    return float(np.sum(np.abs(acc[nz] - conf[nz])) / len(y))


def reliability(y, p, bins: int = 10):
    """(mean predicted, observed rate, count) per non-empty bin, for calibration plots."""
    y, p = _check(y, p)
    idx = np.clip((p * bins).astype(np.int64), 0, bins - 1)
    cnt = np.bincount(idx, minlength=bins).astype(np.float64)
    conf = np.bincount(idx, weights=p, minlength=bins)
    acc = np.bincount(idx, weights=y.astype(np.float64), minlength=bins)
    nz = cnt > 0
    return conf[nz] / cnt[nz], acc[nz] / cnt[nz], cnt[nz]


def at_threshold(y, p, threshold: float) -> Dict[str, float]:
    """precision, recall, f1 and the share of jobs flagged when alerting at p >= threshold."""
    y, p = _check(y, p)
    flag = p >= threshold
    tp = float(np.sum(flag & (y == 1)))
    fp = float(np.sum(flag & (y == 0)))
    fn = float(np.sum(~flag & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "flagged": float(flag.mean()) if len(flag) else 0.0}


def per_class_recall(cls: Sequence, p, threshold: float,
                     classes: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """Recall at the threshold within each failure class present (class name -> recall)."""
    cls = np.asarray(cls, dtype=object)
    p = np.asarray(p, dtype=np.float64)
    out: Dict[str, float] = {}
    names = classes if classes is not None else sorted({c for c in cls if c not in (None, "success")})
    for c in names:
        m = cls == c
        if m.any():
            out[c] = float(np.mean(p[m] >= threshold))
    return out


def summary(y, p, threshold: float, cls=None) -> Dict[str, object]:
    """Every metric the evaluation reports for one model on one test set."""
    y, p = _check(y, p)
    d: Dict[str, object] = {"roc_auc": roc_auc(y, p), "pr_auc": pr_auc(y, p), "brier": brier(y, p),
                            "ece": ece(y, p)}
    d.update(at_threshold(y, p, threshold))
    d["n_test"] = int(len(y))
    d["positive_rate"] = float(y.mean()) if len(y) else float("nan")
    d["per_class_recall"] = per_class_recall(cls, p, threshold) if cls is not None else {}
    return d
