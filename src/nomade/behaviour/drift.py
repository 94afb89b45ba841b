"""Drift of job behaviour: the recent window (``behaviour.drift_days``, default 30) against the
training window before it (``behaviour.train_days``), per feature: the population stability
index over the training window's deciles (the statistic compared with
``behaviour.drift_threshold``) and the two-sample Kolmogorov-Smirnov distance (reported).
Written as metrics ``behaviour.drift`` (label feature) through ``store.metrics.write_cycle`` so
that an alert rule can raise it; ``behaviour.anomaly_share`` is the share of recent jobs the
profile mixture finds anomalous."""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

DAY = 86400.0
PSI_EPS = 1e-4


@dataclass
class FeatureDrift:
    feature: str
    psi: Optional[float]
    ks: Optional[float]
    n_train: int
    n_recent: int
    drifted: bool

    def as_dict(self) -> Dict[str, object]:
        return dict(self.__dict__)


def psi(train: np.ndarray, recent: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``recent`` against ``train`` on train's quantile bins."""
    edges = np.unique(np.quantile(train, np.linspace(0, 1, bins + 1)))
    if edges.size < 2:      # a constant training window: two bins, "that value" and "another"
        p = np.array([1.0, 0.0])
        eq = float(np.mean(recent == edges[0]))
        q = np.array([eq, 1.0 - eq])
    else:
        inner = edges[1:-1]
        p = np.bincount(np.searchsorted(inner, train, side="right"), minlength=edges.size - 1) / train.size
        q = np.bincount(np.searchsorted(inner, recent, side="right"), minlength=edges.size - 1) / recent.size
    p, q = np.maximum(p, PSI_EPS), np.maximum(q, PSI_EPS)
    return float(((q - p) * np.log(q / p)).sum())


def ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov distance (largest gap between the empirical CDFs)."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, grid, side="right") / a.size
                               - np.searchsorted(b, grid, side="right") / b.size)))


def feature_drift(X: np.ndarray, names: Sequence[str], end_time: np.ndarray, now: float, *,
                  recent_days: float = 30.0, train_days: float = 180.0, threshold: float = 0.2,
                  min_count: int = 20) -> List[FeatureDrift]:
    """Per feature, drift of the jobs ended in (now - recent_days, now] against those ended in
    the ``train_days`` before. A feature with fewer than ``min_count`` known values on a side
    gets no statistic."""
    cut = now - recent_days * DAY
    recent = (end_time > cut) & (end_time <= now)
    train = (end_time <= cut) & (end_time > cut - train_days * DAY)
    out = []
    for j, name in enumerate(names):
        x = X[:, j]
        a, b = x[train & np.isfinite(x)], x[recent & np.isfinite(x)]
        if a.size < min_count or b.size < min_count:
            out.append(FeatureDrift(name, None, None, int(a.size), int(b.size), False))
            continue
        p = psi(a, b)
        out.append(FeatureDrift(name, round(p, 6), round(ks(a, b), 6), int(a.size), int(b.size),
                                p >= threshold))
    return out


def record(store, cluster: str, drifts: Sequence[FeatureDrift], ts: float,
           anomaly_share: Optional[float] = None) -> int:
    """Write ``behaviour.drift`` per feature that has a statistic (and ``behaviour.anomaly_share``)
    as one cycle of source ``behaviour``. Returns how many metrics were written."""
    from ..collectors.base import Metric
    from ..store.metrics import write_cycle
    metrics = [Metric.of("behaviour.drift", d.psi, feature=d.feature) for d in drifts if d.psi is not None]
    if anomaly_share is not None:
        metrics.append(Metric.of("behaviour.anomaly_share", anomaly_share))
    return write_cycle(store, cluster, "behaviour", metrics, ts)
