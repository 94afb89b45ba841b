"""The alert engine's tables (migration 0009; docs/alerts.md): ``alerts`` (one row per occurrence
of a fingerprint; the open one carries the state), ``alert_silences``, ``alert_deliveries`` (the
outbox: every notification to every channel, kept until delivered or given up) and the reads the
rules make over metrics, scores, early-warning events and ended jobs.

``save_pass`` writes one evaluation pass (state changes and the notifications they queue) in one
transaction, so a daemon restart neither re-sends what was queued nor forgets a firing alert.
"""

import json
import sqlite3
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ._query import all_rows, one_row, placeholders
from .db import Store

ALERT_COLS = ("fingerprint", "rule", "cluster", "severity", "state", "labels", "value", "summary",
              "description", "owner", "started_at", "fired_at", "resolved_at", "updated_at",
              "last_sent_at", "last_sent_status", "acked_at", "acked_until", "acked_by", "ack_note")
_INSERT_ALERT = (f"INSERT INTO alerts ({', '.join(ALERT_COLS)}) "  # noqa: S608 (constant columns)
                 f"VALUES ({placeholders(len(ALERT_COLS))})")
# the engine never writes the acknowledgement (``ack`` does, maybe while a pass runs)
_ENGINE_COLS = tuple(c for c in ALERT_COLS[1:] if not c.startswith("ack"))
_UPDATE_ALERT = ("UPDATE alerts SET " + ", ".join(f"{c} = ?" for c in _ENGINE_COLS)  # noqa: S608 (constant columns)
                 + " WHERE id = ?")
_INSERT_DELIVERY = ("INSERT INTO alert_deliveries (channel, group_key, payload, created_at, next_try) "
                    "VALUES (?, ?, ?, ?, ?)")


def _decode(row: Dict[str, Any]) -> Dict[str, Any]:
    row["labels"] = json.loads(row["labels"])
    return row


# ---------------------------------------------------------------------------------- alerts
def open_alerts(store: Store) -> Dict[str, Dict[str, Any]]:
    """The open alert (not resolved) of every fingerprint that has one: {fingerprint: row}."""
    rows = all_rows(store.conn, "SELECT * FROM alerts WHERE resolved_at IS NULL ORDER BY id", ())
    return {r["fingerprint"]: _decode(r) for r in rows}


def last_sent(store: Store, fingerprints: Sequence[str]) -> Dict[str, float]:
    """When a notification of each fingerprint was last queued (any occurrence): the cooldown."""
    out: Dict[str, float] = {}
    fps = list(fingerprints)
    for i in range(0, len(fps), 500):
        part = fps[i:i + 500]
        for r in all_rows(store.conn, "SELECT fingerprint, MAX(last_sent_at) AS t FROM alerts "  # noqa: S608 (placeholders)
                                      f"WHERE fingerprint IN ({placeholders(len(part))}) GROUP BY fingerprint",
                          part):
            if r["t"] is not None:
                out[r["fingerprint"]] = r["t"]
    return out


def save_pass(store: Store, rows: Iterable[Dict[str, Any]], deleted: Iterable[int],
              outbox: Callable[[Dict[str, int]], List[Tuple[str, str, str, float]]]) -> Dict[str, int]:
    """One evaluation pass in one transaction: ``rows`` (alert dicts; with "id" updated, without
    inserted), ``deleted`` (ids of pending alerts whose condition cleared before firing), then
    ``outbox({fingerprint: id})`` -> [(channel, group_key, payload JSON, next_try)] queued.
    Returns {fingerprint: id} of the rows written."""
    ids: Dict[str, int] = {}
    with store.transaction() as conn:
        for aid in deleted:
            conn.execute("DELETE FROM alerts WHERE id = ? AND state = 'pending'", (aid,))
        for r in rows:
            if r.get("id") is None:
                values = [json.dumps(r["labels"], sort_keys=True) if c == "labels" else r.get(c)
                          for c in ALERT_COLS]
                ids[r["fingerprint"]] = conn.execute(_INSERT_ALERT, values).lastrowid
            else:
                values = [json.dumps(r["labels"], sort_keys=True) if c == "labels" else r.get(c)
                          for c in _ENGINE_COLS]
                conn.execute(_UPDATE_ALERT, values + [r["id"]])
                ids[r["fingerprint"]] = r["id"]
        for channel, key, payload, next_try in outbox(ids):
            conn.execute(_INSERT_DELIVERY, (channel, key, payload, next_try, next_try))
    return ids


