"""The node recorder's tables: ``samples`` (one per job, node and time), ``job_summaries`` (per
job, rebuilt from its samples) and ``events`` (early warnings, one per job, node and kind)."""

import sqlite3
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..recorder.sample import SAMPLE_COLUMNS
from ._query import all_rows, one_row, placeholders
from .db import Store

SAMPLE_COLS = ("cluster", "job_id", "node", "ts") + SAMPLE_COLUMNS + ("extra",)
EVENT_COLS = ("cluster", "job_id", "node", "kind", "created_at", "detail", "notified")
SUMMARY_COLS = ("cluster", "job_id", "sample_count", "nodes", "first_ts", "last_ts", "peak_rss_mb",
                "peak_cg_mem_mb", "cg_mem_limit_mb", "mean_cpu_eff", "cpu_time_s", "read_bytes",
                "write_bytes", "write_local_bytes", "write_network_bytes", "write_tmpfs_bytes",
                "peak_write_rate", "peak_gpu_mem_mb", "mean_gpu_util", "updated_at")
_INSERT_SAMPLE = (f"INSERT INTO samples ({', '.join(SAMPLE_COLS)}) "  # noqa: S608 (constant columns)
                  f"VALUES ({placeholders(len(SAMPLE_COLS))}) ON CONFLICT (cluster, job_id, node, ts) DO NOTHING")
_INSERT_EVENT = (f"INSERT INTO events ({', '.join(EVENT_COLS)}) "  # noqa: S608 (constant columns)
                 f"VALUES ({placeholders(len(EVENT_COLS))}) ON CONFLICT (cluster, job_id, node, kind) DO NOTHING")
_INSERT_SUMMARY = (f"INSERT INTO job_summaries ({', '.join(SUMMARY_COLS)}) "  # noqa: S608 (constant columns)
                   f"VALUES ({placeholders(len(SUMMARY_COLS))}) ON CONFLICT (cluster, job_id) DO UPDATE SET "
                   + ", ".join(f"{c} = excluded.{c}" for c in SUMMARY_COLS[2:]))
_SUMMARY_INPUT = ("SELECT node, ts, cpu_time_s, cpu_eff, rss_mb, cg_mem_mb, cg_mem_limit_mb, read_bytes, "
                  "write_bytes, write_local_bytes, write_network_bytes, gpu_util, gpu_mem_mb, extra "
                  "FROM samples WHERE cluster = ? AND job_id = ? ORDER BY node, ts")
BATCH = 2000     # rows per transaction


def _insert_new(store: Store, sql: str, rows: List[tuple]) -> int:
    new = 0
    for i in range(0, len(rows), BATCH):
        with store.transaction() as conn:
            before = conn.total_changes
            conn.executemany(sql, rows[i:i + BATCH])
            new += conn.total_changes - before
    return new


def add_samples(store: Store, rows: List[tuple]) -> int:
    """Insert sample rows (values in SAMPLE_COLS order), ``BATCH`` per transaction; a row whose
    (cluster, job_id, node, ts) is stored already is skipped. Returns how many were new."""
    return _insert_new(store, _INSERT_SAMPLE, rows)


def add_events(store: Store, rows: List[tuple]) -> int:
    """Insert early-warning events (values in EVENT_COLS order), ``BATCH`` per transaction; one
    whose (cluster, job_id, node, kind) is stored already is skipped. Returns how many were new."""
    return _insert_new(store, _INSERT_EVENT, rows)


def rebuild_summaries(store: Store, jobs: Iterable[Tuple[str, str]],
                      summarize: Callable[[Sequence[sqlite3.Row]], tuple], now: float) -> int:
    """In one transaction, for each (cluster, job_id) with samples: its ``job_summaries`` row,
    ``summarize(samples)`` (sample_count .. mean_gpu_util) from its samples ordered by node and ts
    (node, ts, cpu_time_s, cpu_eff, rss_mb, cg_mem_mb, cg_mem_limit_mb, read_bytes, write_bytes,
    write_local_bytes, write_network_bytes, gpu_util, gpu_mem_mb, extra), updated at ``now``.
    Returns how many jobs were summarized."""
    n = 0
    with store.transaction() as conn:
        for cluster, job_id in sorted(jobs):
            rows = conn.execute(_SUMMARY_INPUT, (cluster, job_id)).fetchall()
            if not rows:
                continue
            conn.execute(_INSERT_SUMMARY, (cluster, job_id) + tuple(summarize(rows)) + (now,))
            n += 1
    return n


