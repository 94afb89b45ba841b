"""What the torch models (similarity GNN, autoencoder, LSTM) share: deterministic setup, the
training-row choice, a mini-batch loop with early stopping on a temporal validation slice, a
z-scoring layer that matches ``nomade.scoring.neighbours.zscore`` bit for bit, and ONNX export."""

import io
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ...errors import ModelError
from ...scoring.neighbours import Z_CLIP

TORCH_THREADS = 1   # measured: for these small nets 2 threads are slower (thread sync)
OPSET = 17


def deterministic(seed: int) -> torch.Generator:
    """Fixed seeds and one torch thread: for networks this small, a second thread costs more in
    synchronisation than it gains (measured on the 2-core target; docs/models.md)."""
    torch.set_num_threads(TORCH_THREADS)
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
    return torch.Generator().manual_seed(seed)


def training_rows(mask: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """Positions where ``mask`` holds, uniformly subsampled to at most ``max_rows``, kept in time
    (row) order."""
    rows = np.flatnonzero(mask)
    if len(rows) > max_rows:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(rows, size=max_rows, replace=False))
    return rows


def temporal_split(n: int, val_fraction: float = 0.15, min_val: int = 64) -> Tuple[np.ndarray, np.ndarray]:
    """The last ``val_fraction`` of time-ordered rows for early stopping, the rest for fitting."""
    n_val = int(n * val_fraction)
    if n_val < min_val or n - n_val < min_val:
        return np.arange(n), np.arange(0)
    return np.arange(n - n_val), np.arange(n - n_val, n)


def positive_weight(y: np.ndarray, cap: float = 50.0) -> float:
    """neg/pos ratio for class-weighted BCE (1 when a class is missing)."""
    pos = float((y == 1).sum())
    neg = float((y == 0).sum())
    if pos == 0 or neg == 0:
        return 1.0
    return float(min(cap, max(1.0, neg / pos)))


class ZScore(nn.Module):
    """(x - mean) / std with non-finite values -> 0, in float32 - the same arithmetic as the
    numpy ``zscore`` of the scoring path, so it can live inside the ONNX graph."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(np.asarray(mean, np.float32).copy()))
        self.register_buffer("std", torch.from_numpy(np.asarray(std, np.float32).copy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        z = torch.where(torch.isfinite(z), z, torch.zeros_like(z))
        return torch.clamp(z, -Z_CLIP, Z_CLIP)


def fit_loop(loss_fn: Callable[[np.ndarray], torch.Tensor], params, n_fit: int,
             val_loss: Optional[Callable[[], float]], gen: torch.Generator, epochs: int,
             batch: int, lr: float, patience: int = 2,
             modules: Sequence[nn.Module] = ()) -> Dict[str, float]:
    """Adam over shuffled mini-batches of row numbers 0..n_fit-1; after every epoch the validation
    loss decides early stopping and the best weights are restored. Returns a small log."""
    opt = torch.optim.Adam(params, lr=lr)
    best, best_state, bad, done = float("inf"), None, 0, 0
    for _epoch in range(epochs):
        for m in modules:
            m.train()
        perm = torch.randperm(n_fit, generator=gen).numpy()
        for s in range(0, n_fit, batch):
            opt.zero_grad()
            loss = loss_fn(perm[s:s + batch])
            loss.backward()
            opt.step()
        done += 1
        if val_loss is None:
            continue
        for m in modules:
            m.eval()
        with torch.no_grad():
            v = float(val_loss())
        if v < best - 1e-5:
            best, bad = v, 0
            best_state = [{k: t.detach().clone() for k, t in m.state_dict().items()} for m in modules]
        else:
            bad += 1
            if bad >= patience:
                break
    if best_state is not None:
        for m, st in zip(modules, best_state):
            m.load_state_dict(st)
    for m in modules:
        m.eval()
    return {"epochs": float(done), "val_loss": best}


def onnx_bytes(module: nn.Module, args: Tuple[torch.Tensor, ...], input_names: List[str],
               output_names: List[str], dynamic_axes: Dict[str, Dict[int, str]]) -> bytes:
    """The module as ONNX (legacy TorchScript exporter, opset 17, dynamic batch)."""
    module.eval()
    buf = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the tracer's notes on LSTM shape checks and batch sizes: the parity tests cover them
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, buf, input_names=input_names,
                              output_names=output_names, dynamic_axes=dynamic_axes,
                              opset_version=OPSET, dynamo=False)
    except Exception as exc:  # the exporter raises many types; name the model and stop
        raise ModelError(f"ONNX export of {type(module).__name__} failed: {exc}",
                         hint="report this with the torch version; the model cannot be bundled") from exc
    return buf.getvalue()


def require_fitted(model, attr: str) -> None:
    if getattr(model, attr, None) is None:
        raise ModelError(f"model '{model.name}' is not trained", hint="call fit() first")
