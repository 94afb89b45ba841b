"""The jobs table as columnar numpy arrays, sorted by submit time: the one input of the feature
builder. Runtime-safe (stdlib + numpy)."""

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence

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


def load_jobs(store, cluster: Optional[str] = None, max_jobs: Optional[int] = None,
              since: Optional[float] = None) -> JobTable:
    """All jobs with a submit time (of one cluster, or all; submitted at or after ``since``
    when given), sorted by submit time. ``max_jobs`` keeps the most recent N by submit time: only
    the jobs from the N-th newest submit time on are read. Read in batches straight into the
    columns (repeated text shared, not copied per row): memory is the table's arrays, not one
    Python object per row and field."""
    from ..store.job_queries import submit_time_cut, training_batches  # scoring imports this module, not the store

    if max_jobs is not None:
        cut = submit_time_cut(store, max_jobs, cluster)
        if cut is not None and (since is None or cut > since):
            since = cut

    # peak memory (max_rss_mb): sacct's MaxRSS, or the node recorder's peak when higher or when
    # accounting has none; both are outcome data, used only in the history of later jobs
    builder = ColumnBuilder()
    for batch in training_batches(store, TEXT_COLUMNS + NUMERIC_COLUMNS, cluster, since=since):
        builder.add(batch)
    if not builder.rows:
        where = f" for cluster {cluster!r}" if cluster else ""
        raise StoreError(f"no jobs in the store{where}",
                         hint="ingest jobs first (`nomade ingest sacct` or `nomade import swf FILE`)")
    jt = _sorted(builder.columns())
    if max_jobs is not None and len(jt) > max_jobs:
        jt = jt.take(np.arange(len(jt) - max_jobs, len(jt)))
    return jt


class ColumnBuilder:
    """Rows (tuples of TEXT_COLUMNS + NUMERIC_COLUMNS, in that order) gathered batch by batch into
    per-column arrays; equal strings are kept once (users, partitions, states repeat)."""

    def __init__(self) -> None:
        self.rows = 0
        self._parts: Dict[str, List[np.ndarray]] = {c: [] for c in TEXT_COLUMNS + NUMERIC_COLUMNS}
        self._seen: Dict[str, Dict[object, object]] = {c: {} for c in TEXT_COLUMNS}

    def add(self, batch: Sequence[Sequence[object]]) -> None:
        if not batch:
            return
        fields = list(zip(*batch))
        for i, c in enumerate(TEXT_COLUMNS):
            seen = self._seen[c]
            arr = np.empty(len(batch), dtype=object)
            arr[:] = [seen.setdefault(v, v) for v in fields[i]]
            self._parts[c].append(arr)
        k = len(TEXT_COLUMNS)
        for i, c in enumerate(NUMERIC_COLUMNS):
            self._parts[c].append(np.array(fields[k + i], dtype=np.float64))  # None -> NaN
        self.rows += len(batch)

    def columns(self) -> Dict[str, np.ndarray]:
        """The arrays (the batches are released as each column is joined)."""
        out: Dict[str, np.ndarray] = {}
        for c in TEXT_COLUMNS + NUMERIC_COLUMNS:
            parts = self._parts.pop(c)
            out[c] = (np.concatenate(parts) if parts else
                      np.array([], dtype=object if c in TEXT_COLUMNS else np.float64))
        self._seen = {}
        return out
