"""GBDT: deterministic, native LightGBM vs ONNX (1e-5) vs numpy trees, exact Saabas sums."""

import json

import numpy as np
import pytest

from gbdt_fixtures import lite_jobs

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def fitted():
    from nomade.scoring.lite_features import build_lite_rows, lite_names
    from nomade.train.models.gbdt import GBDTModel

    jobs = lite_jobs(4000, seed=5)
    X, _ = build_lite_rows(jobs, True)
    y = np.array([j["y"] for j in jobs], dtype=np.int8)
    m = GBDTModel(rounds=80).fit_arrays(X[:3000], y[:3000], lite_names(True), seed=7)
    return m, X, y


def test_native_vs_onnx_within_1e5(fitted):
    import onnxruntime as ort

    m, X, _ = fitted
    Xt = X.astype(np.float32)
    native = m.predict_arrays(Xt)
    sess = ort.InferenceSession(m.export_onnx(), providers=["CPUExecutionProvider"])
    onnx_p = sess.run(["probability"], {"X": Xt})[0][:, 0]
    assert np.isnan(Xt).any(), "test data must exercise missing values"
    assert np.abs(native - onnx_p).max() < 1e-5, "gbdt: ONNX differs from native LightGBM"


def test_native_vs_numpy_trees(fitted):
    from nomade.scoring.trees import TreeEnsemble

    m, X, _ = fitted
    te = TreeEnsemble(json.loads(json.dumps(m.dump_trees())))
    native = m.predict_arrays(X.astype(np.float32))
    assert np.abs(te.predict_proba(X.astype(np.float32).astype(np.float64)) - native).max() < 1e-9


def test_contributions_sum_to_margin(fitted):
    from nomade.scoring.trees import TreeEnsemble

    m, X, _ = fitted
    te = TreeEnsemble(m.dump_trees())
    Xs = X[:200]
    raw = te.raw(Xs)
    C = te.contributions(Xs)
    assert np.abs(te.bias + C.sum(axis=1) - raw).max() < 1e-9
    r1, c1 = te.contributions_one(list(Xs[17]))
    assert abs(r1 - raw[17]) < 1e-12 and np.abs(c1 - C[17]).max() < 1e-12


def test_deterministic(fitted):
    from nomade.train.models.gbdt import GBDTModel

    m, X, y = fitted
    m2 = GBDTModel(rounds=80).fit_arrays(X[:3000], y[:3000], m.feature_names, seed=7)
    assert m2.dump_trees() == m.dump_trees()


def test_one_class_is_a_model_error():
    from nomade.errors import ModelError
    from nomade.train.models.gbdt import GBDTModel

    with pytest.raises(ModelError, match="one outcome class"):
        GBDTModel(rounds=5).fit_arrays(np.zeros((50, 2)), np.zeros(50, dtype=np.int8), ["a", "b"])
