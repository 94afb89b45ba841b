"""LSTM over the user's last K ended jobs, and the runtime sequence builder."""

import numpy as np
import pytest

from nomade.scoring.sequences import (N_STEP, OUTCOMES, JobFields, SequenceTable, from_rows,
                                      outcome_codes, step_features)

from neural_fixtures import history_index, split, synthetic_matrix


def _fields(fm):
    return JobFields.of_matrix(fm.X, fm.names, fm.cls, fm.start_time, fm.end_time,
                               fm.meta["outcome_time"])


def test_step_features_one_hot_ratio_and_padding():
    code = outcome_codes(["success", "timeout", None, "cancelled_other"]).reshape(1, 4)
    assert code.tolist() == [[0, 2, -1, 5]]
    present = np.array([[True, True, False, True]])
    f = step_features(code, np.full((1, 4), 50.0), np.full((1, 4), np.log1p(100.0)),
                      np.full((1, 4), 3.0), np.full((1, 4), 0.0), np.array([7200.0]), present)
    assert f.shape == (1, 4, N_STEP)
    assert f[0, 0, 0] == 1 and f[0, 1, 2] == 1 and f[0, 3, 5] == 1
    assert not f[0, 2].any()                                  # missing step is all zero
    j = len(OUTCOMES)
    assert f[0, 0, j] == pytest.approx(np.log1p(0.5), rel=1e-5) and f[0, 0, j + 1] == 1
    assert f[0, 0, j + 4] == pytest.approx(np.log1p(2.0), rel=1e-5) and f[0, 0, j + 5] == 1


def test_table_at_scoring_time_equals_history_index_in_training():
    """The shipped per-user table, built at moment T, gives the same tensor as the training-time
    history_idx of a job scored at T."""
    fm = synthetic_matrix(1200, seed=3)
    fields = _fields(fm)
    for i in (300, 700, 1199):
        T = float(fm.submit_time[i])
        tab = SequenceTable.build(fields, fm.user, k=8, before=T)
        want = from_rows(fields, fm.history_idx[i:i + 1, :8], np.array([T]))
        got = tab.sequences([fm.user[i]], np.array([T]))
        np.testing.assert_allclose(got, want, atol=1e-6)
        assert want[0, -1, -1] == 1.0                       # the newest job is the last step


def test_table_refresh_and_arrays_roundtrip(tmp_path):
    fm = synthetic_matrix(600, seed=1)
    tab = SequenceTable.build(_fields(fm), fm.user, k=4)
    tab.add_end("u3", "oom", 100.0, np.log1p(1000.0), 8.0, 1e12)
    tab.add_end("newuser", "success", 10.0, np.log1p(100.0), 1.0, 1e12)
    s = tab.sequences(["u3", "newuser", "nobody"], np.array([1e12 + 60] * 3))
    assert s[0, -1, 3] == 1.0 and s[1, -1, 0] == 1.0 and not s[2].any()
    arrays = tab.to_arrays()
    for name, a in arrays.items():
        np.save(tmp_path / f"{name}.npy", a, allow_pickle=False)
    back = SequenceTable.from_arrays({n: np.load(tmp_path / f"{n}.npy", allow_pickle=False)
                                      for n in arrays})
    np.testing.assert_array_equal(back.sequences(["u3"], np.array([2e12])),
                                  tab.sequences(["u3"], np.array([2e12])))


def test_reference_history_index_is_honest():
    fm = synthetic_matrix(400, seed=5)
    h = history_index(fm.user, fm.submit_time, fm.end_time, 8)
    r, c = np.nonzero(h >= 0)
    assert np.all(fm.end_time[h[r, c]] < fm.submit_time[r])


@pytest.mark.train
def test_lstm_fits_predicts_and_ships_its_table():
    pytest.importorskip("torch")
    from nomade.train.models.lstm import SequenceLSTM
    fm = synthetic_matrix(2000, seed=6)
    tr, te = split(fm, 0.75)
    m = SequenceLSTM(epochs=4).fit(tr)
    p = m.predict(te)
    assert p.shape == (len(te),) and np.all((p > 0) & (p < 1))
    arrays = m.export_arrays()
    assert arrays["seq_code"].shape[1] == 8 and arrays["seq_users"].dtype.kind == "U"
    np.testing.assert_array_equal(SequenceLSTM(epochs=4).fit(tr).predict(te), p)
