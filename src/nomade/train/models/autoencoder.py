"""Autoencoder of normal jobs: a small MLP (d -> 32 -> 8 -> 32 -> d) trained on successfully
COMPLETED jobs only (y == 0), on z-scored features (unknown -> 0). ``predict`` returns the
per-row mean squared reconstruction error (``is_probability = False``): a job whose request looks
unlike the jobs that succeeded scores high; the stacker turns the error into a probability.

The ONNX graph takes raw X (n, d) and outputs the error ``err`` (n,) directly (z-scoring inside)."""

from typing import Dict, Optional

import numpy as np
import torch
from torch import nn

from ...features.matrix import FeatureMatrix
from ...scoring.neighbours import fit_scaler
from ..base import TrainedModel
from .torch_training import (ZScore, deterministic, fit_loop, onnx_bytes, require_fitted,
                             temporal_split, training_rows)


class ReconstructionError(nn.Module):
    """raw X -> z -> encoder -> decoder -> mean squared error per row."""

    def __init__(self, zscore: ZScore, d: int, hidden: int = 32, code: int = 8):
        super().__init__()
        self.zscore = zscore
        self.encoder = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, code))
        self.decoder = nn.Sequential(nn.ReLU(), nn.Linear(code, hidden), nn.ReLU(),
                                     nn.Linear(hidden, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.zscore(x)
        r = self.decoder(self.encoder(z))
        return ((r - z) ** 2).mean(dim=1)


class Autoencoder(TrainedModel):
    name = "autoencoder"
    is_probability = False

    def __init__(self, hidden: int = 32, code: int = 8, epochs: int = 15, batch: int = 1024,
                 lr: float = 3e-3, max_train_rows: int = 60000):
        self.hidden, self.code, self.epochs, self.batch, self.lr = hidden, code, epochs, batch, lr
        self.max_train_rows = max_train_rows
        self.net: Optional[ReconstructionError] = None
        self.log: Dict[str, float] = {}

    def fit(self, train: FeatureMatrix, seed: int = 7) -> "Autoencoder":
        gen = deterministic(seed)
        rows = training_rows(train.y == 0, self.max_train_rows, seed)
        if len(rows) == 0:
            rows = training_rows(np.ones(len(train), dtype=bool), self.max_train_rows, seed)
        mean, std = fit_scaler(train.X[rows], train.categorical_columns())
        self.net = ReconstructionError(ZScore(mean, std), train.X.shape[1], self.hidden, self.code)
        X = torch.from_numpy(np.ascontiguousarray(train.X[rows], dtype=np.float32))
        fit_i, val_i = temporal_split(len(rows))

        def loss_fn(b: np.ndarray) -> torch.Tensor:
            return self.net(X[fit_i[b]]).mean()

        val = (lambda: float(self.net(X[val_i]).mean())) if len(val_i) else None
        self.log = fit_loop(loss_fn, self.net.parameters(), len(fit_i), val, gen, self.epochs,
                            self.batch, self.lr, patience=3, modules=[self.net])
        self.log["train_rows"] = float(len(rows))
        return self

    def predict(self, fm: FeatureMatrix) -> np.ndarray:
        require_fitted(self, "net")
        X = torch.from_numpy(np.ascontiguousarray(fm.X, dtype=np.float32))
        with torch.no_grad():
            return self.net(X).numpy().astype(np.float64)

    def export_onnx(self) -> bytes:
        require_fitted(self, "net")
        d = int(self.net.zscore.mean.shape[0])
        return onnx_bytes(self.net, (torch.zeros(2, d),), ["X"], ["err"],
                          {"X": {0: "n"}, "err": {0: "n"}})