def job_summary(store: Store, cluster: str, job_id: str) -> Optional[Dict[str, Any]]:
    """The ``job_summaries`` row of (cluster, job_id) as a dict; None when there is none (or the
    table is missing: a store from before the recorder's migration)."""
    return one_row(store.conn, "SELECT * FROM job_summaries WHERE cluster = ? AND job_id = ?",
                   (cluster, job_id))


def job_events(store: Store, job_id: str, clusters: Sequence[str]) -> List[Dict[str, Any]]:
    """The events of ``job_id`` stored under any of ``clusters``, oldest first, as dicts of kind,
    node, created_at and detail (JSON text); none when the table is missing."""
    keys = list(clusters)
    return all_rows(store.conn,
                    "SELECT kind, node, created_at, detail FROM events WHERE job_id = ? "  # noqa: S608 (placeholders only)
                    f"AND cluster IN ({placeholders(len(keys))}) ORDER BY created_at",
                    [job_id] + keys)


def ended_job_samples(store: Store, cluster: Optional[str] = None) -> Iterator[sqlite3.Row]:
    """The samples of ended jobs (of ``cluster``; None = all), ordered by cluster, job, node and
    time, each with its job's submit_time, state, cancelled_by, uid and exit_code: rows with
    cluster, job_id, node, ts, cpu_eff, rss_mb, cg_mem_mb, cg_mem_limit_mb, write_bytes, extra
    and those. Read lazily."""
    sql = ("SELECT s.cluster, s.job_id, s.node, s.ts, "  # noqa: S608 (constant clauses only)
           "s.cpu_eff, s.rss_mb, s.cg_mem_mb, "
           "s.cg_mem_limit_mb, s.write_bytes, s.extra, j.submit_time, j.state, j.cancelled_by, "
           "j.uid, j.exit_code FROM samples s JOIN jobs j ON j.cluster = s.cluster AND "
           "j.job_id = s.job_id WHERE j.is_final = 1" + (" AND s.cluster = ?" if cluster else "")
           + " ORDER BY s.cluster, s.job_id, s.node, s.ts")
    return iter(store.conn.execute(sql, (cluster,) if cluster else ()))


# jobs ending in the window were submitted at most this long before it (bounds the scan with the
# (cluster, submit_time) index; a job that ran longer than this is left out of the coverage)
COVERAGE_SUBMIT_LOOKBACK_S = 90 * 86400.0


def recorder_coverage(store: Store, cluster: str, since: float, until: float,
                      min_runtime_s: float = 0.0) -> Tuple[int, int]:
    """(ended, recorded): the jobs of ``cluster`` that ended in [since, until] after running at
    least ``min_runtime_s``, and how many of them have recorder samples (a ``job_summaries`` row
    under their JobID, or under their JobIDRaw: an array task's SLURM_JOB_ID, which the recorder
    sees). (0, 0) when the tables are missing."""
    row = one_row(
        store.conn,
        "SELECT COUNT(*) AS ended, SUM(CASE WHEN EXISTS (SELECT 1 FROM job_summaries s "
        "WHERE s.cluster = j.cluster AND s.job_id = j.job_id) OR EXISTS (SELECT 1 FROM job_summaries s "
        "WHERE s.cluster = j.cluster AND s.job_id = CAST(j.job_id_raw AS TEXT)) THEN 1 ELSE 0 END) AS recorded "
        "FROM jobs j WHERE j.cluster = ? AND j.submit_time >= ? AND j.is_final = 1 "
        "AND j.end_time >= ? AND j.end_time <= ? AND j.start_time IS NOT NULL "
        "AND j.end_time - j.start_time >= ?",
        (cluster, float(since) - COVERAGE_SUBMIT_LOOKBACK_S, float(since), float(until),
         float(min_runtime_s)))
    if row is None:
        return 0, 0
    return int(row["ended"] or 0), int(row["recorded"] or 0)
