"""Native torch vs ONNX (onnxruntime) for the similarity GNN, the autoencoder and the LSTM:
same inputs, outputs within 1e-5, on thousands of jobs. The ONNX side gets its extra inputs the
way the scoring path builds them (numpy: nomade.scoring.neighbours / sequences)."""

import numpy as np
import pytest

pytest.importorskip("torch_geometric")
pytestmark = pytest.mark.train

import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

from nomade.scoring.neighbours import NeighbourBank  # noqa: E402
from nomade.scoring.sequences import SequenceTable  # noqa: E402
from nomade.train.models.autoencoder import Autoencoder  # noqa: E402
from nomade.train.models.gnn import SimilarityGNN  # noqa: E402
from nomade.train.models.lstm import SequenceLSTM, SequenceNet, history_sequences  # noqa: E402
from nomade.train.models.torch_training import ZScore, onnx_bytes  # noqa: E402

from neural_fixtures import split, synthetic_matrix  # noqa: E402

TOL = 1e-5


@pytest.fixture(scope="module")
def data():
    fm = synthetic_matrix(4000, seed=11)
    return split(fm, 0.5)          # 2000 training jobs, 2000 scored jobs


def _session(blob):
    return ort.InferenceSession(blob, providers=["CPUExecutionProvider"])


def test_gnn_onnx_matches_torch_geometric(data):
    tr, te = data
    m = SimilarityGNN(epochs=3).fit(tr)
    native = m.predict(te)
    onnx = _session(m.export_onnx()).run(None, {"X": te.X, "NBR_MEAN": m.neighbour_input(te)})[0]
    np.testing.assert_allclose(onnx, native, atol=TOL, err_msg="gnn: onnx vs torch")
    # the shipped bank, loaded as the scorer does, feeds the same ONNX graph
    bank = NeighbourBank.from_arrays(m.export_arrays())
    p = _session(m.export_onnx()).run(None, {"X": te.X[:100], "NBR_MEAN": bank.aggregate(te.X[:100])})[0]
    assert p.shape == (100,) and np.all((p >= 0) & (p <= 1))


def test_autoencoder_onnx_outputs_the_error(data):
    tr, te = data
    ae = Autoencoder(epochs=5).fit(tr)
    onnx = _session(ae.export_onnx()).run(None, {"X": te.X})[0]
    np.testing.assert_allclose(onnx, ae.predict(te), atol=TOL, rtol=1e-5,
                               err_msg="autoencoder: onnx vs torch")


def test_lstm_onnx_matches_torch_with_the_shipped_table(data):
    tr, te = data
    m = SequenceLSTM(epochs=3).fit(tr)
    seq = history_sequences(te)[:, -8:]
    sess = _session(m.export_onnx())
    onnx = sess.run(None, {"SEQ": seq, "X": te.X})[0]
    np.testing.assert_allclose(onnx, m.predict(te), atol=TOL, err_msg="lstm: onnx vs torch")
    # scoring path: the bundle's per-user table at the end of training
    tab = SequenceTable.from_arrays(m.export_arrays())
    T = np.full(len(te), tr.submit_time.max() + 1e-9)
    s = tab.sequences(te.user, T)
    np.testing.assert_allclose(sess.run(None, {"SEQ": s, "X": te.X})[0],
                               m.predict_arrays(s, te.X), atol=TOL)
    one = sess.run(None, {"SEQ": s[:1], "X": te.X[:1]})[0]        # batch of one
    assert one.shape == (1,)


def test_sequence_net_takes_any_series_length():
    """The recorder's metric series: (n, T, f) with another f and T, dynamic in the ONNX graph."""
    torch.manual_seed(0)
    d, f = 5, 3
    net = SequenceNet(f, ZScore(np.zeros(d, np.float32), np.ones(d, np.float32)), hidden=8)
    blob = onnx_bytes(net, (torch.zeros(2, 10, f), torch.zeros(2, d)), ["SEQ", "X"], ["logit"],
                      {"SEQ": {0: "n", 1: "T"}, "X": {0: "n"}, "logit": {0: "n"}})
    sess = _session(blob)
    rng = np.random.default_rng(0)
    for n, T in ((1, 4), (33, 60)):
        seq = rng.normal(size=(n, T, f)).astype(np.float32)
        x = rng.normal(size=(n, d)).astype(np.float32)
        with torch.no_grad():
            want = net(torch.from_numpy(seq), torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(sess.run(None, {"SEQ": seq, "X": x})[0], want, atol=TOL)
