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


def write_score(conn: sqlite3.Connection, s: Score) -> None:
    """Insert or replace ``s`` inside a transaction the calling store module holds."""
    conn.execute("INSERT OR REPLACE INTO scores (cluster, job_id, stage, model_version, risk, level,"
                 " reasons, scored_at) VALUES (?,?,?,?,?,?,?,?)",
                 (s.cluster, s.job_id, s.stage, s.model_version, s.risk, s.level, s.reasons, s.scored_at))
