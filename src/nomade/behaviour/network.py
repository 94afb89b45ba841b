"""The similarity network of how jobs ran: z-scored behaviour vectors, k nearest neighbours by
cosine similarity (or Simpson's index on presence/absence), an edge where the similarity is at
least the threshold, and connected regions.

The neighbour search is the project's blocked machinery (``nomade.scoring.neighbours``: padded
float32 blocks, chunked two-stage top-k), never a Python loop over pairs. Up to
``exact_limit`` jobs every job is compared with every other; above it the jobs are first
partitioned into cells (spherical k-means on a sample, about ``cell_size`` jobs each) and each
cell is searched against itself and its ``probes - 1`` nearest cells (an inverted-file search:
approximate, recall measured in bench/behaviour.py). Where those cells hold more than
``2 x probes x cell_size`` jobs (many alike jobs, or few features), a seeded sample of that many is
searched: in so dense a place any sample holds jobs as similar as the exact neighbours."""

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

from ..scoring.neighbours import (NEG, QUERY_BLOCK, SimilarityBuffer, fit_scaler, padded, topk_bank_major,
                                  unit_rows, zscore)

COSINE = "cosine"
SIMPSON = "simpson"
METRICS = (COSINE, SIMPSON)


@dataclass
class Scaled:
    """Z-scores of the vectors (NaN -> 0, clipped) with the scaler that made them."""
    mean: np.ndarray
    std: np.ndarray
    Z: np.ndarray            # float32 (n, d)

    @classmethod
    def of(cls, X: np.ndarray) -> "Scaled":
        mean, std = fit_scaler(X)
        return cls(mean, std, zscore(X, mean, std))


