"""Cosine k-nearest-neighbour search against a bank of past, ENDED jobs, and the neighbour
aggregate the similarity GNN takes as its second input (``NBR_MEAN``).

Runtime half of the similarity model: numpy only, Python 3.9. Training
(``nomade.train.models.knn``) calls the same functions, so the aggregate a job gets at scoring time
equals the one it got in training for the same bank.

Pipeline for a query job: z-score its features with the bank's mean/std (NaN -> 0 after
z-scoring), L2-normalise, cosine similarity with every bank row by blocked float32 matrix products,
top-k per row, then the mean over the k neighbours of ``[z-features, label channel]`` where the
label channel is +1 failed, -1 succeeded, 0 unlabelled. Rows with no neighbour get zeros.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ModelError

DEFAULT_K = 16
QUERY_BLOCK = 1024      # queries per matrix product (keeps the similarity block ~100-200 MB)
CHUNK = 64              # columns per chunk in the two-stage top-k
NEG = np.float32(-np.inf)
Z_CLIP = 5.0            # |z| bound of every scaled feature (zscore, and ZScore in the ONNX graphs)
SMALL_BATCH = 8         # up to this many queries: per-query dot products instead of BLAS
TOPK_THREADS = 2        # numpy releases the GIL in the reductions and partitions of the top-k
_POOL: List[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(TOPK_THREADS, thread_name_prefix="nomade-topk"))
    return _POOL[0]


def zscore(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(X - mean) / std as float32, unknown (NaN) values -> 0 (= the mean), clipped to
    +-Z_CLIP so that one extreme request cannot dominate a distance or a network input."""
    Z = (np.asarray(X, dtype=np.float32) - mean.astype(np.float32)) / std.astype(np.float32)
    np.nan_to_num(Z, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    np.clip(Z, -Z_CLIP, Z_CLIP, out=Z)
    return Z


def fit_scaler(X: np.ndarray, ignore: Sequence[int] = ()) -> Tuple[np.ndarray, np.ndarray]:
    """Column mean and std ignoring NaN; std of constant or empty columns is 1. Columns in
    ``ignore`` (integer-coded categories: their order means nothing to a distance or a network)
    get mean 0 and std inf, so that they z-score to 0 for every job."""
    X = np.asarray(X, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(X)
        cnt = finite.sum(axis=0)
        Xs = np.where(finite, X, 0.0)
        mean = np.where(cnt > 0, Xs.sum(axis=0) / np.maximum(cnt, 1), 0.0)
        var = np.where(finite, (X - mean) ** 2, 0.0).sum(axis=0) / np.maximum(cnt, 1)
    std = np.sqrt(var)
    std = np.where(std > 1e-12, std, 1.0)
    ign = np.asarray(list(ignore), dtype=np.int64)
    mean[ign], std[ign] = 0.0, np.inf
    return mean.astype(np.float32), std.astype(np.float32)


def unit_rows(Z: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero, so their similarity is 0)."""
    n = np.sqrt(np.einsum("ij,ij->i", Z, Z))
    return (Z / np.where(n > 0, n, 1.0)[:, None]).astype(np.float32, copy=False)


def label_channel(y: np.ndarray) -> np.ndarray:
    """+1 failed, -1 succeeded, 0 unknown - the mean over neighbours is 0 when nothing is known."""
    y = np.asarray(y)
    return np.where(y == 1, 1.0, np.where(y == 0, -1.0, 0.0)).astype(np.float32)


def topk_bank_major(ST: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Indices (m, k) and values of the k largest entries per COLUMN of ST (bank rows x queries;
    -inf = not a candidate), in ascending index order.

    Two vectorised stages: the max of every 64-row chunk of the bank (a contiguous reduction), the
    k best chunks per query (they hold its k best entries), then an exact argpartition over
    those k*64 candidates. ST must have a multiple of CHUNK rows when it has more than k*CHUNK."""
    c, m = ST.shape
    q = np.arange(m)[:, None]
    if c <= k:
        return np.broadcast_to(np.arange(c), (m, c)).copy(), ST.T.copy()
    if c > k * CHUNK and c % CHUNK == 0:
        ST3 = ST.reshape(c // CHUNK, CHUNK, m)
        cmax = ST3.max(axis=1).T                              # (m, chunks)
        top_chunks = np.argpartition(-cmax, k - 1, axis=1)[:, :k]
        top_chunks.sort(axis=1)
        cand = ST3[top_chunks, :, q].reshape(m, k * CHUNK)    # (m, k*CHUNK)
        cand_idx = (top_chunks[:, :, None] * CHUNK + np.arange(CHUNK)).reshape(m, k * CHUNK)
    else:
        cand = np.ascontiguousarray(ST.T)
        cand_idx = None
    part = np.argpartition(-cand, k - 1, axis=1)[:, :k]
    part.sort(axis=1)    # deterministic order: by bank index
    vals = cand[q, part]
    idx = part if cand_idx is None else cand_idx[q, part]
    return idx, vals


class SimilarityBuffer:
    """A reused float32 buffer for similarity blocks (a fresh 100 MB array per block costs more in
    page faults than the matrix product itself)."""

    def __init__(self):
        self._buf = np.empty(0, dtype=np.float32)

    def block(self, rows: int, cols: int) -> np.ndarray:
        if self._buf.size < rows * cols:
            self._buf = np.empty(rows * cols, dtype=np.float32)
        return self._buf[:rows * cols].reshape(rows, cols)


def block_topk(Bp: np.ndarray, nb: int, Qt: np.ndarray, k: int, buf: SimilarityBuffer,
               dirty_from: Optional[int] = None,
               dirty_ok: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Top-k bank rows for a block of queries. Bp: unit bank rows (padded to a multiple of CHUNK,
    nb real ones), Qt: unit query rows transposed (d, m). Bank rows from ``dirty_from`` on are
    candidates only where ``dirty_ok`` (rows x queries) is True. Returns idx (m, k), valid."""
    if Qt.shape[1] <= SMALL_BATCH:
        # a few jobs (the warm scorer): numpy's own dot loop - a multi-threaded BLAS call costs
        # milliseconds of thread wake-up for a matrix-vector product. May differ from the BLAS
        # product in the last bit, which can only swap near-tied neighbours.
        ST = np.stack([np.einsum("ij,j->i", Bp, Qt[:, c]) for c in range(Qt.shape[1])], axis=1)
    else:
        ST = buf.block(Bp.shape[0], Qt.shape[1])
        np.matmul(Bp, Qt, out=ST)
    ST[nb:] = NEG
    if dirty_from is not None and dirty_ok is not None:
        sub = ST[dirty_from:nb]
        sub[~dirty_ok] = NEG
    m = ST.shape[1]
    if m < 256 or TOPK_THREADS < 2:
        idx, vals = topk_bank_major(ST, k)
    else:   # query columns split between threads; same result as one call
        cuts = np.linspace(0, m, TOPK_THREADS + 1).astype(int)
        parts = [_pool().submit(topk_bank_major, ST[:, a:b], k) for a, b in zip(cuts, cuts[1:])]
        res = [f.result() for f in parts]
        idx = np.vstack([r[0] for r in res])
        vals = np.vstack([r[1] for r in res])
    return idx, np.isfinite(vals)


@dataclass
class NeighbourBank:
    """Past ended jobs to search: z-score parameters, unit rows, raw z-features and label channel.

    Saved in a bundle as ``knn_mean.npy``, ``knn_std.npy``, ``knn_bank_z.npy``,
    ``knn_bank_label.npy`` (see ``to_arrays``)."""

    mean: np.ndarray       # (d,) float32
    std: np.ndarray        # (d,) float32
    Z: np.ndarray          # (b, d) float32, z-scored bank features
    label: np.ndarray      # (b,) float32, label channel
    k: int = DEFAULT_K

    @classmethod
    def from_rows(cls, X: np.ndarray, y: np.ndarray, mean: np.ndarray, std: np.ndarray,
                  k: int = DEFAULT_K) -> "NeighbourBank":
        return cls(mean=mean.astype(np.float32), std=std.astype(np.float32),
                   Z=zscore(X, mean, std), label=label_channel(y), k=int(k))

    def to_arrays(self, prefix: str = "knn_") -> Dict[str, np.ndarray]:
        return {prefix + "mean": self.mean, prefix + "std": self.std, prefix + "bank_z": self.Z,
                prefix + "bank_label": self.label, prefix + "k": np.array([self.k], dtype=np.int64)}

    @classmethod
    def from_arrays(cls, arrays: Dict[str, np.ndarray], prefix: str = "knn_") -> "NeighbourBank":
        try:
            return cls(mean=np.asarray(arrays[prefix + "mean"], np.float32),
                       std=np.asarray(arrays[prefix + "std"], np.float32),
                       Z=np.asarray(arrays[prefix + "bank_z"], np.float32),
                       label=np.asarray(arrays[prefix + "bank_label"], np.float32),
                       k=int(np.asarray(arrays[prefix + "k"]).ravel()[0]))
        except KeyError as exc:
            raise ModelError(f"model bundle lacks the neighbour array {exc.args[0]}.npy",
                             hint="retrain with 'nomade train' to write a complete bundle") from exc

    def aggregate(self, X: np.ndarray) -> np.ndarray:
        """NBR_MEAN (n, d+1) for raw query rows X (n, d): the GNN's neighbour input."""
        if getattr(self, "_prepared", None) is None:      # unit, padded bank and [Z, label], once
            self._prepared = (padded(unit_rows(self.Z)),
                              np.concatenate([self.Z, self.label[:, None]], axis=1))
        Bp, feats = self._prepared
        Zq = zscore(X, self.mean, self.std)
        idx, valid = search(unit_rows(Zq), Bp, self.k, n_bank=self.Z.shape[0])
        return mean_of_rows(idx, valid, feats)


def padded(B: np.ndarray) -> np.ndarray:
    """Bank rows padded with zero rows to a multiple of CHUNK (their scores are set to -inf)."""
    pad = (-B.shape[0]) % CHUNK
    if pad == 0:
        return np.ascontiguousarray(B, dtype=np.float32)
    return np.vstack([B, np.zeros((pad, B.shape[1]), dtype=np.float32)]).astype(np.float32)


def search(Qu: np.ndarray, Bu: np.ndarray, k: int, block: int = QUERY_BLOCK,
           n_bank: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """k most cosine-similar bank rows for every query (both unit-normalised float32).
    Returns idx (n, k) int64 into the bank and valid (n, k) bool (False where the bank is smaller
    than k). ``n_bank``: Bu is already padded and holds that many real rows."""
    n = Qu.shape[0]
    b = Bu.shape[0] if n_bank is None else int(n_bank)
    idx = np.zeros((n, k), dtype=np.int64)
    valid = np.zeros((n, k), dtype=bool)
    if b == 0 or n == 0:
        return idx, valid
    Bp = padded(Bu) if n_bank is None else Bu
    buf = SimilarityBuffer()
    for s in range(0, n, block):
        Qt = np.ascontiguousarray(Qu[s:s + block].T)
        i, v = block_topk(Bp, b, Qt, k, buf)
        kk = i.shape[1]
        idx[s:s + block, :kk] = np.minimum(i, b - 1)
        valid[s:s + block, :kk] = v
    return idx, valid


def neighbour_mean(idx: np.ndarray, valid: np.ndarray, Zbank: np.ndarray,
                   label: np.ndarray) -> np.ndarray:
    """Mean over valid neighbours of [z-features, label channel]; zeros where none is valid
    (the same as torch_geometric's mean aggregation over an empty neighbourhood)."""
    feats = np.concatenate([Zbank, label[:, None]], axis=1).astype(np.float32)
    return mean_of_rows(idx, valid, feats)


def mean_of_rows(idx: np.ndarray, valid: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """Mean of ``feats`` rows over each query's valid neighbours; zeros where none is valid."""
    if feats.shape[0] == 0:
        return np.zeros((idx.shape[0], feats.shape[1]), dtype=np.float32)
    w = valid.astype(np.float32)
    g = feats[idx] * w[:, :, None]
    cnt = w.sum(axis=1, keepdims=True)
    return (g.sum(axis=1) / np.maximum(cnt, 1.0)).astype(np.float32)


def load_bank(arrays: Dict[str, np.ndarray], prefix: str = "knn_") -> Optional[NeighbourBank]:
    """The bank stored in a bundle's arrays, or None when the bundle has no similarity model."""
    if prefix + "bank_z" not in arrays:
        return None
    return NeighbourBank.from_arrays(arrays, prefix)
