"""Similarity GNN: a GraphSAGE layer (torch_geometric ``SAGEConv``, mean aggregation) over the
past-only kNN graph of ``knn.py``, trained inductively - a job is scored from its own z-scored
features plus the mean of its k most similar past ENDED jobs' ``[z-features, label channel]``
(label channel +1 failed, -1 succeeded, 0 unlabelled), then a small MLP head.

Graph: bipartite, neighbour job -> scored job; no edge from a job that had not ended. Because
there is one SAGE layer, a scored job's output depends only on its neighbours' *inputs*, so the
ONNX export is the dense equivalent ``sigmoid(head(lin_l(NBR_MEAN) + lin_r(z(X))))`` with inputs
``X`` (n, d) raw features and ``NBR_MEAN`` (n, d+1) computed by
``nomade.scoring.neighbours.NeighbourBank.aggregate`` from the bundle's bank (``export_arrays``).
Loss: class-weighted BCE (pos_weight = neg/pos, capped at 50)."""

from typing import Dict, Optional

import numpy as np
import torch
from torch import nn
from torch_geometric.nn import SAGEConv

from ...features.matrix import FeatureMatrix
from ...scoring.neighbours import DEFAULT_K, neighbour_mean
from ..base import TrainedModel
from .knn import DEFAULT_WINDOW, SimilarityGraph, locate_rows, neighbour_labels, parent_of
from .torch_training import (ZScore, deterministic, fit_loop, onnx_bytes, positive_weight,
                             require_fitted, temporal_split, training_rows)


class SageNet(nn.Module):
    """One bipartite SAGEConv (neighbours' [z, label] -> job's z) and an MLP head -> logit."""

    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.conv = SAGEConv((d + 1, d), hidden, aggr="mean")
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                  nn.Linear(hidden, 1))

    def forward(self, x_src: torch.Tensor, x_dst: torch.Tensor,
                edge_index: torch.Tensor) -> torch.Tensor:
        h = self.conv((x_src, x_dst), edge_index, size=(x_src.shape[0], x_dst.shape[0]))
        return self.head(h).squeeze(-1)


class DenseSage(nn.Module):
    """The exported form: raw X and the precomputed neighbour mean -> failure probability."""

    def __init__(self, net: SageNet, zscore: ZScore):
        super().__init__()
        self.zscore = zscore
        self.lin_l = net.conv.lin_l
        self.lin_r = net.conv.lin_r
        self.head = net.head

    def forward(self, x: torch.Tensor, nbr_mean: torch.Tensor) -> torch.Tensor:
        h = self.lin_l(nbr_mean) + self.lin_r(self.zscore(x))
        return torch.sigmoid(self.head(h).squeeze(-1))


def batch_graph(idx: np.ndarray, valid: np.ndarray, src_feats: np.ndarray):
    """Per-batch bipartite graph: the batch's neighbour rows as source nodes (one copy per edge)
    and an edge for every valid neighbour."""
    b, k = idx.shape
    x_src = torch.from_numpy(src_feats[idx.ravel()])
    flat_valid = valid.ravel()
    src = np.flatnonzero(flat_valid)
    dst = np.repeat(np.arange(b), k)[flat_valid]
    edge_index = torch.from_numpy(np.stack([src, dst]).astype(np.int64))
    return x_src, edge_index


