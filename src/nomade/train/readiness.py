"""Is this site's data enough for a site model? Measured, not a formula: for the tree models
(the Lua model and the ensemble's GBDT), a learning curve over temporal folds - train on the
newest 1/8, 1/4, 1/2 and all of the past window, test on the newest window - and the PR-AUC gain
of the last doubling. A model is "ready" when that gain is below ``GAIN_READY`` (more data of the
same kind no longer helps much) and the test window holds at least ``MIN_TEST_FAILURES``
failures. Also counted: whether the ensemble's stack window has enough failures to learn its
weights, and whether the recorder has collected enough ended jobs for the series model."""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from ..scoring import lite_features as lite
from .models.gbdt import GBDTModel
from .pipeline import windows
from .requests import lite_requests

GAIN_READY = 0.01
MIN_TEST_FAILURES = 50
FRACTIONS = (0.125, 0.25, 0.5, 1.0)


@dataclass
class Readiness:
    model: str
    ready: bool
    verdict: str
    curve: List[Dict[str, float]] = field(default_factory=list)
    gain_per_doubling: Optional[float] = None

    def to_json(self) -> Dict[str, Any]:
        return {"model": self.model, "ready": self.ready, "verdict": self.verdict,
                "gain_per_doubling": self.gain_per_doubling, "curve": self.curve}


def learning_curve(name: str, X: np.ndarray, y: np.ndarray, names: List[str], seed: int,
                   rounds: int = 100) -> Readiness:
    from sklearn.metrics import average_precision_score

    w = windows(y)
    past, test = w["refit"], w["test"]
    n_fail = int((y[test] == 1).sum())
    curve = []
    for f in FRACTIONS:
        idx = past[len(past) - max(int(len(past) * f), 1):]
        if len(np.unique(y[idx])) < 2 or len(np.unique(y[test])) < 2:
            continue
        m = GBDTModel(name=name, rounds=rounds).fit_arrays(X[idx], y[idx], names, seed)
        curve.append({"train_jobs": int(len(idx)),
                      "pr_auc": float(average_precision_score(y[test], m.predict_arrays(X[test])))})
    if len(curve) < 2:
        return Readiness(name, False, "not enough: too few labelled jobs of both outcomes to measure", curve)
    gain = curve[-1]["pr_auc"] - curve[-2]["pr_auc"]
    if n_fail < MIN_TEST_FAILURES:
        return Readiness(name, False, f"not enough: only {n_fail} failures in the newest window "
                         f"(need {MIN_TEST_FAILURES} to measure)", curve, gain)
    if gain >= GAIN_READY:
        return Readiness(name, False, f"not enough: PR-AUC still gains {gain:+.3f} per doubling of "
                         "history; keep collecting (the default bundle scores meanwhile)", curve, gain)
    return Readiness(name, True, f"ready: PR-AUC {curve[-1]['pr_auc']:.3f}, last doubling "
                     f"{gain:+.3f}", curve, gain)


def measure_readiness(store, cfg, cluster: Optional[str] = None) -> List[Readiness]:
    from ..features.build import build_matrix
    from .pipeline import load_training_table

    seed = int(cfg.get("train.seed"))
    jt, y, _ = load_training_table(store, cfg, cluster)
    from ..features.build import assumed_wait_s
    X_lite, _ = lite.build_lite_rows(lite_requests(jt, y, assumed_wait_s(cfg)), True)
    out = [learning_curve("gbdt_lite", X_lite, y, lite.lite_names(True), seed)]
    fm = build_matrix(jt, "submit", cfg)
    out.append(learning_curve("gbdt", fm.X, y, fm.names, seed))
    out.append(stacking_readiness(y))
    out.append(series_readiness(store, cfg))
    return out


def stacking_readiness(y: np.ndarray) -> Readiness:
    """Can the ensemble learn its stacking weights? It needs MIN_STACK_POSITIVES failures and
    successes in its stack window (the newest 30 % of the labelled history)."""
    from .ensemble import MIN_STACK_POSITIVES

    lab = y[(y == 0) | (y == 1)]
    win = lab[int(len(lab) * 0.7):]
    fails, oks = int((win == 1).sum()), int((win == 0).sum())
    if min(fails, oks) >= MIN_STACK_POSITIVES:
        return Readiness("ensemble", True, f"ready: the stack window holds {fails} failures and "
                         f"{oks} successes (weights are learned)")
    return Readiness("ensemble", False, f"not enough: the stack window holds {fails} failures and "
                     f"{oks} successes (need {MIN_STACK_POSITIVES} of each); the original design's "
                     "fixed weights are used meanwhile")


def series_readiness(store, cfg) -> Readiness:
    """Is there enough recorded history for the in-run series model?"""
    from .series_model import MIN_FAILED, MIN_JOBS, load_series

    series = load_series(store, cfg.get("cluster") or None, bool(cfg.get("model.owner_cancel_is_failure")))
    failed = sum(1 for s in series if s[1] == 1)
    if len(series) >= MIN_JOBS and failed >= MIN_FAILED:
        return Readiness("series", True, f"ready: {len(series)} recorded ended jobs, {failed} failed")
    return Readiness("series", False, f"not enough: {len(series)} recorded ended jobs, {failed} failed "
                     f"(need {MIN_JOBS} and {MIN_FAILED}); run `nomade record` on the compute nodes "
                     "and `nomade ingest spool`")
