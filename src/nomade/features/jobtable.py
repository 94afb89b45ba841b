"""The jobs table as columnar numpy arrays, sorted by submit time: the one input of the feature
builder. Runtime-safe (stdlib + numpy)."""

from dataclasses import dataclass
from typing import Dict, Iterable, Optional

import numpy as np

from ..errors import StoreError

# columns read from the store; outcome columns are used for labels and history only
TEXT_COLUMNS = ("cluster", "job_id", "name", "user", "grp", "account", "partition", "qos",
                "state", "node_list")
NUMERIC_COLUMNS = ("uid", "submit_time", "req_cpus", "req_nodes", "req_mem_mb", "req_mem_per_cpu",
                   "timelimit_s", "req_gpus", "cancelled_by", "is_final", "exit_code",
                   "start_time", "end_time", "elapsed_s", "alloc_cpus", "max_rss_mb", "job_id_raw")


@dataclass
class JobTable:
    """One array per column (object arrays for text, float64 with NaN for numbers), rows in
    ascending submit-time order (ties: numeric job id, then job id text)."""

    cols: Dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.cols["job_id"].shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]

    def take(self, idx: np.ndarray) -> "JobTable":
        return JobTable({k: v[idx] for k, v in self.cols.items()})


def _sorted(cols: Dict[str, np.ndarray]) -> JobTable:
    sub = cols["submit_time"]
    sub_key = np.where(np.isnan(sub), np.inf, sub)
    raw = np.where(np.isnan(cols["job_id_raw"]), np.inf, cols["job_id_raw"])
    order = np.lexsort((cols["job_id"].astype(str), raw, sub_key))
    return JobTable({k: v[order] for k, v in cols.items()})


def table_from_rows(rows: Iterable[Dict[str, object]]) -> JobTable:
    """Build a JobTable from mappings (store rows, dicts or JobRecord.__dict__)."""
    rows = list(rows)
    cols: Dict[str, np.ndarray] = {}
    for c in TEXT_COLUMNS:
        cols[c] = np.array([r[c] for r in rows] if rows else [], dtype=object)
    for c in NUMERIC_COLUMNS:
        vals = [r[c] for r in rows]
        cols[c] = np.array([np.nan if v is None else float(v) for v in vals], dtype=np.float64)
    return _sorted(cols)


def load_jobs(store, cluster: Optional[str] = None, max_jobs: Optional[int] = None) -> JobTable:
    """All jobs with a submit time (of one cluster, or all), sorted by submit time.
    ``max_jobs`` keeps the most recent N by submit time."""
    from ..store.job_queries import jobs_for_training  # scoring imports this module, not the store

    # peak memory (max_rss_mb): sacct's MaxRSS, or the node recorder's peak when higher or when
    # accounting has none; both are outcome data, used only in the history of later jobs
    rows = jobs_for_training(store, TEXT_COLUMNS + NUMERIC_COLUMNS, cluster)
    if not rows:
        where = f" for cluster {cluster!r}" if cluster else ""
        raise StoreError(f"no jobs in the store{where}",
                         hint="ingest jobs first (`nomade ingest sacct` or `nomade import swf FILE`)")
    jt = table_from_rows(rows)
    if max_jobs is not None and len(jt) > max_jobs:
        jt = jt.take(np.arange(len(jt) - max_jobs, len(jt)))
    return jt
