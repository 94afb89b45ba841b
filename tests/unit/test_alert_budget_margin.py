"""The alert budget holds out of sample: the threshold is chosen on a training-side window with a
margin (nomade.risk_scale.BUDGET_MARGIN), so that when the next jobs' scores drift upward the
share of them flagged stays within the budget; and the Lua model's threshold in the evaluation is
chosen on its own calibration window, from the model that is tested (as the bundle's is)."""

import numpy as np
import pytest

from nomade.evaluate.thresholds import choose_alert_threshold
from nomade.risk_scale import BUDGET_MARGIN, DEFAULT_BUDGET, AlertPolicy


def _window(n, seed, shift=0.0):
    """Scores whose failure probability rises with the score; ``shift`` moves every score up
    (a later month with more risky-looking jobs)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n) + shift
    p = 1 / (1 + np.exp(-(z - 1.5)))
    y = (rng.random(n) < p).astype(int)
    return y, p


def test_default_policy_keeps_a_margin():
    assert 0 < BUDGET_MARGIN < 0.5 and AlertPolicy().margin == BUDGET_MARGIN
    y, p = _window(20000, 1)
    c = choose_alert_threshold(y, p, DEFAULT_BUDGET, 0.0, BUDGET_MARGIN)
    aim = DEFAULT_BUDGET * (1 - BUDGET_MARGIN)
    assert aim - 0.001 < c.flagged <= aim
    assert "margin for drift" in c.rule and c.as_dict()["margin"] == BUDGET_MARGIN
    assert c.budget == DEFAULT_BUDGET


def test_no_margin_is_the_plain_budget():
    y, p = _window(20000, 1)
    c = choose_alert_threshold(y, p, 0.10, 0.0)
    assert 0.099 < c.flagged <= 0.10 and "margin" not in c.rule


def test_best_f1_ignores_the_margin():
    y, p = _window(5000, 2)
    assert (choose_alert_threshold(y, p, 0.0, 0.0, 0.2).threshold
            == choose_alert_threshold(y, p, 0.0, 0.0).threshold)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_budget_holds_on_the_next_window_under_drift(seed):
    """A drift that lifts the flagged share of a plain budget threshold from 10 % to ~12 % (as
    measured between a fold's stack window and its test window on the shared traces) stays
    within 10 % with the default margin."""
    y, p = _window(20000, seed)
    y_next, p_next = _window(20000, seed + 100, shift=0.12)
    plain = choose_alert_threshold(y, p, 0.10, 0.0).threshold
    kept = choose_alert_threshold(y, p, 0.10, 0.0, BUDGET_MARGIN).threshold
    assert np.mean(p_next >= plain) > 0.11           # the drift breaks the plain budget ...
    assert np.mean(p_next >= kept) <= 0.10           # ... and the margin absorbs it


def test_pipeline_alert_choice_uses_the_policy_margin():
    from nomade.train.pipeline import alert_choice

    y, p = _window(20000, 6)
    c = alert_choice(y, p, AlertPolicy(0.10, 0.0))
    assert c.flagged <= 0.10 * (1 - BUDGET_MARGIN) and c.margin == BUDGET_MARGIN


class _Calibrated:
    """A side model with its own calibration window (like LiteGBDT)."""
    calibrated = True

    def __init__(self, rows):
        self.cal_rows = np.asarray(rows)

    def predict(self, fm):
        return fm.X[:, 0].astype(np.float64)


def test_side_model_threshold_comes_from_its_own_calibration_window():
    from nomade.features.matrix import FeatureMatrix
    from nomade.train.evaluation import _policy, _side_threshold

    n = 1000
    rng = np.random.default_rng(8)
    x = rng.random(n)
    obj = np.array(["a"] * n, dtype=object)
    t = np.arange(n, dtype=np.float64)
    fm = FeatureMatrix(X=x[:, None].astype(np.float32), names=["s"], categorical=[], stage="submit",
                       cluster=obj, job_id=np.array([str(i) for i in range(n)], dtype=object), user=obj,
                       submit_time=t, start_time=t, end_time=t, y=(x > 0.7).astype(np.int8), cls=obj)
    alert_at = _policy(0.10, 0.0, BUDGET_MARGIN)
    got = _side_threshold(_Calibrated(np.arange(800, 1000)), fm, lambda: -1.0, alert_at)
    cal = x[800:].astype(np.float32)
    assert np.mean(cal >= got) <= 0.08 + 1e-9 and np.mean(cal >= got) > 0.07
    uncal = _Calibrated(np.arange(800, 1000))
    uncal.calibrated = False   # the ensemble's raw "lite" base: the part-A fallback
    assert _side_threshold(uncal, fm, lambda: -1.0, alert_at) == -1.0
