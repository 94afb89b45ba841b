"""Autoencoder trained on successfully completed jobs; its score is a reconstruction error."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.train

from nomade.train.models.autoencoder import Autoencoder  # noqa: E402

from neural_fixtures import split, synthetic_matrix  # noqa: E402


@pytest.fixture(scope="module")
def data():
    fm = synthetic_matrix(2000, seed=4)
    return split(fm, 0.75)


def test_returns_a_raw_error_not_a_probability(data):
    tr, te = data
    ae = Autoencoder(epochs=10).fit(tr)
    assert ae.is_probability is False
    err = ae.predict(te)
    assert err.shape == (len(te),) and err.dtype == np.float64 and np.all(err >= 0)
    assert np.isfinite(err).all()                       # NaN features are handled


def test_trained_on_completed_jobs_only(data):
    """Make failed jobs' features wild: a model that saw them would fit them; ours does not."""
    tr, te = data
    X = tr.X.copy()
    X[tr.y == 1, 0] = 1e4
    tr2 = tr.rows(np.arange(len(tr)))
    tr2.X = X
    ae = Autoencoder(epochs=10).fit(tr2)
    assert ae.log["train_rows"] == float((tr.y == 0).sum())
    weird = te.X.copy()
    weird[:, 0] = 1e4
    assert np.median(ae.predict(te.rows(np.arange(len(te))))) < np.median(
        _predict_x(ae, te, weird))


def _predict_x(ae, te, X):
    t = te.rows(np.arange(len(te)))
    t.X = X
    return ae.predict(t)


def test_deterministic(data):
    tr, te = data
    a = Autoencoder(epochs=3).fit(tr, seed=3).predict(te)
    b = Autoencoder(epochs=3).fit(tr, seed=3).predict(te)
    np.testing.assert_array_equal(a, b)
