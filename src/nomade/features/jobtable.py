"""The jobs table as columnar numpy arrays, sorted by submit time: the one input of the feature
builder. Runtime-safe (stdlib + numpy)."""

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional

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
    """Build a JobTable from mappings (sqlite3.Row, dicts or JobRecord.__dict__)."""
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
    cols: List[str] = [f"j.{c}" for c in TEXT_COLUMNS + NUMERIC_COLUMNS if c != "max_rss_mb"]
    # peak memory: sacct's MaxRSS, or the node recorder's peak (job_summaries) when higher or
    # when accounting has none (sites without jobacct_gather); both are outcome data, used only
    # in the history of later jobs
    cols.append("CASE WHEN s.peak_mb IS NOT NULL AND (j.max_rss_mb IS NULL OR s.peak_mb > j.max_rss_mb) "
                "THEN s.peak_mb ELSE j.max_rss_mb END AS max_rss_mb")
    q = (f"SELECT {', '.join(cols)} FROM jobs j"  # noqa: S608 (column list is nomade's constants)
         " LEFT JOIN (SELECT cluster, job_id, "
         "nullif(max(coalesce(peak_cg_mem_mb, 0), coalesce(peak_rss_mb, 0)), 0) AS peak_mb "
         "FROM job_summaries) s "
         "ON s.cluster = j.cluster AND s.job_id = j.job_id WHERE j.submit_time IS NOT NULL")
    args: list = []
    if cluster:
        q += " AND j.cluster = ?"
        args.append(cluster)
    rows = store.conn.execute(q, args).fetchall()
    if not rows:
        where = f" for cluster {cluster!r}" if cluster else ""
        raise StoreError(f"no jobs in the store{where}",
                         hint="ingest jobs first (`nomade ingest sacct` or `nomade import swf FILE`)")
    jt = table_from_rows(rows)
    if max_jobs is not None and len(jt) > max_jobs:
        jt = jt.take(np.arange(len(jt) - max_jobs, len(jt)))
    return jt
