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

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ..scoring.neighbours import CHUNK, NEG, SimilarityBuffer, fit_scaler, padded, topk_bank_major, unit_rows, zscore

COSINE = "cosine"
SIMPSON = "simpson"
METRICS = (COSINE, SIMPSON)
CELL_SIZE = 3000     # jobs per cell of the cell search, on average
FILED_IN = 4         # cells each job is filed under in the cell search (its nearest ones)
THREADS = 2          # threads of the search (numpy releases the GIL in its products and top-k)
BLOCK = 128          # queries per similarity block (12,000 bank rows: 6 MB, cache-sized)


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


def _topk_against(Q: np.ndarray, self_pos: np.ndarray, B: np.ndarray, b_ids: np.ndarray, k: int,
                  sim: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
                  buf: Optional[SimilarityBuffer] = None) -> Tuple[np.ndarray, np.ndarray]:
    """For each query row its k most similar bank rows other than itself: global ids
    ``b_ids[...]`` (m, k) and similarities (-inf where fewer than k candidates). ``self_pos``: the
    query's own row in the bank, -1 when absent. Similarity blocks (bank rows x queries) go into
    ``buf``, reused between calls."""
    nb = B.shape[0]
    Bp = padded(B)
    m = Q.shape[0]
    buf = buf if buf is not None else SimilarityBuffer()
    out_i = np.zeros((m, k), dtype=np.int64)
    out_s = np.full((m, k), NEG, dtype=np.float32)
    kk = min(k, Bp.shape[0])
    for s in range(0, m, BLOCK):
        Qt = np.ascontiguousarray(Q[s:s + BLOCK].T)
        S = sim(Bp, Qt, buf.block(Bp.shape[0], Qt.shape[1]))
        S[nb:] = NEG
        pos = self_pos[s:s + BLOCK]
        hit = pos >= 0
        S[pos[hit], np.nonzero(hit)[0]] = NEG          # a job is not its own neighbour
        idx, vals = _topk_columns(S, kk)
        idx = np.minimum(idx, nb - 1)
        out_i[s:s + Qt.shape[1], :kk] = b_ids[idx]
        out_s[s:s + Qt.shape[1], :kk] = vals
    return out_i, out_s


def _chunk_max(ST3: np.ndarray) -> np.ndarray:
    """The max over axis 1 of (chunks, CHUNK, m) by halving (elementwise maxima of contiguous
    halves: about 4x faster than numpy's reduction over a middle axis; the same values)."""
    M = ST3
    while M.shape[1] > 1:
        half = M.shape[1] // 2
        top = np.maximum(M[:, :half], M[:, half:2 * half])
        if M.shape[1] % 2:
            top[:, 0] = np.maximum(top[:, 0], M[:, -1])
        M = top
    return M[:, 0]


