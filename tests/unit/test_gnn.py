"""Similarity GNN (torch_geometric GraphSAGE over the past-only kNN graph)."""

import numpy as np
import pytest

pytest.importorskip("torch_geometric")
pytestmark = pytest.mark.train

import torch  # noqa: E402

from nomade.train.models.gnn import SimilarityGNN, batch_graph  # noqa: E402

from neural_fixtures import split, synthetic_matrix  # noqa: E402


@pytest.fixture(scope="module")
def trained():
    fm = synthetic_matrix(2500, seed=1)
    tr, te = split(fm, 0.75)
    return SimilarityGNN(epochs=6, max_train_rows=2000).fit(tr, seed=7), tr, te


def _auc(y, p):
    pos, neg = p[y == 1], p[y == 0]
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def test_gnn_learns_from_similar_past_jobs(trained):
    model, _, te = trained
    p = model.predict(te)
    assert p.dtype == np.float64 and p.shape == (len(te),)
    assert np.all((p >= 0) & (p <= 1))
    ok = te.y >= 0
    assert _auc(te.y[ok], p[ok]) > 0.65
    assert model.log["train_rows"] <= 2000


def test_training_is_deterministic(trained):
    model, tr, te = trained
    again = SimilarityGNN(epochs=6, max_train_rows=2000).fit(tr, seed=7)
    np.testing.assert_array_equal(again.predict(te), model.predict(te))


def test_numpy_neighbour_mean_equals_torch_geometric_aggregation(trained):
    """NBR_MEAN computed in numpy (the scoring path) equals SAGEConv's mean aggregation over the
    training-time graph (with the label channel: +1 failed, -1 succeeded)."""
    model, _, te = trained
    _, idx, valid, src = model._inputs(te)
    x_src, ei = batch_graph(idx, valid, src)
    pyg = model.net.conv.aggr_module(x_src[ei[0]], ei[1], dim_size=len(te)).numpy()
    np.testing.assert_allclose(model.neighbour_input(te), pyg, atol=1e-5)
    assert set(np.unique(src[:, -1])) <= {-1.0, 0.0, 1.0}


def test_no_neighbour_has_a_future_outcome(trained):
    model, _, te = trained
    full = te.meta["parent"]
    _, idx, valid, _ = model._inputs(te)
    rows, cols = np.nonzero(valid)
    assert np.all(full.meta["outcome_time"][idx[rows, cols]] < te.submit_time[rows])


def test_bank_holds_only_jobs_ended_before_the_training_window_closed(trained):
    model, tr, _ = trained
    arrays = model.export_arrays()
    assert set(arrays) == {"knn_mean", "knn_std", "knn_bank_z", "knn_bank_label", "knn_k"}
    full = tr.meta["parent"]
    cut = tr.submit_time.max()
    n_ended = int((full.meta["outcome_time"] < cut).sum())
    assert arrays["knn_bank_z"].shape == (min(n_ended, model.graph.window), tr.X.shape[1])
    assert all(a.dtype != object for a in arrays.values())
    assert torch.get_num_threads() == 1
