"""The similarity graph of past jobs: every job's k most cosine-similar jobs among those whose
outcome was known (they had ENDED) strictly before it was submitted, by blocked float32 matrix
products - never a Python loop over pairs.

"Ended" uses the feature builder's outcome time (``meta['outcome_time']``: the end time, or for
traces without start/end times submit + runtime + an assumed wait - see docs/features.md), else
``end_time``; unknown = never ended.

Honesty and cost (documented in docs/models.md): for the rows of a time-ordered matrix, a query
block (up to 1024 consecutive rows in submit order) searches the ``window`` rows submitted just
before the block's first row. Candidates are

* "clean" rows: in the window and ended before the block's first submit time - valid for every
  query of the block, so no mask is needed for them;
* "dirty" rows: still running at that moment, or submitted inside the block; each is masked per
  query (kept only if its outcome time < that query's submit time).

So every neighbour ended strictly before the query's submit time. The window is applied per
block, not per row (a row may see up to one block more of old rows). At scoring time the bundle's
bank is the ``window`` most recent ended jobs (``nomade.scoring.neighbours.NeighbourBank``): the
same population a training row saw.

numpy only (no torch), so the bench and the runtime share this code path.
"""

from typing import Optional, Tuple

import numpy as np

from ...features.matrix import FeatureMatrix
from ...scoring.neighbours import (DEFAULT_K, QUERY_BLOCK, NeighbourBank, SimilarityBuffer,
                                   block_topk, fit_scaler, label_channel, padded, unit_rows,
                                   zscore)

DEFAULT_WINDOW = 16384


def _blocks(pos: np.ndarray, block: int, max_span: int):
    """Split sorted query positions into blocks of <= block rows spanning <= max_span rows."""
    start = 0
    n = len(pos)
    while start < n:
        stop = min(start + block, n)
        over = np.searchsorted(pos[start:stop], pos[start] + max_span, side="right")
        stop = start + max(1, int(over))
        yield start, stop
        start = stop


def past_neighbours(Zu: np.ndarray, submit: np.ndarray, end: np.ndarray, k: int = DEFAULT_K,
                    window: int = DEFAULT_WINDOW, positions: Optional[np.ndarray] = None,
                    block: int = QUERY_BLOCK) -> Tuple[np.ndarray, np.ndarray]:
    """For the rows at ``positions`` (default all) of a submit-ordered set of unit rows ``Zu``:
    idx (q, k) int64 row indices of the k most similar rows that ended before the row's submit
    time, within ``window`` rows before it, and valid (q, k) bool. Unknown end time = not ended."""
    n = Zu.shape[0]
    pos = np.arange(n) if positions is None else np.asarray(positions, dtype=np.int64)
    order = np.argsort(pos, kind="stable")
    pos_sorted = pos[order]
    end_known = np.where(np.isfinite(end), end, np.inf)
    idx = np.zeros((len(pos), k), dtype=np.int64)
    valid = np.zeros((len(pos), k), dtype=bool)
    buf = SimilarityBuffer()
    for a, b in _blocks(pos_sorted, block, max(block, window // 4)):
        qpos = pos_sorted[a:b]
        p0, p1 = int(qpos[0]), int(qpos[-1])
        cand = np.arange(max(0, p0 - window), p1)
        cend = end_known[cand]
        clean_mask = (cand < p0) & (cend < submit[p0])
        clean = cand[clean_mask]
        dirty = cand[~clean_mask & (cend < submit[p1])]
        bank_rows = np.concatenate([clean, dirty])
        nb = len(bank_rows)
        if nb == 0:
            continue
        ok = end_known[dirty][:, None] < submit[qpos][None, :] if len(dirty) else None
        i, v = block_topk(padded(Zu[bank_rows]), nb, np.ascontiguousarray(Zu[qpos].T), k, buf,
                          dirty_from=len(clean), dirty_ok=ok)
        kk = i.shape[1]
        out = order[a:b]
        idx[out, :kk] = bank_rows[np.minimum(i, nb - 1)]
        valid[out, :kk] = v
    return idx, valid


class SimilarityGraph:
    """z-scoring parameters plus the past-only kNN graph of a FeatureMatrix (and its parent)."""

    def __init__(self, k: int = DEFAULT_K, window: int = DEFAULT_WINDOW):
        self.k = int(k)
        self.window = int(window)
        self.mean: Optional[np.ndarray] = None
        self.std: Optional[np.ndarray] = None

    @classmethod
    def with_scaler(cls, mean: np.ndarray, std: np.ndarray, k: int = DEFAULT_K,
                    window: int = DEFAULT_WINDOW) -> "SimilarityGraph":
        """A graph with a trained scaler (e.g. a bundle's), to rebuild its bank from new data."""
        g = cls(k, window)
        g.mean, g.std = mean, std
        return g

    def fit_scaler(self, X: np.ndarray, ignore=()) -> "SimilarityGraph":
        self.mean, self.std = fit_scaler(X, ignore)
        return self

    def z(self, X: np.ndarray) -> np.ndarray:
        return zscore(X, self.mean, self.std)

    def neighbours_in(self, full: FeatureMatrix, positions: np.ndarray,
                      Z: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Past-only neighbours (indices into ``full``) of ``full``'s rows at ``positions``."""
        if Z is None:
            Z = self.z(full.X)
        return past_neighbours(unit_rows(Z), full.submit_time.astype(np.float64),
                               full.outcome_time(), self.k, self.window, positions)

    def bank(self, full: FeatureMatrix, before: Optional[float] = None) -> NeighbourBank:
        """The scoring-time bank: the ``window`` most recently submitted rows of ``full`` that
        ended before ``before`` (default: the last end time in the data)."""
        end = full.outcome_time()
        cut = np.nanmax(end) + 1 if before is None else before
        ended = np.flatnonzero(np.isfinite(end) & (end < cut))
        rows = ended[-self.window:]
        return NeighbourBank.from_rows(full.X[rows], full.y[rows], self.mean, self.std, self.k)


def parent_of(fm: FeatureMatrix) -> FeatureMatrix:
    """The full matrix fm's rows were taken from (FeatureMatrix.rows), fm itself when none."""
    parent = fm.meta.get("parent")
    return fm if parent is None else parent


def locate_rows(fm: FeatureMatrix) -> Tuple[FeatureMatrix, np.ndarray]:
    """The full (parent) matrix of ``fm`` and the positions of fm's rows in it, matched on
    (cluster, job_id, submit_time). fm itself (positions 0..n-1) when it has no parent."""
    parent = parent_of(fm)
    if parent is fm:
        return fm, np.arange(len(fm))
    key = {(c, j, float(t)): i for i, (c, j, t) in
           enumerate(zip(parent.cluster, parent.job_id, parent.submit_time))}
    try:
        pos = np.array([key[(c, j, float(t))] for c, j, t in
                        zip(fm.cluster, fm.job_id, fm.submit_time)], dtype=np.int64)
    except KeyError:
        return fm, np.arange(len(fm))
    return parent, pos


def neighbour_labels(full: FeatureMatrix) -> np.ndarray:
    """Label channel (+1 failed, -1 succeeded, 0 unknown) of every row of the full matrix."""
    return label_channel(full.y)

