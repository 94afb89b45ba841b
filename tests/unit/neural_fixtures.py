"""A synthetic, time-ordered FeatureMatrix for the neural-model tests (no store, no trace): job
'types' with their own failure rates, users who repeat types, runtimes, history_idx built the
honest way (the user's last K jobs that ENDED strictly before the row's submit time)."""

from typing import Optional

import numpy as np

from nomade.features.matrix import FeatureMatrix

NAMES = ["req_cpus", "req_nodes", "req_mem_node_log", "timelimit_log", "submit_hour",
         "submit_weekday", "u_fail_rate", "partition_code"]


def history_index(user: np.ndarray, submit: np.ndarray, end: np.ndarray, K: int) -> np.ndarray:
    """(n, K) rows of the same user that ended strictly before each row's submit time, most recent
    end first, -1 padding (a slow reference; the tests keep n small)."""
    n = len(user)
    out = np.full((n, K), -1, dtype=np.int32)
    by_user = {}
    for i, u in enumerate(user):
        by_user.setdefault(u, []).append(i)
    for rows in by_user.values():
        rows = np.array(rows)
        for i in rows:
            prev = rows[(end[rows] < submit[i])]
            if len(prev):
                prev = prev[np.argsort(-end[prev], kind="stable")][:K]
                out[i, :len(prev)] = prev
    return out


def synthetic_matrix(n: int = 3000, seed: int = 0, K: int = 8,
                     nan_rate: float = 0.03) -> FeatureMatrix:
    rng = np.random.default_rng(seed)
    n_types = 12
    type_fail = rng.uniform(0.02, 0.8, n_types)
    centres = rng.normal(size=(n_types, 6)) * 1.5
    n_users = 15
    user_types = rng.integers(0, n_types, size=(n_users, 3))
    u = rng.integers(0, n_users, n)
    t = user_types[u, rng.integers(0, 3, n)]
    submit = np.cumsum(rng.exponential(60.0, n))
    fail = rng.random(n) < type_fail[t]
    limit = np.exp(centres[t, 3] + 8.0)
    runtime = np.where(fail, rng.uniform(0.01, 1.0, n), rng.uniform(0.1, 0.9, n)) * limit
    end = submit + rng.exponential(300.0, n) + runtime
    start = end - runtime
    X = np.zeros((n, len(NAMES)), dtype=np.float32)
    X[:, 0] = np.round(np.exp(centres[t, 0] + 2))
    X[:, 1] = np.round(np.abs(centres[t, 1]) + 1)
    X[:, 2] = centres[t, 2] + rng.normal(0, 0.2, n)
    X[:, 3] = np.log1p(limit)
    X[:, 4] = (submit / 3600) % 24
    X[:, 5] = (submit / 86400) % 7
    X[:, 6] = rng.uniform(0, 0.5, n) + 0.3 * type_fail[t]
    X[:, 7] = t % 3
    X[rng.random(X.shape) < nan_rate] = np.nan
    y = fail.astype(np.int8)
    y[rng.random(n) < 0.02] = -1
    cls = np.where(y == 1, np.where(runtime >= 0.99 * limit, "timeout", "failed"),
                   np.where(y == 0, "success", None)).astype(object)
    users = np.array([f"u{i}" for i in u], dtype=object)
    fm = FeatureMatrix(
        X=X, names=list(NAMES), categorical=["partition_code"], stage="submit",
        cluster=np.array(["synth"] * n, dtype=object),
        job_id=np.array([str(i + 1) for i in range(n)], dtype=object), user=users,
        submit_time=submit, start_time=start, end_time=end, y=y, cls=cls,
        history_idx=history_index(users, submit, end, K), schema_hash="synthetic",
    )
    fm.meta["outcome_time"] = end.copy()
    return fm


def split(fm: FeatureMatrix, frac: float = 0.7, frac_end: Optional[float] = None):
    """Temporal split: the first ``frac`` of rows to train, the rest (up to frac_end) to test."""
    n = len(fm)
    a = int(n * frac)
    b = n if frac_end is None else int(n * frac_end)
    return fm.rows(np.arange(a)), fm.rows(np.arange(a, b))