def list_alerts(store: Store, *, unresolved: bool = False, severity: Optional[str] = None,
                since: Optional[float] = None, owner: Optional[str] = None,
                limit: int = 1000) -> List[Dict[str, Any]]:
    """Alerts newest first (pending ones left out): open only (``unresolved``), of a severity,
    updated since a time, about one user's jobs (``owner``)."""
    sql, args = "SELECT * FROM alerts WHERE state <> 'pending'", []  # type: Tuple[str, List[Any]]
    if unresolved:
        sql += " AND resolved_at IS NULL"
    if severity:
        sql, args = sql + " AND severity = ?", args + [severity]
    if since is not None:
        sql, args = sql + " AND updated_at >= ?", args + [since]
    if owner is not None:
        sql, args = sql + " AND owner = ?", args + [owner]
    return [_decode(r) for r in all_rows(store.conn, sql + " ORDER BY id DESC LIMIT ?", args + [limit])]


def get_alert(store: Store, alert_id: int) -> Optional[Dict[str, Any]]:
    row = one_row(store.conn, "SELECT * FROM alerts WHERE id = ?", (alert_id,))
    return _decode(row) if row else None


def ack(store: Store, alert_id: int, now: float, until: Optional[float], by: str, note: str) -> bool:
    """Acknowledge an open alert (no repeats until ``until``, None: until it resolves)."""
    with store.transaction() as conn:
        n = conn.execute("UPDATE alerts SET acked_at = ?, acked_until = ?, acked_by = ?, ack_note = ?, "
                         "updated_at = ? WHERE id = ? AND resolved_at IS NULL",
                         (now, until, by, note, now, alert_id)).rowcount
    return n > 0


# ---------------------------------------------------------------------------------- silences
def add_silence(store: Store, matchers: Dict[str, str], starts_at: float, ends_at: float, by: str,
                note: str) -> int:
    with store.transaction() as conn:
        return conn.execute("INSERT INTO alert_silences (matchers, starts_at, ends_at, created_by, note) "
                            "VALUES (?, ?, ?, ?, ?)",
                            (json.dumps(matchers, sort_keys=True), starts_at, ends_at, by, note)).lastrowid


def silences(store: Store, now: Optional[float] = None) -> List[Dict[str, Any]]:
    """Silences, newest first; with ``now`` only those in force then."""
    sql, args = "SELECT * FROM alert_silences", []  # type: Tuple[str, List[Any]]
    if now is not None:
        sql, args = sql + " WHERE starts_at <= ? AND ends_at > ?", [now, now]
    rows = all_rows(store.conn, sql + " ORDER BY id DESC", args)
    for r in rows:
        r["matchers"] = json.loads(r["matchers"])
    return rows


# ---------------------------------------------------------------------------------- deliveries
def due_deliveries(store: Store, now: float) -> List[Dict[str, Any]]:
    """Queued notifications not yet delivered whose next try is due, oldest first."""
    return all_rows(store.conn, "SELECT * FROM alert_deliveries WHERE done = 0 AND next_try <= ? "
                                "ORDER BY id", (now,))


def finish_delivery(store: Store, delivery_id: int, *, ok: bool, attempts: int, error: str,
                    next_try: float, done: bool, now: float) -> None:
    with store.transaction() as conn:
        conn.execute("UPDATE alert_deliveries SET ok = ?, attempts = attempts + ?, error = ?, next_try = ?, "
                     "done = ?, sent_at = ? WHERE id = ?",
                     (1 if ok else 0, attempts, error, next_try, 1 if done else 0, now if ok else None,
                      delivery_id))


def undelivered(store: Store, limit: int = 100) -> List[Dict[str, Any]]:
    """Notifications that did not reach their channel (still retried, or given up), newest first."""
    return all_rows(store.conn, "SELECT id, channel, group_key, attempts, error, created_at, next_try, done "
                                "FROM alert_deliveries WHERE ok = 0 AND attempts > 0 ORDER BY id DESC LIMIT ?",
                    (limit,))


def deliveries(store: Store, limit: int = 100) -> List[Dict[str, Any]]:
    return all_rows(store.conn, "SELECT * FROM alert_deliveries ORDER BY id DESC LIMIT ?", (limit,))


