"""Uncertainty- and density-based selection of training rows, after the HPE study ("Proactive
Precision"): a seed model is fitted on a random share of the labelled rows; every other row gets
``uncertainty * density ** beta``, where uncertainty = 1 - |2p - 1| under the seed model and
density = the mean cosine similarity to its k most similar rows of the pool (z-scored features,
blocked matrix products via nomade.scoring.neighbours.search - no Python pair loop). The GBDT is
then fitted on the seed rows plus the best-scoring rows up to ``budget`` of the pool.

All outcomes are known at training time, so the question is not labelling cost but whether
focusing the trees on uncertain, typical jobs beats using every row. bench/active_learning.py
measures it on the shared traces against the full-data GBDT and a random subset of the same size
(docs/evaluation.md, "Active learning"): it did not help (PR-AUC -0.011 to +0.009 against all
rows, and no better than the random subset), so the ensemble does not use it. It stays, with its
benchmark, so that the finding can be re-checked on other data.
"""

from typing import Optional

import numpy as np

from ..features.matrix import FeatureMatrix
from ..scoring.neighbours import fit_scaler, search, unit_rows, zscore
from .base import TrainedModel
from .models.gbdt import GBDTModel

SEED_SHARE = 0.2
BUDGET = 0.5
BETA = 1.0
K = 16
MAX_POOL = 200_000


def density(Z: np.ndarray, k: int = K) -> np.ndarray:
    """Mean cosine similarity of each row to its k most similar other rows."""
    U = unit_rows(Z)
    idx, valid = search(U, U, k + 1)
    sims = np.einsum("nkd,nd->nk", U[idx], U)
    sims = np.where(valid, sims, 0.0)
    # the row itself is its own best match: drop the top similarity
    return (sims.sum(axis=1) - sims.max(axis=1)) / np.maximum(valid.sum(axis=1) - 1, 1)


def select_rows(fm: FeatureMatrix, seed: int, budget: float = BUDGET, beta: float = BETA,
                seed_share: float = SEED_SHARE, rounds: int = 100) -> np.ndarray:
    """Row indices (into fm) the sampler keeps: the random seed rows + the top-scored pool rows."""
    rng = np.random.default_rng(seed)
    lab = np.flatnonzero(fm.y >= 0)
    n_seed = max(int(len(lab) * seed_share), 50)
    seed_rows = np.sort(rng.choice(lab, size=min(n_seed, len(lab)), replace=False))
    pool = np.setdiff1d(lab, seed_rows)
    if len(pool) > MAX_POOL:
        pool = np.sort(rng.choice(pool, size=MAX_POOL, replace=False))
    take = int(len(lab) * budget) - len(seed_rows)
    if take <= 0 or len(pool) == 0:
        return seed_rows
    m = GBDTModel(name="al_seed", rounds=rounds).fit_arrays(fm.X[seed_rows], fm.y[seed_rows], fm.names, seed)
    p = m.predict_arrays(fm.X[pool])
    unc = 1.0 - np.abs(2.0 * p - 1.0)
    mean, std = fit_scaler(fm.X[pool], fm.categorical_columns())
    dens = np.clip(density(zscore(fm.X[pool], mean, std)), 0.0, 1.0)
    score = unc * dens ** beta
    best = pool[np.argsort(-score, kind="stable")[:take]]
    return np.sort(np.concatenate([seed_rows, best]))


class ActiveSampledGBDT(TrainedModel):
    """The GBDT base model fitted on the sampler's rows only."""

    name = "gbdt"
    is_probability = True

    def __init__(self, budget: float = BUDGET, rounds: int = 200, random: bool = False):
        self.budget = budget
        self.rounds = rounds
        self.random = random   # the control: a random subset of the same size
        self.model: Optional[GBDTModel] = None

    def fit(self, train: FeatureMatrix, seed: int = 7) -> "ActiveSampledGBDT":
        if self.random:
            lab = np.flatnonzero(train.y >= 0)
            rows = np.sort(np.random.default_rng(seed).choice(lab, size=int(len(lab) * self.budget),
                                                              replace=False))
        else:
            rows = select_rows(train, seed, self.budget)
        self.model = GBDTModel(rounds=self.rounds).fit_arrays(train.X[rows], train.y[rows], train.names, seed)
        return self

    def predict(self, fm: FeatureMatrix) -> np.ndarray:
        return self.model.predict(fm)
