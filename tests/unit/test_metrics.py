"""The numpy metrics against scikit-learn (when installed) and hand-computed cases."""

import numpy as np
import pytest

from nomade.evaluate import metrics as M
from nomade.evaluate.thresholds import budget_threshold, max_f1_threshold


def test_hand_computed_cases():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    assert M.roc_auc(y, p) == pytest.approx(0.75)
    assert M.pr_auc(y, p) == pytest.approx((1.0 + 2 / 3) / 2)
    assert M.brier(y, p) == pytest.approx(np.mean((p - y) ** 2))
    d = M.at_threshold(y, p, 0.35)
    assert (d["precision"], d["recall"]) == (pytest.approx(2 / 3), 1.0)
    assert np.isnan(M.roc_auc(np.zeros(3), np.ones(3)))


def test_ece_perfectly_calibrated_bins_is_zero():
    y = np.array([0] * 9 + [1] + [1] * 9 + [0])
    p = np.array([0.1] * 10 + [0.9] * 10)
    assert M.ece(y, p) == pytest.approx(0.0, abs=1e-12)
    assert M.ece(np.ones(4), np.full(4, 0.5)) == pytest.approx(0.5)


@pytest.mark.train
def test_against_sklearn_with_ties():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    for _ in range(5):
        y = (rng.random(500) < 0.2).astype(int)
        p = np.round(rng.random(500) * 0.5 + 0.4 * y, 2)   # many ties
        assert M.roc_auc(y, p) == pytest.approx(sk.roc_auc_score(y, p), abs=1e-12)
        assert M.pr_auc(y, p) == pytest.approx(sk.average_precision_score(y, p), abs=1e-12)
        assert M.brier(y, p) == pytest.approx(sk.brier_score_loss(y, p), abs=1e-12)


def test_thresholds():
    y = np.array([0, 0, 0, 1, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.75, 0.8, 0.9])
    t = max_f1_threshold(y, p)
    assert M.at_threshold(y, p, t)["f1"] == pytest.approx(8 / 9)
    tb = max_f1_threshold(y, p, max_flagged=0.25)
    assert M.at_threshold(y, p, tb)["flagged"] <= 0.25
    assert np.mean(p >= budget_threshold(p, 0.25)) <= 0.25


def test_per_class_recall():
    cls = np.array(["failed", "timeout", "timeout", "success"], dtype=object)
    r = M.per_class_recall(cls, np.array([0.9, 0.9, 0.1, 0.9]), 0.5)
    assert r == {"failed": 1.0, "timeout": 0.5}