def presence(X: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Presence/absence rows for Simpson's index: a feature is present when known and above the
    mean of all jobs (missing = absent)."""
    with np.errstate(invalid="ignore"):
        return (np.isfinite(X) & (X > mean)).astype(np.float32)


def _cosine_block(B: np.ndarray, Qt: np.ndarray, out: np.ndarray) -> np.ndarray:
    return np.matmul(B, Qt, out=out)


def _simpson_block(B: np.ndarray, Qt: np.ndarray, out: np.ndarray) -> np.ndarray:
    np.matmul(B, Qt, out=out)                                    # |A and B|
    denom = np.minimum(B.sum(axis=1)[:, None], Qt.sum(axis=0)[None, :])
    np.divide(out, np.maximum(denom, 1.0), out=out)
    out[np.broadcast_to(denom <= 0, out.shape)] = 0.0
    return out


def _topk_against(Q: np.ndarray, q_ids: np.ndarray, B: np.ndarray, b_ids: np.ndarray, k: int,
                  sim: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
                  buf: Optional[SimilarityBuffer] = None) -> Tuple[np.ndarray, np.ndarray]:
    """For each query row its k most similar bank rows other than itself (by global id):
    global ids (m, k) and similarities (-inf where fewer than k candidates). Similarity blocks
    (bank rows x queries) go into ``buf``, reused between calls."""
    nb = B.shape[0]
    Bp = padded(B)
    m = Q.shape[0]
    buf = buf if buf is not None else SimilarityBuffer()
    out_i = np.zeros((m, k), dtype=np.int64)
    out_s = np.full((m, k), NEG, dtype=np.float32)
    lookup = np.full(int(max(b_ids.max(), q_ids.max())) + 1, -1, dtype=np.int64)
    lookup[b_ids] = np.arange(nb)
    for s in range(0, m, QUERY_BLOCK):
        Qt = np.ascontiguousarray(Q[s:s + QUERY_BLOCK].T)
        S = sim(Bp, Qt, buf.block(Bp.shape[0], Qt.shape[1]))
        S[nb:] = NEG
        rows = lookup[q_ids[s:s + QUERY_BLOCK]]
        hit = rows >= 0
        S[rows[hit], np.nonzero(hit)[0]] = NEG          # a job is not its own neighbour
        kk = min(k, Bp.shape[0])
        idx, vals = topk_bank_major(S, kk)
        idx = np.minimum(idx, nb - 1)
        out_i[s:s + Qt.shape[1], :kk] = b_ids[idx]
        out_s[s:s + Qt.shape[1], :kk] = vals
    return out_i, out_s


def knn(Z: np.ndarray, k: int, *, metric: str = COSINE, exact_limit: int = 20000,
        cell_size: int = 3000, probes: int = 4, seed: int = 0) -> Tuple[np.ndarray, np.ndarray, str]:
    """k nearest other jobs of every job: ids (n, k), similarities (n, k; -inf = none) and the
    method used ('exact' or 'cells'). ``Z``: z-scores (cosine) or presence rows (Simpson)."""
    n = Z.shape[0]
    if metric not in METRICS:
        raise ValueError(f"unknown similarity {metric!r} (one of: {', '.join(METRICS)})")
    rows = unit_rows(Z) if metric == COSINE else np.asarray(Z, dtype=np.float32)
    sim = _cosine_block if metric == COSINE else _simpson_block
    ids = np.arange(n, dtype=np.int64)
    buf = SimilarityBuffer()
    if n <= exact_limit:
        i, s = _topk_against(rows, ids, rows, ids, k, sim, buf)
        return i, s, "exact"
    cell, order = cells(unit_rows(Z), max(2, n // cell_size), probes, seed)
    out_i = np.zeros((n, k), dtype=np.int64)
    out_s = np.full((n, k), NEG, dtype=np.float32)
    members = np.split(np.argsort(cell, kind="stable"), np.cumsum(np.bincount(cell, minlength=order.shape[0]))[:-1])
    rng = np.random.default_rng(seed)
    cap = 2 * probes * cell_size
    for c in range(order.shape[0]):
        q = members[c]
        if q.size == 0:
            continue
        cand = np.concatenate([members[o] for o in order[c]])
        if cand.size > cap:       # a dense cell (many alike jobs): a seeded sample holds near-ties
            cand = np.sort(rng.choice(cand, cap, replace=False))
        i, s = _topk_against(rows[q], q, rows[cand], cand, k, sim, buf)
        out_i[q], out_s[q] = i, s
    return out_i, out_s, "cells"


def cells(U: np.ndarray, n_cells: int, probes: int, seed: int, sample: int = 50000,
          iters: int = 8) -> Tuple[np.ndarray, np.ndarray]:
    """Spherical k-means cells of unit rows: each row's cell, and per cell its ``probes`` nearest
    cells (itself first) by centroid similarity."""
    rng = np.random.default_rng(seed)
    n = U.shape[0]
    pick = rng.choice(n, size=min(n, sample), replace=False)
    S = U[pick]
    C = S[rng.choice(S.shape[0], size=min(n_cells, S.shape[0]), replace=False)].copy()
    for _ in range(iters):
        a = np.argmax(S @ C.T, axis=1)
        sums = np.zeros_like(C)
        np.add.at(sums, a, S)
        keep = np.bincount(a, minlength=C.shape[0]) > 0
        C[keep] = unit_rows(sums[keep])
    assign = np.empty(n, dtype=np.int64)
    for s in range(0, n, 65536):
        assign[s:s + 65536] = np.argmax(U[s:s + 65536] @ C.T, axis=1)
    cs = C @ C.T
    order = np.argsort(-cs, axis=1, kind="stable")[:, :max(1, probes)]
    order[:, 0] = np.arange(C.shape[0])
    return assign, order


def edges_from_knn(idx: np.ndarray, sims: np.ndarray, threshold: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected edges (u < v, listed once, the larger similarity kept) where a neighbour's
    similarity is >= threshold."""
    n = idx.shape[0]
    src = np.repeat(np.arange(n, dtype=np.int64), idx.shape[1])
    dst = idx.ravel()
    w = sims.ravel()
    keep = (w >= threshold) & (src != dst) & np.isfinite(w)
    src, dst, w = src[keep], dst[keep], w[keep]
    u, v = np.minimum(src, dst), np.maximum(src, dst)
    key = u * max(n, 1) + v
    order = np.lexsort((-w, key))
    key, u, v, w = key[order], u[order], v[order], w[order]
    first = np.ones(key.size, dtype=bool)
    first[1:] = key[1:] != key[:-1]
    return u[first], v[first], w[first]


def components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Connected component label per node (the smallest node index in it): vectorised hooking
    and pointer jumping, no Python loop over nodes or edges."""
    parent = np.arange(n, dtype=np.int64)
    if u.size == 0:
        return parent
    while True:
        pu, pv = parent[u], parent[v]
        diff = pu != pv
        if not diff.any():
            return parent
        lo, hi = np.minimum(pu[diff], pv[diff]), np.maximum(pu[diff], pv[diff])
        np.minimum.at(parent, hi, lo)
        while True:
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt


@dataclass
class Network:
    n: int
    u: np.ndarray
    v: np.ndarray
    w: np.ndarray
    idx: np.ndarray
    sims: np.ndarray
    region: np.ndarray
    method: str
    metric: str
    threshold: float
    k: int


def build_network(X: np.ndarray, *, k: int = 10, threshold: float = 0.7, metric: str = COSINE,
                  exact_limit: int = 20000, seed: int = 0, scaled: Optional[Scaled] = None) -> Network:
    """The similarity network of behaviour vectors ``X`` (NaN = missing)."""
    sc = scaled if scaled is not None else Scaled.of(X)
    rows = sc.Z if metric == COSINE else presence(X, sc.mean)
    idx, sims, method = knn(rows, k, metric=metric, exact_limit=exact_limit, seed=seed)
    u, v, w = edges_from_knn(idx, sims, threshold)
    return Network(X.shape[0], u, v, w, idx, sims, components(X.shape[0], u, v), method, metric,
                   float(threshold), int(k))


class SimilarityIndex:
    """Warm index for one-job look-ups (``--find-similar``): the scaler and the unit rows of every
    job, padded once. ``query(i, k)`` costs one pass over the bank (numpy's dot, no BLAS threads)."""

    def __init__(self, X: np.ndarray):
        self.scaled = Scaled.of(X)
        self.n = X.shape[0]
        self.bank = padded(unit_rows(self.scaled.Z))

    def query(self, row: int, k: int) -> Tuple[np.ndarray, np.ndarray]:
        """The k most similar other jobs of job ``row``: indices and cosine similarities, most
        similar first."""
        q = self.bank[row]
        S = np.einsum("ij,j->i", self.bank, q)[:, None]
        S[self.n:] = NEG
        S[row] = NEG
        kk = max(1, min(k, self.n - 1))
        if self.n <= 1:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        idx, vals = topk_bank_major(S, kk)
        order = np.argsort(-vals[0], kind="stable")
        return idx[0][order], vals[0][order]
