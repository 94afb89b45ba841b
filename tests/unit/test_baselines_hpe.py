"""The HPE-recipe baseline (gbdt_hpe) gets every request field known at submit - the time limit,
the partition, the QOS/queue, the job name as the features encode it - and nothing else: no
history of past jobs, no outcome."""

import numpy as np
import pytest

from nomade.features.matrix import FeatureMatrix
from nomade.features.schema import CATEGORICAL, HISTORY_NAMES, REQUEST_NAMES, feature_names
from nomade.train.baselines import HPE_FEATURES

pytestmark = pytest.mark.train   # xgboost


def test_hpe_features_are_every_request_field_and_no_history():
    assert set(HPE_FEATURES) == set(REQUEST_NAMES)
    assert {"timelimit_log", "partition_code", "qos_code", "name_code"} <= set(HPE_FEATURES)
    assert not set(HPE_FEATURES) & set(HISTORY_NAMES)


def _matrix(signal: str, n: int = 4000, seed: int = 5) -> FeatureMatrix:
    """Random submit features; the job fails exactly when ``signal`` is high."""
    rng = np.random.default_rng(seed)
    names = feature_names("submit")
    X = rng.normal(size=(n, len(names))).astype(np.float32)
    for c in CATEGORICAL:   # integer codes, as the vocabulary gives them
        X[:, names.index(c)] = rng.integers(0, 40, size=n)
    col = X[:, names.index(signal)]
    y = (col > np.quantile(col, 0.75)).astype(np.int8)
    obj = np.array(["x"] * n, dtype=object)
    t = np.arange(n, dtype=np.float64)
    return FeatureMatrix(X=X, names=names, categorical=list(CATEGORICAL), stage="submit",
                         cluster=obj, job_id=np.array([str(i) for i in range(n)], dtype=object),
                         user=obj, submit_time=t, start_time=t, end_time=t + 1, y=y,
                         cls=np.where(y == 1, "failed", "success").astype(object))


@pytest.mark.parametrize("signal", ["timelimit_log", "partition_code", "qos_code", "name_code",
                                    "account_code"])
def test_hpe_baseline_uses_the_request_field(signal):
    pytest.importorskip("xgboost")
    from nomade.evaluate.metrics import roc_auc
    from nomade.train.baselines import GbdtHpeBaseline
    from nomade.train.ensemble import subset

    fm = _matrix(signal)
    half = len(fm) // 2
    model = GbdtHpeBaseline(rounds=40).fit(subset(fm, np.arange(half)))
    test = subset(fm, np.arange(half, len(fm)))
    assert roc_auc(test.y, model.predict(test)) > 0.95, signal


def test_hpe_baseline_ignores_history_features():
    pytest.importorskip("xgboost")
    from nomade.evaluate.metrics import roc_auc
    from nomade.train.baselines import GbdtHpeBaseline
    from nomade.train.ensemble import subset

    fm = _matrix("u_fail_rate")
    half = len(fm) // 2
    model = GbdtHpeBaseline(rounds=40).fit(subset(fm, np.arange(half)))
    test = subset(fm, np.arange(half, len(fm)))
    assert roc_auc(test.y, model.predict(test)) < 0.6