# ---------------------------------------------------------------------------------- rule inputs
def latest_samples(store: Store, cluster: Optional[str] = None,
                   decode: Callable[[str], Dict[str, str]] = json.loads) -> List[Dict[str, Any]]:
    """Every metric series with its newest raw sample: id, cluster, metric, host, source,
    labels (``decode`` of the text: a caller may cache), key (the labels' canonical JSON text),
    ts, value."""
    sql = ("SELECT s.id, s.cluster, s.metric, s.host, s.source, s.labels, m.ts, m.value "
           "FROM metric_series s CROSS JOIN metric_samples m ON m.series_id = s.id "
           "AND m.ts = (SELECT MAX(ts) FROM metric_samples WHERE series_id = s.id)")
    args: List[Any] = []
    if cluster is not None:
        sql, args = sql + " WHERE s.cluster = ?", [cluster]
    try:
        raw = store.conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    # tuples, not Row -> dict: this runs after every collection cycle over every series
    return [{"id": r[0], "cluster": r[1], "metric": r[2], "host": r[3], "source": r[4], "key": r[5],
             "labels": decode(r[5]), "ts": r[6], "value": r[7]} for r in raw]


def window_points(store: Store, series_ids: Sequence[int], since: float) -> Dict[int, List[Tuple[float, float]]]:
    """Raw points of each series at or after ``since``, oldest first: {series id: [(ts, value)]}."""
    out: Dict[int, List[Tuple[float, float]]] = {i: [] for i in series_ids}
    ids = list(series_ids)
    for i in range(0, len(ids), 500):
        part = ids[i:i + 500]
        for r in all_rows(store.conn, "SELECT series_id, ts, value FROM metric_samples "  # noqa: S608 (placeholders)
                                      f"WHERE series_id IN ({placeholders(len(part))}) AND ts >= ? "
                                      "ORDER BY series_id, ts", part + [since]):
            out[r["series_id"]].append((r["ts"], r["value"]))
    return out


def recent_scores(store: Store, since: float, min_risk: float) -> List[Dict[str, Any]]:
    """Scores at or above ``min_risk`` given since ``since``, with the job's user when known."""
    return all_rows(store.conn,
                    "SELECT s.cluster, s.job_id, s.stage, s.risk, s.level, s.reasons, s.scored_at, j.user "
                    "FROM scores s LEFT JOIN jobs j ON j.cluster = s.cluster AND j.job_id = s.job_id "
                    "WHERE s.scored_at >= ? AND s.risk >= ? ORDER BY s.scored_at", (since, min_risk))


def recent_events(store: Store, since: float) -> List[Dict[str, Any]]:
    """The recorder's early warnings raised since ``since``, with the job's user when known."""
    return all_rows(store.conn,
                    "SELECT e.id, e.cluster, e.job_id, e.node, e.kind, e.created_at, e.detail, j.user "
                    "FROM events e LEFT JOIN jobs j ON j.cluster = e.cluster AND j.job_id = e.job_id "
                    "WHERE e.created_at >= ? ORDER BY e.created_at", (since,))


_FAILED = "('FAILED', 'NODE_FAIL')"


def failure_rates(store: Store, recent_since: float, usual_since: float) -> List[Dict[str, Any]]:
    """Per cluster and partition, and per cluster and node of one-node jobs: jobs ended since
    ``usual_since`` and how many failed (FAILED, NODE_FAIL), split into those that ended since
    ``recent_since`` (recent_n, recent_failed) and before (usual_n, usual_failed)."""
    out = []
    for kind, col, extra in (("partition", "partition", ""), ("node", "node_list", " AND alloc_nodes = 1")):
        out += [dict(r, kind=kind) for r in all_rows(
            store.conn,
            f"SELECT cluster, {col} AS name, "  # noqa: S608 (constant columns)
            "SUM(CASE WHEN end_time >= ? THEN 1 ELSE 0 END) AS recent_n, "
            f"SUM(CASE WHEN end_time >= ? AND state IN {_FAILED} THEN 1 ELSE 0 END) AS recent_failed, "
            "SUM(CASE WHEN end_time < ? THEN 1 ELSE 0 END) AS usual_n, "
            f"SUM(CASE WHEN end_time < ? AND state IN {_FAILED} THEN 1 ELSE 0 END) AS usual_failed "
            f"FROM jobs WHERE end_time >= ? AND is_final = 1 AND {col} IS NOT NULL{extra} "
            f"GROUP BY cluster, {col}",
            (recent_since, recent_since, recent_since, recent_since, usual_since))]
    return out