def _topk_columns(ST: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """``scoring.neighbours.topk_bank_major`` (the same result) with the chunk maxima of
    ``_chunk_max``."""
    c, m = ST.shape
    if not (c > k * CHUNK and c % CHUNK == 0):
        return topk_bank_major(ST, k)
    q = np.arange(m)[:, None]
    ST3 = ST.reshape(c // CHUNK, CHUNK, m)
    cmax = _chunk_max(ST3).T                                  # (m, chunks)
    top_chunks = np.argpartition(-cmax, k - 1, axis=1)[:, :k]
    top_chunks.sort(axis=1)
    cand = ST3[top_chunks, :, q].reshape(m, k * CHUNK)
    cand_idx = (top_chunks[:, :, None] * CHUNK + np.arange(CHUNK)).reshape(m, k * CHUNK)
    part = np.argpartition(-cand, k - 1, axis=1)[:, :k]
    part.sort(axis=1)
    return cand_idx[q, part], cand[q, part]


def _in_threads(fn: Callable[[int], None], tasks: Sequence[int], threads: int) -> None:
    """``fn(task)`` for every task, in ``threads`` threads (numpy releases the GIL in the matrix
    products and top-k): each task writes its own rows of the output, so the result does not
    depend on the threads."""
    if threads <= 1 or len(tasks) <= 1:
        for t in tasks:
            fn(t)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="nomade-knn") as pool:
        for f in [pool.submit(fn, t) for t in tasks]:
            f.result()


def knn(Z: np.ndarray, k: int, *, metric: str = COSINE, exact_limit: int = 20000,
        cell_size: int = CELL_SIZE, probes: int = FILED_IN, seed: int = 0,
        threads: int = THREADS) -> Tuple[np.ndarray, np.ndarray, str]:
    """k nearest other jobs of every job: ids (n, k), similarities (n, k; -inf = none) and the
    method used ('exact' or 'cells'). ``Z``: z-scores (cosine) or presence rows (Simpson).
    ``probes``: how many cells each job is filed under (its nearest ones) in the cell search."""
    n = Z.shape[0]
    if metric not in METRICS:
        raise ValueError(f"unknown similarity {metric!r} (one of: {', '.join(METRICS)})")
    rows = unit_rows(Z) if metric == COSINE else np.asarray(Z, dtype=np.float32)
    sim = _cosine_block if metric == COSINE else _simpson_block
    out_i = np.zeros((n, k), dtype=np.int64)
    out_s = np.full((n, k), NEG, dtype=np.float32)
    local = threading.local()

    def buffer() -> SimilarityBuffer:
        if not hasattr(local, "buf"):
            local.buf = SimilarityBuffer()
        return local.buf

    if n <= exact_limit:
        ids = np.arange(n, dtype=np.int64)
        step = max(BLOCK, -(-n // max(1, threads)))

        def exact(s: int) -> None:
            q = ids[s:s + step]
            out_i[q], out_s[q] = _topk_against(rows[q], q, rows, ids, k, sim, buffer())
        _in_threads(exact, list(range(0, n, step)), threads)
        return out_i, out_s, "exact"
    filed = cells(unit_rows(Z), max(2, n // cell_size), probes, seed, threads=threads)
    n_cells = int(filed.max()) + 1
    own = filed[:, 0]
    queries = _groups(own, n_cells)
    bank = _groups(filed.ravel(), n_cells, np.repeat(np.arange(n, dtype=np.int64), filed.shape[1]))
    cap = 2 * filed.shape[1] * cell_size

    def one_cell(c: int) -> None:
        q, cand = queries[c], bank[c]
        if q.size == 0:
            return
        if cand.size > cap:       # a dense cell (many alike jobs): a seeded sample holds near-ties
            cand = np.sort(np.random.default_rng([seed, c]).choice(cand, cap, replace=False))
        pos = np.minimum(np.searchsorted(cand, q), cand.size - 1)
        pos = np.where(cand[pos] == q, pos, -1)
        out_i[q], out_s[q] = _topk_against(rows[q], pos, rows[cand], cand, k, sim, buffer())
    _in_threads(one_cell, sorted(range(n_cells), key=lambda c: -queries[c].size), threads)
    return out_i, out_s, "cells"


def _groups(key: np.ndarray, n_groups: int, values: Optional[np.ndarray] = None) -> List[np.ndarray]:
    """``values`` (default: positions) grouped by ``key``, ascending within each group."""
    order = np.argsort(key, kind="stable")
    vals = order if values is None else values[order]
    return np.split(vals, np.cumsum(np.bincount(key, minlength=n_groups))[:-1])


def cells(U: np.ndarray, n_cells: int, probes: int, seed: int, sample: int = 50000,
          iters: int = 8, threads: int = THREADS) -> np.ndarray:
    """Spherical k-means cells of unit rows (centroids fitted on a seeded sample): the ``probes``
    cells each row is filed under, its nearest centroids first (column 0: its own cell)."""
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
    r = max(1, min(probes, C.shape[0]))
    filed = np.empty((n, r), dtype=np.int64)
    Ct = np.ascontiguousarray(C.T)
    step = 32768

    def assign(s: int) -> None:
        D = U[s:s + step] @ Ct
        at = np.arange(D.shape[0])
        for j in range(r):
            best = np.argmax(D, axis=1)
            filed[s:s + step, j] = best
            D[at, best] = NEG
    _in_threads(assign, list(range(0, n, step)), threads)
    return filed


def edges_from_knn(idx: np.ndarray, sims: np.ndarray, threshold: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected edges (u < v, listed once, the larger similarity kept, ordered by (u, v)) where
    a neighbour's similarity is >= threshold. Kept pairs only, one int64 sort key each."""
    n, k = idx.shape
    flat = np.flatnonzero(sims >= threshold)             # -inf (no neighbour) and NaN fail
    src = flat // max(k, 1)
    dst = idx.ravel()[flat]
    w = sims.ravel()[flat]
    del flat
    other = src != dst
    src, dst, w = src[other], dst[other], w[other]
    key = np.minimum(src, dst) * max(n, 1) + np.maximum(src, dst)
    del src, dst
    order = np.argsort(key, kind="stable")
    key, w = key[order], w[order]
    del order
    first = np.ones(key.size, dtype=bool)
    first[1:] = key[1:] != key[:-1]
    starts = np.flatnonzero(first)
    best = np.maximum.reduceat(w, starts) if starts.size else w[:0]
    key = key[starts]
    return key // max(n, 1), key % max(n, 1), best


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

    @classmethod
    def from_arrays(cls, mean: np.ndarray, std: np.ndarray, Z: np.ndarray, bank: np.ndarray,
                    n: int) -> "SimilarityIndex":
        """The index as it was built (arrays saved by ``behaviour.cache``), without rebuilding."""
        index = cls.__new__(cls)
        index.scaled, index.n, index.bank = Scaled(mean, std, Z), int(n), bank
        return index

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
