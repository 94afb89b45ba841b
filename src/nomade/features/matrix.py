"""The feature matrix every model trains and scores on (contract shared by features, models,
evaluation and scoring). Runtime-safe: numpy only."""

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np


@dataclass
class FeatureMatrix:
    """Rows are jobs in ascending submit-time order.

    X           float32 (n, d); NaN = unknown
    names       column names, len d (the feature schema; its hash is ``schema_hash``)
    categorical names of columns holding integer-coded categories (codes >= 0, NaN unknown)
    stage       'submit' or 'start'
    cluster, job_id, user   object arrays (n,)
    submit_time, start_time, end_time   float64 (n,), NaN unknown (start/end are outcome data:
                                        never features at submit time; used for folds/history)
    y           int8 (n,): 1 failed, 0 succeeded, -1 no label (not final / excluded)
    cls         object (n,): failure class from nomade.states (or None)
    history_idx int32 (n, K) or None: row indices of the user's last K jobs that had ENDED before
                this row's scoring moment (most recent first, -1 padding) - for the sequence model
    """

    X: np.ndarray
    names: List[str]
    categorical: List[str]
    stage: str
    cluster: np.ndarray
    job_id: np.ndarray
    user: np.ndarray
    submit_time: np.ndarray
    start_time: np.ndarray
    end_time: np.ndarray
    y: np.ndarray
    cls: np.ndarray
    history_idx: Optional[np.ndarray] = None
    schema_hash: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def rows(self, idx: np.ndarray) -> "FeatureMatrix":
        """A subset of rows (boolean mask or index array). history_idx keeps pointing into the
        FULL matrix, so keep the full matrix around for sequence lookups (``meta['parent']``)."""
        idx = np.asarray(idx)
        sub = FeatureMatrix(
            X=self.X[idx], names=self.names, categorical=self.categorical, stage=self.stage,
            cluster=self.cluster[idx], job_id=self.job_id[idx], user=self.user[idx],
            submit_time=self.submit_time[idx], start_time=self.start_time[idx],
            end_time=self.end_time[idx], y=self.y[idx], cls=self.cls[idx],
            history_idx=None if self.history_idx is None else self.history_idx[idx],
            schema_hash=self.schema_hash, meta=dict(self.meta),
        )
        sub.meta["parent"] = self.meta.get("parent", self)
        return sub

    def outcome_time(self) -> np.ndarray:
        """When each row's outcome became known: ``meta['outcome_time']`` from the feature builder
        (traces without start/end times get submit + runtime + an assumed wait) when it is this
        matrix's own (rows() copies the parent's meta), else the end time."""
        t = self.meta.get("outcome_time")
        if t is not None and len(t) == len(self):
            return np.asarray(t, dtype=np.float64)
        return self.end_time.astype(np.float64)

    def categorical_columns(self) -> List[int]:
        """Positions of the integer-coded category columns (the neural models ignore them)."""
        return [i for i, n in enumerate(self.names) if n in self.categorical]

    def column(self, name: str) -> np.ndarray:
        return self.X[:, self.names.index(name)]
