"""Rolling-origin temporal folds: train on everything whose outcome was known before the
origin, test on the jobs submitted in the following window."""

from dataclasses import dataclass
from typing import List

import numpy as np

from ..errors import ModelError
from ..features.matrix import FeatureMatrix

MIN_TRAIN = 500


@dataclass
class Fold:
    k: int
    origin: float
    end: float
    train: np.ndarray   # row indices (labelled, outcome known before origin)
    test: np.ndarray    # row indices (labelled, submitted in [origin, end))

    def describe(self) -> dict:
        return {"fold": self.k, "origin": self.origin, "end": self.end,
                "n_train": int(len(self.train)), "n_test": int(len(self.test))}


def rolling_folds(fm: FeatureMatrix, n_folds: int = 4, test_share: float = 0.5,
                  min_train: int = MIN_TRAIN) -> List[Fold]:
    """The last ``test_share`` of the labelled jobs (by submit time) is cut into ``n_folds``
    consecutive test windows; each fold trains on the jobs whose outcome was known before its
    window opened."""
    lab = np.flatnonzero(fm.y >= 0)
    if len(lab) < min_train * 2:
        raise ModelError(f"only {len(lab)} labelled jobs; temporal evaluation needs at least "
                         f"{min_train * 2}", hint="ingest more history")
    known = fm.outcome_time()
    t = fm.submit_time[lab]
    qs = np.quantile(t, np.linspace(1 - test_share, 1.0, n_folds + 1))
    folds = []
    for k in range(n_folds):
        lo, hi = float(qs[k]), float(qs[k + 1])
        last = k == n_folds - 1
        test = lab[(t >= lo) & ((t <= hi) if last else (t < hi))]
        train = lab[(t < lo) & (known[lab] < lo)]
        if len(train) < min_train or len(test) == 0:
            continue
        folds.append(Fold(k, lo, hi, train, test))
    if not folds:
        raise ModelError("no fold has enough training data", hint="use fewer --folds")
    return folds
