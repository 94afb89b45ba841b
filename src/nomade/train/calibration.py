"""Probability calibration fitted on a later time slice than the model it calibrates: Platt
(logistic on the logit) or isotonic (pool-adjacent-violators), chosen by Brier score on the
second half of the slice after fitting both on the first half. The fitted map is the runtime's
``nomade.scoring.ensemble.Calibration`` (one implementation of the arithmetic, stored as JSON in
the manifest)."""

from typing import Optional, Tuple

import numpy as np

from ..evaluate.metrics import brier
from ..scoring.ensemble import Calibration, logit

def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float = 1e-3, iters: int = 50,
                 prior: Optional[np.ndarray] = None) -> Tuple[np.ndarray, float]:
    """Newton's method for L2-regularised logistic regression; returns (coef, intercept).
    The penalty ``l2 * n * |coef - prior|^2`` pulls the coefficients toward ``prior`` (default 0);
    the intercept is not penalised."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = X.shape
    A = np.hstack([X, np.ones((n, 1))])
    centre = np.zeros(d + 1)
    if prior is not None:
        centre[:d] = np.asarray(prior, dtype=np.float64)
    w = centre.copy()
    reg = np.full(d + 1, l2 * n)
    reg[-1] = 0.0
    for _ in range(iters):
        z = np.clip(A @ w, -35, 35)
        p = 1 / (1 + np.exp(-z))
        g = A.T @ (p - y) + reg * (w - centre)
        H = (A * (p * (1 - p))[:, None]).T @ A + np.diag(reg + 1e-9)
        step = np.linalg.solve(H, g)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w[:-1], float(w[-1])


def fit_isotonic(x: np.ndarray, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators on the distinct x values: knots (x strictly increasing, y
    non-decreasing) of the map, for np.interp."""
    ux, inv = np.unique(np.asarray(x, dtype=np.float64), return_inverse=True)
    w0 = np.bincount(inv).astype(np.float64)
    v0 = np.bincount(inv, weights=np.asarray(y, dtype=np.float64)) / w0
    vals: list = []
    wts: list = []
    size: list = []
    for v, w in zip(v0, w0):
        vals.append(v); wts.append(w); size.append(1)
        while len(vals) > 1 and vals[-2] >= vals[-1]:
            w2 = wts[-2] + wts[-1]
            vals[-2:] = [(vals[-2] * wts[-2] + vals[-1] * wts[-1]) / w2]
            wts[-2:] = [w2]
            size[-2:] = [size[-2] + size[-1]]
    return ux, np.repeat(np.array(vals), size)


def identity() -> Calibration:
    return Calibration({"kind": "identity"})


def fit_platt(p, y) -> Calibration:
    coef, b = fit_logistic(logit(p)[:, None], y, l2=1e-4)
    return Calibration({"kind": "platt", "a": coef[0], "b": b})


def fit_iso(p, y) -> Calibration:
    kx, ky = fit_isotonic(p, y)
    return Calibration({"kind": "isotonic", "x": kx, "y": ky})


def choose_calibrator(p: np.ndarray, y: np.ndarray, min_pos: int = 20) -> Calibration:
    """Fit Platt and isotonic on the first half (in time order), keep the one with the lower
    Brier score on the second half, refit it on the whole slice. Too few positives: Platt only,
    or identity."""
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y).astype(np.int64)
    if y.sum() < 5 or y.sum() == len(y):
        return identity()
    h = len(p) // 2
    if y[:h].sum() < min_pos or y[h:].sum() < min_pos:
        return fit_platt(p, y)
    scores = {}
    for name, fit in (("platt", fit_platt), ("isotonic", fit_iso)):
        scores[name] = brier(y[h:], fit(p[:h], y[:h])(p[h:]))
    best = min(scores, key=scores.get)
    return fit_platt(p, y) if best == "platt" else fit_iso(p, y)
