"""Sequence inputs of the LSTM: for a scored job, its user's last K ENDED jobs as an (n, K, f)
tensor, oldest first (the most recent job is the last step; missing steps are all-zero rows at the
front). Runtime half: numpy only, Python 3.9.

Per step (``STEP_NAMES``): the outcome class one-hot (success, failed, timeout, oom, system,
cancelled), log1p(runtime / time limit) and whether it is known, log1p(requested CPUs), the
time-limit feature (log1p seconds), log1p(hours since that job's outcome became known, relative to
the scoring moment), and a 'present' flag. All of these are outcome data of PAST jobs that had
ended before the scoring moment - legitimately known.

Training builds the tensor from ``FeatureMatrix.history_idx`` (``from_rows``); scoring from the
bundle's ``SequenceTable`` (per-user last-K raw fields, refreshed with ``add_end``). Both go
through ``step_features``, so they agree for the same jobs and scoring moment.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np

from ..errors import ModelError

OUTCOMES = ("success", "failed", "timeout", "oom", "system", "cancelled")
_OUTCOME_CODE = {"success": 0, "failed": 1, "timeout": 2, "oom": 3, "system": 4,
                 "cancelled_owner": 5, "cancelled_other": 5, "cancelled": 5}
STEP_NAMES = tuple("outcome_" + o for o in OUTCOMES) + (
    "runtime_ratio_log", "runtime_known", "cpus_log", "timelimit_log", "since_end_log", "present")
N_STEP = len(STEP_NAMES)
DEFAULT_K = 8


def outcome_codes(cls: Sequence[Optional[str]]) -> np.ndarray:
    """Failure class names (nomade.states) -> 0..5, -1 unknown."""
    return np.array([_OUTCOME_CODE.get(c, -1) if c is not None else -1 for c in cls],
                    dtype=np.int8)


def step_features(code: np.ndarray, runtime_s: np.ndarray, timelimit_log: np.ndarray,
                  cpus: np.ndarray, outcome_t: np.ndarray, at_time: np.ndarray,
                  present: np.ndarray) -> np.ndarray:
    """Arrays of shape (n, K) -> (n, K, N_STEP) float32; rows where ``present`` is False are 0."""
    n, k = code.shape
    out = np.zeros((n, k, N_STEP), dtype=np.float32)
    onehot = (code[:, :, None] == np.arange(len(OUTCOMES))[None, None, :])
    out[:, :, :len(OUTCOMES)] = onehot
    limit = np.expm1(timelimit_log.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.log1p(np.clip(runtime_s / limit, 0.0, 10.0))
        since = np.log1p(np.maximum(at_time[:, None] - outcome_t, 0.0) / 3600.0)
    j = len(OUTCOMES)
    known = np.isfinite(ratio)
    out[:, :, j] = np.where(known, ratio, 0.0)
    out[:, :, j + 1] = known
    out[:, :, j + 2] = np.nan_to_num(np.log1p(np.maximum(cpus, 0.0)), nan=0.0)
    out[:, :, j + 3] = np.nan_to_num(timelimit_log, nan=0.0)
    out[:, :, j + 4] = np.nan_to_num(since, nan=0.0)
    out[:, :, j + 5] = 1.0
    out[~present] = 0.0
    return out


def oldest_first(seq: np.ndarray) -> np.ndarray:
    """Most-recent-first (n, K, f) -> oldest-first, so the LSTM ends on the newest job."""
    return np.ascontiguousarray(seq[:, ::-1, :])


def _col(X: np.ndarray, names: Sequence[str], name: str) -> np.ndarray:
    if name in names:
        return X[:, list(names).index(name)].astype(np.float64)
    return np.full(X.shape[0], np.nan)


@dataclass
class JobFields:
    """Raw per-job fields a sequence step is made of (one entry per job of a matrix)."""

    code: np.ndarray          # int8 outcome code
    runtime_s: np.ndarray
    timelimit_log: np.ndarray
    cpus: np.ndarray
    outcome_t: np.ndarray

    @classmethod
    def of_matrix(cls, X: np.ndarray, names: Sequence[str], classes, start: np.ndarray,
                  end: np.ndarray, outcome_t: np.ndarray) -> "JobFields":
        return cls(code=outcome_codes(classes), runtime_s=(end - start).astype(np.float64),
                   timelimit_log=_col(X, names, "timelimit_log"), cpus=_col(X, names, "req_cpus"),
                   outcome_t=np.asarray(outcome_t, dtype=np.float64))


def from_rows(fields: JobFields, hidx: np.ndarray, at_time: np.ndarray) -> np.ndarray:
    """(n, K, f) oldest-first tensor from history indices (n, K) into ``fields`` (-1 padding)."""
    present = hidx >= 0
    j = np.where(present, hidx, 0)
    seq = step_features(fields.code[j], fields.runtime_s[j], fields.timelimit_log[j],
                        fields.cpus[j], fields.outcome_t[j], np.asarray(at_time, np.float64),
                        present)
    return oldest_first(seq)


@dataclass
class SequenceTable:
    """Per user, the raw fields of the last K ended jobs, most recent first (shipped in the bundle
    as ``seq_*.npy``; user names as a fixed-width unicode array, no pickles)."""

    users: np.ndarray          # (u,) str
    code: np.ndarray           # (u, K) int8, -1 = no job
    runtime_s: np.ndarray      # (u, K) float64
    timelimit_log: np.ndarray
    cpus: np.ndarray
    outcome_t: np.ndarray

    def __post_init__(self):
        self._index = {str(u): i for i, u in enumerate(self.users)}

    @property
    def k(self) -> int:
        return int(self.code.shape[1])

    @classmethod
    def build(cls, fields: JobFields, users: np.ndarray, k: int = DEFAULT_K,
              before: Optional[float] = None) -> "SequenceTable":
        """From every job of a matrix whose outcome was known before ``before`` (default all)."""
        t = fields.outcome_t
        ok = np.isfinite(t) & (fields.code >= 0)
        if before is not None:
            ok &= t < before
        rows = np.flatnonzero(ok)
        rows = rows[np.lexsort((-t[rows], users[rows].astype(str)))]   # by user, newest first
        names, first = np.unique(users[rows].astype(str), return_index=True)
        tab = cls.empty(names, k)
        for ui, (a, b) in enumerate(zip(first, list(first[1:]) + [len(rows)])):
            r = rows[a:min(b, a + k)]
            tab._put(ui, slice(0, len(r)), fields, r)
        return tab

    @classmethod
    def of_matrix(cls, fm, k: int, before: Optional[float] = None) -> "SequenceTable":
        """From a FeatureMatrix's rows (jobs whose outcome was known before ``before``)."""
        fields = JobFields.of_matrix(fm.X, fm.names, fm.cls, fm.start_time, fm.end_time,
                                     fm.outcome_time())
        return cls.build(fields, fm.user, k, before)

    @classmethod
    def empty(cls, users, k: int) -> "SequenceTable":
        u = len(users)
        nan = np.full((u, k), np.nan)
        return cls(users=np.asarray(users, dtype=str), code=np.full((u, k), -1, np.int8),
                   runtime_s=nan.copy(), timelimit_log=nan.copy(), cpus=nan.copy(),
                   outcome_t=nan.copy())

    def _put(self, ui: int, sl: slice, f: JobFields, r) -> None:
        self.code[ui, sl] = f.code[r]
        self.runtime_s[ui, sl] = f.runtime_s[r]
        self.timelimit_log[ui, sl] = f.timelimit_log[r]
        self.cpus[ui, sl] = f.cpus[r]
        self.outcome_t[ui, sl] = f.outcome_t[r]

    def add_end(self, user: str, cls: Optional[str], runtime_s: float, timelimit_log: float,
                cpus: float, outcome_t: float) -> None:
        """A newly ended job (history refresh): becomes the user's most recent step."""
        ui = self._index.get(user)
        if ui is None:
            grown = SequenceTable.empty(list(self.users) + [user], self.k)
            for a in ("code", "runtime_s", "timelimit_log", "cpus", "outcome_t"):
                getattr(grown, a)[:-1] = getattr(self, a)
            self.__dict__.update(grown.__dict__)
            ui = self._index[user]
        for a in ("code", "runtime_s", "timelimit_log", "cpus", "outcome_t"):
            arr = getattr(self, a)
            arr[ui, 1:] = arr[ui, :-1].copy()
        f = JobFields(outcome_codes([cls]), np.array([runtime_s], float),
                      np.array([timelimit_log], float), np.array([cpus], float),
                      np.array([outcome_t], float))
        self._put(ui, slice(0, 1), f, [0])

    def sequences(self, users: Sequence[str], at_time: np.ndarray) -> np.ndarray:
        """(n, K, f) oldest-first tensor for jobs of ``users`` scored at ``at_time``."""
        ui = np.array([self._index.get(str(u), -1) for u in users], dtype=np.int64)
        known = ui >= 0
        j = np.where(known, ui, 0)
        if len(self.users) == 0:
            n = len(ui)
            return np.zeros((n, self.k, N_STEP), dtype=np.float32)
        present = (self.code[j] >= 0) & known[:, None] & (
            self.outcome_t[j] < np.asarray(at_time, np.float64)[:, None])
        seq = step_features(self.code[j], self.runtime_s[j], self.timelimit_log[j], self.cpus[j],
                            self.outcome_t[j], np.asarray(at_time, np.float64), present)
        return oldest_first(seq)

    def to_arrays(self, prefix: str = "seq_") -> Dict[str, np.ndarray]:
        return {prefix + "users": np.asarray(self.users, dtype=str), prefix + "code": self.code,
                prefix + "runtime_s": self.runtime_s, prefix + "timelimit_log": self.timelimit_log,
                prefix + "cpus": self.cpus, prefix + "outcome_t": self.outcome_t}

    @classmethod
    def from_arrays(cls, arrays: Dict[str, np.ndarray], prefix: str = "seq_") -> "SequenceTable":
        try:
            return cls(users=np.asarray(arrays[prefix + "users"], dtype=str),
                       code=np.asarray(arrays[prefix + "code"], np.int8),
                       **{a: np.asarray(arrays[prefix + a], np.float64)
                          for a in ("runtime_s", "timelimit_log", "cpus", "outcome_t")})
        except KeyError as exc:
            raise ModelError(f"model bundle lacks the sequence array {exc.args[0]}.npy",
                             hint="retrain with 'nomade train' to write a complete bundle") from exc
