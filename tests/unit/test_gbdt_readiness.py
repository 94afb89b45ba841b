"""Readiness is measured from a temporal learning curve, and says what is missing."""

import numpy as np
import pytest

from gbdt_fixtures import lite_jobs

pytestmark = pytest.mark.train


def _data(n):
    from nomade.scoring.lite_features import build_lite_rows, lite_names

    jobs = lite_jobs(n, seed=9)
    X, _ = build_lite_rows(jobs, True)
    return X, np.array([j["y"] for j in jobs], dtype=np.int8), lite_names(True)


def test_learning_curve_shape_and_verdict():
    from nomade.train.readiness import FRACTIONS, learning_curve

    X, y, names = _data(3000)
    r = learning_curve("gbdt_lite", X, y, names, seed=7, rounds=20)
    assert len(r.curve) == len(FRACTIONS)
    sizes = [p["train_jobs"] for p in r.curve]
    assert sizes == sorted(sizes) and sizes[-1] == int(3000 * 0.85)
    assert r.gain_per_doubling == pytest.approx(r.curve[-1]["pr_auc"] - r.curve[-2]["pr_auc"])
    assert r.verdict.startswith("ready") == r.ready
    assert "not enough" in r.verdict or "ready" in r.verdict


def test_too_few_failures_is_not_ready():
    from nomade.train.readiness import learning_curve

    X, y, names = _data(400)
    r = learning_curve("gbdt_lite", X, y, names, seed=7, rounds=10)
    assert not r.ready and "not enough" in r.verdict


def test_stacking_readiness_counts_the_stack_window():
    from nomade.train.readiness import stacking_readiness

    y = np.zeros(10000, dtype=np.int8)
    y[::4] = 1
    assert stacking_readiness(y).ready
    few = np.zeros(1000, dtype=np.int8)
    few[:50] = 1
    r = stacking_readiness(few)
    assert not r.ready and "fixed weights" in r.verdict
