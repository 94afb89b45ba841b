"""Reads for the job behaviour analysis (``nomade.behaviour``, docs/behaviour.md): ended jobs with
their accounting and the node recorder's summary, and the monitoring engine's node statistics
(collector ``nodestats``) that the analysis averages over each job's run window.

Read-only: the analysis writes nothing here (its drift metrics go through ``store.metrics``)."""

from itertools import islice
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ._query import all_rows, placeholders
from .db import Store

# jobs columns, then job_summaries columns (NULL without a summary), in this order
JOB_COLUMNS = ("cluster", "job_id", "user", "uid", "state", "cancelled_by", "submit_time",
               "start_time", "end_time", "elapsed_s", "timelimit_s", "req_cpus", "alloc_cpus",
               "req_nodes", "alloc_nodes", "req_mem_mb", "req_mem_per_cpu", "req_gpus",
               "total_cpu_s", "max_rss_mb", "node_list", "partition")
SUMMARY_COLUMNS = ("mean_cpu_eff", "peak_rss_mb", "peak_cg_mem_mb", "write_bytes",
                   "write_local_bytes", "write_network_bytes", "write_tmpfs_bytes",
                   "peak_write_rate", "mean_gpu_util")
ENDED_COLUMNS = JOB_COLUMNS + tuple("s_" + c for c in SUMMARY_COLUMNS)

_ENDED = ("SELECT " + ", ".join("j." + c for c in JOB_COLUMNS) + ", "  # noqa: S608 (constant columns)
          + ", ".join("s." + c for c in SUMMARY_COLUMNS)
          + " FROM jobs j LEFT JOIN job_summaries s ON s.cluster = j.cluster AND s.job_id = j.job_id"
          " WHERE j.is_final = 1")


def ended_jobs(store: Store, cluster: Optional[str] = None,
               job_ids: Sequence[str] = ()) -> List[Tuple[Any, ...]]:
    """Every ended (final) job of ``cluster`` (None: all clusters), or only ``job_ids`` of it,
    as tuples in ``ENDED_COLUMNS`` order (the summary's columns prefixed ``s_``, None without a
    recorder summary), ordered by cluster and job id."""
    sql = _ENDED
    args: List[Any] = []
    if cluster is not None:
        sql, args = sql + " AND j.cluster = ?", [cluster]
    if job_ids:
        sql += f" AND j.job_id IN ({placeholders(len(job_ids))})"
        args += list(job_ids)
    return store.conn.execute(sql + " ORDER BY j.cluster, j.job_id", args).fetchall()


def ended_job_batches(store: Store, cluster: Optional[str] = None,
                      size: int = 50000) -> Iterator[List[Tuple[Any, ...]]]:
    """``ended_jobs`` in batches of at most ``size`` rows (one query, read as it goes): the
    caller turns each batch into column arrays, so a million jobs are never all Python tuples
    at once."""
    sql, args = _ENDED, []
    if cluster is not None:
        sql, args = sql + " AND j.cluster = ?", [cluster]
    rows = iter(store.conn.execute(sql + " ORDER BY j.cluster, j.job_id", args))
    while True:
        batch = list(islice(rows, size))
        if not batch:
            return
        yield batch


def content_mark(store: Store) -> Tuple[Any, ...]:
    """A cheap mark of what the behaviour vectors are read from, for caches of them: the newest
    rows of jobs and recorder summaries and the live ingestions' last moves (an index look-up
    each). A job or summary updated in place outside a live ingestion does not change it, nor do
    new node statistics: caches also expire by age."""
    one = store.conn.execute
    return (one("SELECT coalesce(max(rowid), 0) FROM jobs").fetchone()[0],
            one("SELECT coalesce(max(rowid), 0) FROM job_summaries").fetchone()[0],
            one("SELECT max(updated_at) FROM ingest_state").fetchone()[0])


def node_stat_points(store: Store, metrics: Sequence[str],
                     cluster: Optional[str] = None) -> Dict[Tuple[str, str], List[Tuple[float, float]]]:
    """The nodestats points of ``metrics`` per (metric, host), oldest first: raw samples, and the
    hourly averages (at the middle of the hour) where raw samples were pruned. Only per-host
    series without labels, or with ``window`` = ``avg10`` (the PSI series; the ``interval`` one
    would count the same stall twice)."""
    if not metrics:
        return {}
    where = (f"s.source = 'nodestats' AND s.host != '' AND s.metric IN ({placeholders(len(metrics))})"
             " AND (s.labels = '{}' OR s.labels = '{\"window\":\"avg10\"}')")
    args: List[Any] = list(metrics)
    if cluster is not None:
        where += " AND s.cluster = ?"
        args.append(cluster)
    raw = all_rows(store.conn, "SELECT s.metric AS metric, s.host AS host, m.ts AS ts, m.value AS value "  # noqa: S608 (placeholders)
                               "FROM metric_series s JOIN metric_samples m ON m.series_id = s.id "
                               f"WHERE {where}", args)
    hourly = all_rows(store.conn, "SELECT s.metric AS metric, s.host AS host, h.hour + 1800 AS ts, "  # noqa: S608 (placeholders)
                                  "h.avg AS value FROM metric_series s JOIN metric_hourly h "
                                  f"ON h.series_id = s.id WHERE {where}", args)
    out: Dict[Tuple[str, str], List[Tuple[float, float]]] = {}
    for r in raw + hourly:
        out.setdefault((r["metric"], r["host"]), []).append((float(r["ts"]), float(r["value"])))
    for pts in out.values():
        pts.sort()
    return out
