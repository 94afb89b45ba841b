"""The past-only cosine kNN graph and the scoring-time neighbour search (numpy only)."""

import subprocess
import sys

import numpy as np
import pytest

from nomade.errors import ModelError
from nomade.scoring.neighbours import (CHUNK, NeighbourBank, fit_scaler, label_channel,
                                       neighbour_mean, search, topk_bank_major, unit_rows, zscore)
from nomade.train.models.knn import SimilarityGraph, past_neighbours

from neural_fixtures import synthetic_matrix


def _jobs(n, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    submit = np.cumsum(rng.exponential(10.0, n))
    end = submit + rng.lognormal(np.log(200), 1.0, n)
    end[rng.random(n) < 0.05] = np.nan          # never ended / unknown
    return X, submit, end


def _brute(Zu, submit, end, i, lo, k):
    cand = np.arange(lo, len(Zu))
    cand = cand[np.isfinite(end[cand]) & (end[cand] < submit[i])]
    s = Zu[cand] @ Zu[i]
    return np.sort(s)[-k:]


def test_zscore_unknown_is_mean_and_scaler_ignores_nan():
    X = np.array([[1.0, np.nan], [3.0, 5.0], [np.nan, 5.0]], dtype=np.float32)
    mean, std = fit_scaler(X)
    assert mean.tolist() == [2.0, 5.0] and std[1] == 1.0      # constant column -> std 1
    Z = zscore(X, mean, std)
    assert Z.dtype == np.float32 and Z[0, 1] == 0.0 and Z[2, 0] == 0.0 and Z[0, 0] == -1.0


def test_label_channel():
    assert label_channel(np.array([1, 0, -1], dtype=np.int8)).tolist() == [1.0, -1.0, 0.0]


@pytest.mark.parametrize("rows", [50, 40 * CHUNK])   # direct and two-stage top-k
def test_topk_equals_full_sort(rows):
    rng = np.random.default_rng(rows)
    ST = rng.normal(size=(rows, 37)).astype(np.float32)
    ST[rng.random(ST.shape) < 0.3] = -np.inf
    idx, vals = topk_bank_major(ST, 16)
    for q in range(ST.shape[1]):
        want = np.sort(ST[:, q])[-16:]
        assert np.array_equal(np.sort(vals[q]), want)
        assert np.array_equal(ST[idx[q], q], vals[q])


def test_search_matches_brute_force_and_small_bank():
    rng = np.random.default_rng(3)
    B = unit_rows(rng.normal(size=(3000, 8)).astype(np.float32))
    Q = unit_rows(rng.normal(size=(300, 8)).astype(np.float32))
    idx, valid = search(Q, B, 16, block=128)
    assert valid.all()
    for q in range(0, 300, 17):
        assert np.allclose(np.sort(B[idx[q]] @ Q[q]), np.sort(B @ Q[q])[-16:], atol=1e-6)
    idx, valid = search(Q, B[:5], 16)
    assert valid.sum(axis=1).tolist() == [5] * 300
    idx, valid = search(Q, B[:0], 16)
    assert not valid.any()


def test_past_neighbours_ended_before_submit_and_exact():
    X, submit, end = _jobs(6000)
    Zu = unit_rows(zscore(X, *fit_scaler(X)))
    window = 2048
    idx, valid = past_neighbours(Zu, submit, end, k=16, window=window, block=256)
    rows, cols = np.nonzero(valid)
    nb = idx[rows, cols]
    assert np.all(end[nb] < submit[rows])                   # honest: neighbour had ended
    assert np.all(nb < rows)
    assert np.all(nb >= (rows // 256) * 256 - window)        # within the block's window
    for i in (300, 2500, 4097, 5999):
        lo = max(0, (i // 256) * 256 - window)
        got = np.sort(Zu[idx[i][valid[i]]] @ Zu[i])
        assert np.allclose(got, _brute(Zu, submit, end, i, lo, 16), atol=1e-6)
    assert not valid[0].any()                               # the first job has no past


def test_past_neighbours_of_a_subset_equal_those_in_the_full_run():
    X, submit, end = _jobs(3000, seed=5)
    Zu = unit_rows(zscore(X, *fit_scaler(X)))
    full_idx, full_valid = past_neighbours(Zu, submit, end, 8, window=100000)
    pos = np.array([2999, 10, 1500, 2000, 2001])
    idx, valid = past_neighbours(Zu, submit, end, 8, window=100000, positions=pos)
    for r, p in enumerate(pos):
        a = np.sort(Zu[full_idx[p][full_valid[p]]] @ Zu[p])
        b = np.sort(Zu[idx[r][valid[r]]] @ Zu[p])
        assert np.allclose(a, b, atol=1e-6)


def test_bank_aggregate_equals_training_graph_for_the_same_bank():
    """Queries submitted after every bank job ended: the scoring-time search over the shipped bank
    gives the same NBR_MEAN as the training-time graph."""
    fm = synthetic_matrix(1500, seed=2)
    g = SimilarityGraph(k=16, window=10 ** 6).fit_scaler(fm.X)
    T = float(np.nanmax(fm.meta["outcome_time"])) + 1
    bank = g.bank(fm, before=T)
    q = synthetic_matrix(200, seed=9)
    # the full matrix: the bank's jobs, then the queries submitted at T (not ended)
    Xf = np.vstack([fm.X, q.X])
    submit = np.concatenate([fm.submit_time, np.full(200, T)])
    outcome = np.concatenate([fm.meta["outcome_time"], np.full(200, np.nan)])
    Z = g.z(Xf)
    idx, valid = past_neighbours(unit_rows(Z), submit, outcome, 16, 10 ** 6,
                                 positions=np.arange(1500, 1700))
    lab = np.concatenate([label_channel(fm.y), np.zeros(200, np.float32)])
    train_time = neighbour_mean(idx, valid, Z, lab)
    scoring_time = bank.aggregate(q.X)
    assert train_time.shape == (200, fm.X.shape[1] + 1)
    np.testing.assert_allclose(scoring_time, train_time, atol=1e-5)


def test_bank_arrays_roundtrip_without_pickle(tmp_path):
    fm = synthetic_matrix(500)
    g = SimilarityGraph(k=4, window=100).fit_scaler(fm.X)
    bank = g.bank(fm)
    assert bank.Z.shape[0] == 100
    arrays = bank.to_arrays()
    for name, a in arrays.items():
        np.save(tmp_path / f"{name}.npy", a, allow_pickle=False)
    back = NeighbourBank.from_arrays({n: np.load(tmp_path / f"{n}.npy", allow_pickle=False)
                                      for n in arrays})
    assert back.k == 4
    np.testing.assert_array_equal(back.aggregate(fm.X[:50]), bank.aggregate(fm.X[:50]))
    with pytest.raises(ModelError):
        NeighbourBank.from_arrays({})


def test_runtime_halves_import_no_heavy_packages():
    code = ("import sys, nomade.scoring.neighbours, nomade.scoring.sequences; "
            "bad=[m for m in ('torch','torch_geometric','sklearn','lightgbm','xgboost','onnx') "
            "if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_single_job_scoring_path_equals_the_batch_path():
    fm = synthetic_matrix(800, seed=4)
    g = SimilarityGraph(k=16, window=10 ** 6).fit_scaler(fm.X)
    bank = g.bank(fm)
    batch = bank.aggregate(fm.X[:40])
    one_by_one = np.vstack([bank.aggregate(fm.X[i:i + 1]) for i in range(40)])
    np.testing.assert_allclose(one_by_one, batch, atol=1e-5)