class SimilarityGNN(TrainedModel):
    name = "gnn"
    is_probability = True
    ARRAY_PREFIX = "knn_"   # of export_arrays' keys (the neighbour bank)

    def __init__(self, k: int = DEFAULT_K, window: int = DEFAULT_WINDOW, hidden: int = 64,
                 epochs: int = 12, batch: int = 1024, lr: float = 3e-3,
                 max_train_rows: int = 60000):
        self.graph = SimilarityGraph(k, window)
        self.hidden, self.epochs, self.batch, self.lr = hidden, epochs, batch, lr
        self.max_train_rows = max_train_rows
        self.net: Optional[SageNet] = None
        self.zs: Optional[ZScore] = None
        self.fitted_on: Optional[FeatureMatrix] = None   # for the bank, built by export_arrays
        self.log: Dict[str, float] = {}

    def _inputs(self, fm: FeatureMatrix, rows: Optional[np.ndarray] = None):
        """z-scored own features, neighbour (idx, valid) into the full matrix, source features."""
        full, pos = locate_rows(fm)
        if rows is not None:
            pos = pos[rows]
        Zfull = self.graph.z(full.X)
        idx, valid = self.graph.neighbours_in(full, pos, Zfull)
        src = np.concatenate([Zfull, neighbour_labels(full)[:, None]], axis=1).astype(np.float32)
        return Zfull[pos], idx, valid, src

    def fit(self, train: FeatureMatrix, seed: int = 7) -> "SimilarityGNN":
        gen = deterministic(seed)
        self.graph.fit_scaler(train.X, train.categorical_columns())
        self.zs = ZScore(self.graph.mean, self.graph.std)
        rows = training_rows(train.y >= 0, self.max_train_rows, seed)
        Zq, idx, valid, src = self._inputs(train, rows)
        y = torch.from_numpy(train.y[rows].astype(np.float32))
        fit_i, val_i = temporal_split(len(rows))
        self.net = SageNet(train.X.shape[1], self.hidden)
        bce = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(positive_weight(train.y[rows][fit_i])))

        def logits(sel: np.ndarray) -> torch.Tensor:
            x_src, ei = batch_graph(idx[sel], valid[sel], src)
            return self.net(x_src, torch.from_numpy(Zq[sel]), ei)

        def loss_fn(b: np.ndarray) -> torch.Tensor:
            sel = fit_i[b]
            return bce(logits(sel), y[sel])

        val = (lambda: float(bce(logits(val_i), y[val_i]))) if len(val_i) else None
        self.log = fit_loop(loss_fn, self.net.parameters(), len(fit_i), val, gen, self.epochs,
                            self.batch, self.lr, modules=[self.net])
        self.log["train_rows"] = float(len(rows))
        self.fitted_on = train
        return self

    def predict(self, fm: FeatureMatrix) -> np.ndarray:
        """Native (torch_geometric) scores; neighbours among the full matrix's past ended jobs."""
        require_fitted(self, "net")
        Zq, idx, valid, src = self._inputs(fm)
        out = np.empty(len(fm), dtype=np.float64)
        with torch.no_grad():
            for s in range(0, len(fm), 8192):
                sl = slice(s, s + 8192)
                x_src, ei = batch_graph(idx[sl], valid[sl], src)
                out[sl] = torch.sigmoid(self.net(x_src, torch.from_numpy(Zq[sl]), ei)).numpy()
        return out

    def neighbour_input(self, fm: FeatureMatrix) -> np.ndarray:
        """NBR_MEAN for fm's rows as training computes it (past-only graph in the full matrix)."""
        _, idx, valid, src = self._inputs(fm)
        return neighbour_mean(idx, valid, src[:, :-1], src[:, -1])

    def dense(self) -> DenseSage:
        require_fitted(self, "net")
        return DenseSage(self.net, self.zs).eval()

    def export_onnx(self) -> bytes:
        d = int(self.zs.mean.shape[0])
        args = (torch.zeros(2, d), torch.zeros(2, d + 1))
        return onnx_bytes(self.dense(), args, ["X", "NBR_MEAN"], ["p"],
                          {"X": {0: "n"}, "NBR_MEAN": {0: "n"}, "p": {0: "n"}})

    def export_arrays(self, until: Optional[float] = None) -> Dict[str, np.ndarray]:
        """The scoring-time bank: the ``window`` most recently submitted jobs (of the matrix the
        training rows belong to) whose outcome was known before ``until`` (TrainedModel)."""
        require_fitted(self, "fitted_on")
        full = parent_of(self.fitted_on)
        cut = float(np.nanmax(self.fitted_on.submit_time)) + 1e-9 if until is None else until
        return self.graph.bank(full, before=cut).to_arrays(self.ARRAY_PREFIX)
