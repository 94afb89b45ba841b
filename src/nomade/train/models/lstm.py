"""Sequence model: an LSTM over a job's preceding sequence, concatenated with the job's own
z-scored request features, then an MLP -> failure probability. Class-weighted BCE.

At submit and start the sequence is the user's last K ENDED jobs (``FeatureMatrix.history_idx``,
K = 8 by default; step features in ``nomade.scoring.sequences``), oldest first. The network takes
any ``(n, T, f)`` sequence and ``(n, d)`` job features (``SequenceNet(f, d)``): the node recorder's
per-job metric series (T samples x f metrics) plug in by building a model with their ``f`` - the
ONNX graph has dynamic batch AND time axes.

ONNX: inputs ``SEQ`` (n, T, f) float32 and ``X`` (n, d) raw features; output ``p`` (n,).
Exported with the legacy TorchScript exporter (``dynamo=False``). The bundle's per-user table for
scoring comes from ``export_arrays`` (``seq_*.npy``, see ``SequenceTable``)."""

from typing import Dict, Optional

import numpy as np
import torch
from torch import nn

from ...features.matrix import FeatureMatrix
from ...scoring.neighbours import fit_scaler
from ...scoring.sequences import DEFAULT_K, N_STEP, JobFields, SequenceTable, from_rows
from ..base import TrainedModel
from .knn import parent_of
from .torch_training import (ZScore, deterministic, fit_loop, onnx_bytes, positive_weight,
                             require_fitted, temporal_split, training_rows)


class SequenceNet(nn.Module):
    """(seq (n, T, f), raw x (n, d)) -> logit (n,)."""

    def __init__(self, f: int, zscore: ZScore, hidden: int = 32, head: int = 64):
        super().__init__()
        d = int(zscore.mean.shape[0])
        self.zscore = zscore
        self.lstm = nn.LSTM(f, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden + d, head), nn.ReLU(), nn.Linear(head, 1))

    def forward(self, seq: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(seq)
        return self.head(torch.cat([h[-1], self.zscore(x)], dim=1)).squeeze(-1)


class SequenceProbability(nn.Module):
    """The exported form: sigmoid of SequenceNet."""

    def __init__(self, net: SequenceNet):
        super().__init__()
        self.net = net

    def forward(self, seq: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(seq, x))


def scoring_moments(fm: FeatureMatrix) -> np.ndarray:
    """Submit time, or start time (submit when unknown) for the start stage."""
    if fm.stage == "start":
        return np.where(np.isnan(fm.start_time), fm.submit_time, fm.start_time).astype(np.float64)
    return fm.submit_time.astype(np.float64)


def history_sequences(fm: FeatureMatrix) -> np.ndarray:
    """The (n, K, f) oldest-first tensor of fm's rows from history_idx (into the full matrix)."""
    full = parent_of(fm)
    if fm.history_idx is None:
        return np.zeros((len(fm), DEFAULT_K, N_STEP), dtype=np.float32)
    fields = JobFields.of_matrix(full.X, full.names, full.cls, full.start_time, full.end_time,
                                 full.outcome_time())
    return from_rows(fields, fm.history_idx, scoring_moments(fm))


class SequenceLSTM(TrainedModel):
    name = "lstm"
    is_probability = True
    ARRAY_PREFIX = "seq_"   # of export_arrays' keys (the sequence table)

    def __init__(self, k: int = DEFAULT_K, hidden: int = 32, epochs: int = 10, batch: int = 1024,
                 lr: float = 3e-3, max_train_rows: int = 80000):
        self.k, self.hidden, self.epochs, self.batch, self.lr = k, hidden, epochs, batch, lr
        self.max_train_rows = max_train_rows
        self.net: Optional[SequenceNet] = None
        self.fitted_on: Optional[FeatureMatrix] = None   # for the table, built by export_arrays
        self.log: Dict[str, float] = {}

    def _seq(self, fm: FeatureMatrix) -> np.ndarray:
        seq = history_sequences(fm)
        return np.ascontiguousarray(seq[:, -self.k:, :]) if seq.shape[1] > self.k else seq

    def fit(self, train: FeatureMatrix, seed: int = 7) -> "SequenceLSTM":
        gen = deterministic(seed)
        rows = training_rows(train.y >= 0, self.max_train_rows, seed)
        sub = train.rows(rows)
        S = torch.from_numpy(self._seq(sub))
        mean, std = fit_scaler(train.X[rows], train.categorical_columns())
        self.net = SequenceNet(S.shape[2], ZScore(mean, std), self.hidden)
        X = torch.from_numpy(np.ascontiguousarray(sub.X, dtype=np.float32))
        y = torch.from_numpy(sub.y.astype(np.float32))
        fit_i, val_i = temporal_split(len(rows))
        bce = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(positive_weight(sub.y[fit_i])))

        def loss_fn(b: np.ndarray) -> torch.Tensor:
            sel = fit_i[b]
            return bce(self.net(S[sel], X[sel]), y[sel])

        val = (lambda: float(bce(self.net(S[val_i], X[val_i]), y[val_i]))) if len(val_i) else None
        self.log = fit_loop(loss_fn, self.net.parameters(), len(fit_i), val, gen, self.epochs,
                            self.batch, self.lr, modules=[self.net])
        self.log["train_rows"] = float(len(rows))
        self.fitted_on = train
        return self

    def predict(self, fm: FeatureMatrix) -> np.ndarray:
        require_fitted(self, "net")
        return self.predict_arrays(self._seq(fm), fm.X)

    def predict_arrays(self, seq: np.ndarray, X: np.ndarray) -> np.ndarray:
        out = np.empty(len(X), dtype=np.float64)
        with torch.no_grad():
            for s in range(0, len(X), 16384):
                sl = slice(s, s + 16384)
                x = torch.from_numpy(np.ascontiguousarray(X[sl], dtype=np.float32))
                out[sl] = torch.sigmoid(self.net(torch.from_numpy(seq[sl]), x)).numpy()
        return out

    def export_onnx(self) -> bytes:
        require_fitted(self, "net")
        d = int(self.net.zscore.mean.shape[0])
        f = int(self.net.lstm.input_size)
        args = (torch.zeros(2, self.k, f), torch.zeros(2, d))
        return onnx_bytes(SequenceProbability(self.net), args, ["SEQ", "X"], ["p"],
                          {"SEQ": {0: "n", 1: "T"}, "X": {0: "n"}, "p": {0: "n"}})

    def export_arrays(self, until: Optional[float] = None) -> Dict[str, np.ndarray]:
        """The scoring-time table: each user's last K jobs (of the matrix the training rows
        belong to) whose outcome was known before ``until`` (TrainedModel)."""
        require_fitted(self, "fitted_on")
        full = parent_of(self.fitted_on)
        cut = float(np.nanmax(scoring_moments(self.fitted_on))) + 1e-9 if until is None else until
        return SequenceTable.of_matrix(full, self.k, cut).to_arrays(self.ARRAY_PREFIX)
