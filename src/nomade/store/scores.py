"""The ``scores`` table: the risks a model gave a job at a stage (submit, start, running)."""

import sqlite3
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from ._query import all_rows, placeholders
from .db import Store


@dataclass
class Score:
    """One ``scores`` row; ``reasons`` is the JSON text of the reasons list."""
    cluster: str
    job_id: str
    stage: str
    model_version: str
    risk: float
    level: Optional[str]
    reasons: str
    scored_at: float


def job_scores(store: Store, job_id: str, clusters: Sequence[str]) -> List[Dict[str, Any]]:
    """The scores of ``job_id`` stored under any of ``clusters``, oldest first, as dicts of
    stage, risk, level, model_version and reasons (JSON text)."""
    keys = list(clusters)
    return all_rows(store.conn,
                    "SELECT stage, risk, level, model_version, reasons FROM scores "  # noqa: S608 (placeholders only)
                    f"WHERE job_id = ? AND cluster IN ({placeholders(len(keys))}) ORDER BY scored_at",
                    [job_id] + keys)


def scores_of_jobs(store: Store, keys: Sequence[Any], chunk: int = 500) -> List[Dict[str, Any]]:
    """The scores of the jobs ``keys`` ((cluster, job_id) pairs), as dicts of cluster, job_id,
    stage, risk, level, model_version and scored_at, oldest first per job (the API's jobs frame)."""
    by_cluster: Dict[str, List[str]] = {}
    for cluster, job_id in keys:
        by_cluster.setdefault(cluster, []).append(job_id)
    out: List[Dict[str, Any]] = []
    for cluster, ids in by_cluster.items():
        for i in range(0, len(ids), chunk):
            part = ids[i:i + chunk]
            out += all_rows(store.conn,
                            "SELECT cluster, job_id, stage, risk, level, model_version, scored_at "  # noqa: S608 (placeholders only)
                            f"FROM scores WHERE cluster = ? AND job_id IN ({placeholders(len(part))}) "
                            "ORDER BY job_id, scored_at", [cluster] + part)
    return out


def write_score(conn: sqlite3.Connection, s: Score) -> None:
    """Insert or replace ``s`` inside a transaction the calling store module holds."""
    conn.execute("INSERT INTO scores (cluster, job_id, stage, model_version, risk, level,"
                 " reasons, scored_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (cluster, job_id, stage, model_version)"
                 " DO UPDATE SET risk = excluded.risk, level = excluded.level, reasons = excluded.reasons,"
                 " scored_at = excluded.scored_at",
                 (s.cluster, s.job_id, s.stage, s.model_version, s.risk, s.level, s.reasons, s.scored_at))


REQUEST_COLUMNS = ("cluster", "job_id", "user", "uid", "name", "partition", "account", "qos", "req_cpus",
                   "req_nodes", "req_gpus", "req_mem_mb", "req_mem_per_cpu", "timelimit_s", "submit_time",
                   "start_time", "node_list", "state")


def jobs_without_stage(store: Store, stage: str, submitted_from: float, limit: int) -> List[Dict[str, Any]]:
    """Up to ``limit`` jobs submitted at or after ``submitted_from`` with no ``stage`` score, oldest
    submission first, as dicts of REQUEST_COLUMNS (what a scoring request is built from)."""
    cols = ", ".join(f"j.{c}" for c in REQUEST_COLUMNS)
    return all_rows(store.conn,
                    f"SELECT {cols} FROM jobs j WHERE j.submit_time >= ? AND NOT EXISTS ("  # noqa: S608 (constant columns)
                    "SELECT 1 FROM scores s WHERE s.cluster = j.cluster AND s.job_id = j.job_id AND s.stage = ?) "
                    "ORDER BY j.submit_time, j.job_id LIMIT ?",
                    [submitted_from, stage, int(limit)])


def submits_between(store: Store, cluster: str, uid: int, start: float, end: float) -> List[float]:
    """The submit times of ``uid``'s jobs on ``cluster`` in [start, end), sorted."""
    rows = store.conn.execute("SELECT submit_time FROM jobs WHERE cluster = ? AND uid = ? "
                              "AND submit_time >= ? AND submit_time < ? ORDER BY submit_time",
                              (cluster, uid, start, end)).fetchall()
    return [float(r[0]) for r in rows]


def write_scores(store: Store, scores: Sequence[Score]) -> int:
    """Store ``scores`` in one transaction (a score already stored for the same job, stage and
    model version is replaced); returns how many."""
    with store.transaction() as conn:
        for s in scores:
            write_score(conn, s)
    return len(scores)


def scores_with_outcomes(store: Store, since: float, stages: Sequence[str]) -> List[Dict[str, Any]]:
    """The ``stages`` scores of jobs submitted at or after ``since`` whose accounting says they
    ended (is_final), with the job's state, cancelled_by, uid and exit code; the Prolog's record
    of the start stage (``hook_data``: its JSON, with whether the job was warned) when kept."""
    keys = list(stages)
    return all_rows(store.conn,
                    "SELECT s.cluster, s.job_id, s.stage, s.model_version, s.risk, s.level, s.reasons, "  # noqa: S608 (placeholders only)
                    "s.scored_at, j.state, j.cancelled_by, j.uid, j.exit_code, j.submit_time, "
                    "(SELECT h.data FROM hook_records h WHERE h.cluster = s.cluster AND h.job_id = s.job_id "
                    "AND h.kind = 'start' AND s.stage = 'start' LIMIT 1) AS hook_data "
                    "FROM scores s JOIN jobs j ON j.cluster = s.cluster AND j.job_id = s.job_id "
                    f"WHERE j.is_final = 1 AND j.submit_time >= ? AND s.stage IN ({placeholders(len(keys))}) "
                    "ORDER BY j.submit_time",
                    [since] + keys)
