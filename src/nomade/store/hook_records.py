"""The ``hook_records`` table: what the Prolog, Epilog and MailProg wrote to the hook spool, one
row per (cluster, job, kind, node), with the record's JSON text."""

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ._query import all_rows
from .db import Store
from .scores import Score, write_score


@dataclass
class HookRecord:
    """One ``hook_records`` row; ``data`` is the spool record's JSON text."""
    cluster: str
    job_id: str
    kind: str               # 'start' (Prolog), 'end' (Epilog), 'mail' (MailProg)
    node: str
    written_at: float
    data: str
    loaded_at: float


def cluster_of_job_id(store: Store, job_id: str) -> str:
    """The cluster of the stored jobs with this job id when exactly one cluster has it, else ''
    (for a hook record that did not know its cluster)."""
    rows = store.conn.execute("SELECT DISTINCT cluster FROM jobs WHERE job_id = ?", (job_id,)).fetchall()
    return rows[0][0] if len(rows) == 1 else ""


def put_record(store: Store, rec: HookRecord, score: Optional[Score] = None) -> bool:
    """Store ``rec`` (and ``score``, the start score it carries) in one transaction. False, and
    nothing written, when the same record with the same data is already stored."""
    with store.transaction() as conn:
        old = conn.execute("SELECT data FROM hook_records WHERE cluster=? AND job_id=? AND kind=? AND node=?",
                           (rec.cluster, rec.job_id, rec.kind, rec.node)).fetchone()
        if old is not None and old[0] == rec.data:
            return False
        conn.execute("INSERT INTO hook_records (cluster, job_id, kind, node, written_at, data,"
                     " loaded_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT (cluster, job_id, kind, node) DO UPDATE"
                     " SET written_at = excluded.written_at, data = excluded.data, loaded_at = excluded.loaded_at",
                     (rec.cluster, rec.job_id, rec.kind, rec.node, rec.written_at, rec.data, rec.loaded_at))
        if score is not None:
            write_score(conn, score)
    return True


def delete_written_before(store: Store, cutoff: float) -> int:
    """Delete the records written before ``cutoff`` (epoch s); returns how many went."""
    with store.transaction() as conn:
        return conn.execute("DELETE FROM hook_records WHERE written_at < ?", (cutoff,)).rowcount


def job_records(store: Store, job_id: str, kind: str, cluster: str = "",
                limit: Optional[int] = None) -> List[Dict[str, Any]]:
    """The ``kind`` records of ``job_id`` (of ``cluster``; '' = any), newest first, as dicts of
    cluster and data (JSON text); at most ``limit``. No rows when the table is missing (a store from
    before the hooks' migration)."""
    sql = ("SELECT cluster, data FROM hook_records WHERE job_id = ? AND kind = ? "
           "AND (? = '' OR cluster = ?) ORDER BY written_at DESC")
    args = [job_id, kind, cluster, cluster]
    if limit is not None:
        sql, args = sql + " LIMIT ?", args + [max(0, int(limit))]
    return all_rows(store.conn, sql, args)


def array_task_records(store: Store, array_job_id: int, array_task_id: int, kind: str,
                       cluster: str = "", limit: Optional[int] = None) -> List[Dict[str, Any]]:
    """The ``kind`` records of array task ``array_job_id``_``array_task_id`` (stored under the
    task's raw id, SLURM_JOB_ID), found by the array ids the record holds (its ``job``: the hook's
    SLURM_ARRAY_JOB_ID/TASK_ID, else its ``request``: scontrol's ArrayJobId/ArrayTaskId), newest
    first, as dicts of cluster, job_id (the raw id) and data. The text match only narrows the rows;
    each is checked on those parsed fields, so text elsewhere in a record (a job name) cannot pass
    for the ids."""
    rows = all_rows(store.conn,
                    "SELECT cluster, job_id, data FROM hook_records WHERE kind = ? AND (? = '' OR cluster = ?) "
                    "AND data LIKE ? ORDER BY written_at DESC",
                    (kind, cluster, cluster, f'%"array_job_id": {int(array_job_id)}%'))
    want = (int(array_job_id), int(array_task_id))
    out = [row for row in rows if _array_ids_of(row["data"]) == want]
    return out if limit is None else out[:max(0, int(limit))]


def _array_ids_of(data: str) -> Optional[tuple]:
    try:
        rec = json.loads(data)
    except ValueError:
        return None
    for part in ("job", "request"):
        ids = rec.get(part) if isinstance(rec, dict) else None
        if isinstance(ids, dict) and ids.get("array_job_id") is not None:
            return ids.get("array_job_id"), ids.get("array_task_id")
    return None


def scratch_end_records(store: Store, cluster: str, since: float) -> List[Dict[str, Any]]:
    """The Epilog records (kind 'end') of ``cluster`` written at or after ``since`` that carry a
    scratch check (``"scratch": {...}``, docs/monitoring.md "scratch"), oldest first, as dicts
    of job_id, node, written_at and data (JSON text). The text match only narrows the rows:
    callers read the parsed record."""
    return all_rows(store.conn,
                    "SELECT job_id, node, written_at, data FROM hook_records WHERE kind = 'end' "
                    "AND cluster = ? AND written_at >= ? AND data LIKE ? ORDER BY written_at",
                    (cluster, float(since), '%"scratch": {%'))
