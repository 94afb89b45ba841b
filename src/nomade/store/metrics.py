"""The monitoring engine's time series (migration 0008; docs/monitoring.md "Storage and retention").

A series is one (cluster, host, source, metric, labels); ``labels`` are canonical JSON text (keys
sorted, compact). Raw samples (``metric_samples``) are kept ``monitoring.raw_days``; ``prune``
folds older ones into hourly rows (``metric_hourly``: average, min, max, count) kept
``monitoring.rollup_days``. ``series`` reads both, so a window older than the raw retention still
has points (one per hour, at the middle of the hour, the hour's average). ``collector_runs``
records every collector run, ok or not, for ``collector_health`` (``nomade status``, syscheck).

Two clusters never mix: every read takes ``cluster`` (None = any cluster; pass it when a store
holds several).
"""

import json
import time
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ._query import all_rows, placeholders
from .db import Store

HOUR = 3600
DAY = 86400


class Latest(NamedTuple):
    """One series' newest raw sample (a tuple: ``metric, labels, host, ts, value = row``)."""
    metric: str
    labels: Dict[str, str]
    host: str
    ts: float
    value: float


def labels_text(labels: Any) -> str:
    """Canonical JSON of labels given as a dict or as (key, value) pairs: keys sorted, values text."""
    items = labels.items() if isinstance(labels, Mapping) else (labels or ())
    return json.dumps({str(k): str(v) for k, v in sorted(items)}, sort_keys=True, separators=(",", ":"))


_FIND_SERIES = ("SELECT id FROM metric_series WHERE cluster = ? AND metric = ? AND host = ? "
                "AND labels = ? AND source = ?")
_ADD_SERIES = "INSERT INTO metric_series (cluster, host, source, metric, labels) VALUES (?, ?, ?, ?, ?)"
_ADD_SAMPLE = ("INSERT INTO metric_samples (series_id, ts, value) VALUES (?, ?, ?) "
               "ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value")


def write_cycle(store: Store, cluster: str, source: str, metrics: Iterable[Any], ts: float) -> int:
    """Write one cycle's metrics (``nomade.collectors.base.Metric``: metric, value, labels, host,
    ts) of collector ``source`` in one transaction; a metric without its own ts gets ``ts``.
    A second value for the same series and time replaces the first. Returns how many were written."""
    n = 0
    with store.transaction() as conn:
        ids: Dict[tuple, int] = {}
        for m in metrics:
            key = (m.metric, m.host or "", labels_text(m.labels))
            sid = ids.get(key)
            if sid is None:
                row = conn.execute(_FIND_SERIES, (cluster, key[0], key[1], key[2], source)).fetchone()
                sid = row[0] if row else conn.execute(
                    _ADD_SERIES, (cluster, key[1], source, key[0], key[2])).lastrowid
                ids[key] = sid
            conn.execute(_ADD_SAMPLE, (sid, float(m.ts if m.ts is not None else ts), float(m.value)))
            n += 1
    return n


def record_run(store: Store, name: str, ts: float, ok: bool, message: str, duration_s: float,
               n: int, state: Optional[str] = None) -> None:
    """Record one run of collector ``name`` at ``ts``: ``ok`` False for a failure or a skip,
    ``message`` its one line ("" when fine), how long it took and how many metrics it gave;
    ``state`` 'ok', 'skipped' or 'failed' (None: from ``ok``)."""
    state = state or ("ok" if ok else "failed")
    with store.transaction() as conn:
        conn.execute("INSERT INTO collector_runs (name, ts, ok, message, duration_s, n_metrics, state) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", (name, ts, 1 if ok else 0, message, duration_s, n, state))


def _matching_series(store: Store, metric: str, cluster: Optional[str], host: Optional[str],
                     labels: Optional[Mapping[str, Any]]) -> List[int]:
    sql, args = "SELECT id, labels FROM metric_series WHERE metric = ?", [metric]
    if cluster is not None:
        sql, args = sql + " AND cluster = ?", args + [cluster]
    if host is not None:
        sql, args = sql + " AND host = ?", args + [host]
    want = {str(k): str(v) for k, v in (labels or {}).items()}
    out = []
    for row in all_rows(store.conn, sql + " ORDER BY id", args):
        have = json.loads(row["labels"])
        if all(have.get(k) == v for k, v in want.items()):
            out.append(row["id"])
    return out


def series(store: Store, metric: str, *, cluster: Optional[str] = None, host: Optional[str] = None,
           labels: Optional[Mapping[str, Any]] = None, since: Optional[float] = None,
           until: Optional[float] = None) -> List[Tuple[float, float]]:
    """The points of ``metric`` in [since, until] (None: unbounded) as (ts, value), oldest first.
    ``labels`` select series whose labels include these (a subset match: {"mount": "/scratch"});
    ``host`` "" = cluster-wide series. Where raw samples have been pruned the hourly rollups answer
    (ts = the middle of the hour, value = its average). When several series match (no labels
    given, several mounts) their points are merged in time order: select one to get one curve."""
    ids = _matching_series(store, metric, cluster, host, labels)
    if not ids:
        return []
    lo = float("-inf") if since is None else float(since)
    hi = float("inf") if until is None else float(until)
    q = placeholders(len(ids))
    raw = all_rows(store.conn, f"SELECT series_id, ts, value FROM metric_samples "  # noqa: S608 (placeholders)
                               f"WHERE series_id IN ({q}) AND ts >= ? AND ts <= ?", ids + [lo, hi])
    first_raw = {r["series_id"]: r["min_ts"] for r in all_rows(
        store.conn, f"SELECT series_id, MIN(ts) AS min_ts FROM metric_samples "  # noqa: S608 (placeholders)
                    f"WHERE series_id IN ({q}) GROUP BY series_id", ids)}
    hourly = all_rows(store.conn, f"SELECT series_id, hour, avg FROM metric_hourly "  # noqa: S608 (placeholders)
                                  f"WHERE series_id IN ({q}) AND hour + 1800 >= ? AND hour + 1800 <= ?",
                      ids + [lo, hi])
    points = [(r["ts"], r["value"]) for r in raw]
    points += [(float(r["hour"] + HOUR // 2), r["avg"]) for r in hourly
               if r["hour"] + HOUR <= first_raw.get(r["series_id"], float("inf"))]
    points.sort()
    return points


def latest(store: Store, metric_prefix: str, *, cluster: Optional[str] = None,
           max_age_s: Optional[float] = None, now: Optional[float] = None) -> List[Latest]:
    """For every series whose metric starts with ``metric_prefix`` ("disk." or "disk.used_bytes"),
    its newest raw sample as ``Latest(metric, labels dict, host, ts, value)``, sorted by metric,
    host and labels. ``max_age_s``: leave out series whose newest sample is older than that
    (relative to ``now``, default the clock)."""
    # CROSS JOIN keeps the series outside: one primary-key lookup per series, never a scan of samples
    sql = ("SELECT s.metric, s.labels, s.host, m.ts, m.value FROM metric_series s "
           "CROSS JOIN metric_samples m ON m.series_id = s.id "
           "AND m.ts = (SELECT MAX(ts) FROM metric_samples WHERE series_id = s.id) "
           "WHERE substr(s.metric, 1, ?) = ?")
    args: List[Any] = [len(metric_prefix), metric_prefix]
    if cluster is not None:
        sql, args = sql + " AND s.cluster = ?", args + [cluster]
    if max_age_s is not None:
        sql, args = sql + " AND m.ts >= ?", args + [(time.time() if now is None else now) - max_age_s]
    rows = all_rows(store.conn, sql + " ORDER BY s.metric, s.host, s.labels", args)
    return [Latest(r["metric"], json.loads(r["labels"]), r["host"], r["ts"], r["value"]) for r in rows]


def collector_health(store: Store) -> Dict[str, Dict[str, Any]]:
    """Per collector name that ever ran: {"last_run": ts, "ok": bool, "state": 'ok' / 'skipped' /
    'failed', "message": its one line, "duration_s", "n_metrics" (of the last run),
    "last_success": ts or None}, sorted by name."""
    last = all_rows(store.conn,
                    "SELECT r.name, r.ts, r.ok, r.state, r.message, r.duration_s, r.n_metrics FROM collector_runs r "
                    "WHERE r.rowid = (SELECT rowid FROM collector_runs WHERE name = r.name "
                    "ORDER BY ts DESC, rowid DESC LIMIT 1) ORDER BY r.name", ())
    good = {r["name"]: r["ts"] for r in all_rows(
        store.conn, "SELECT name, MAX(ts) AS ts FROM collector_runs WHERE ok = 1 GROUP BY name", ())}
    return {r["name"]: {"last_run": r["ts"], "ok": bool(r["ok"]),
                        "state": r["state"] or ("ok" if r["ok"] else "failed"), "message": r["message"],
                        "duration_s": r["duration_s"], "n_metrics": r["n_metrics"],
                        "last_success": good.get(r["name"])} for r in last}


_ROLL_UP = ("INSERT INTO metric_hourly (series_id, hour, avg, min, max, n) "
            "SELECT series_id, CAST(ts / 3600 AS INTEGER) * 3600 AS h, AVG(value), MIN(value), "
            "MAX(value), COUNT(*) FROM metric_samples WHERE ts < ? GROUP BY series_id, h "
            "ON CONFLICT (series_id, hour) DO UPDATE SET "
            "avg = (metric_hourly.avg * metric_hourly.n + excluded.avg * excluded.n) / (metric_hourly.n + excluded.n), "
            "min = MIN(metric_hourly.min, excluded.min), max = MAX(metric_hourly.max, excluded.max), "
            "n = metric_hourly.n + excluded.n")


def prune(store: Store, now: float, raw_days: float, rollup_days: float) -> Dict[str, int]:
    """Retention, in one transaction: raw samples older than ``raw_days`` (cut at an hour
    boundary) are folded into hourly rollups and deleted; rollups older than ``rollup_days`` are
    deleted; so are collector runs older than ``raw_days`` (each collector's last success kept)
    and series left without any point. Returns counts: rolled_up (raw samples folded),
    hourly_deleted, runs_deleted, series_deleted."""
    raw_cut = (int(now - raw_days * DAY) // HOUR) * HOUR
    roll_cut = now - rollup_days * DAY
    with store.transaction() as conn:
        conn.execute(_ROLL_UP, (raw_cut,))  # its WHERE keeps ON CONFLICT from parsing as a join's ON
        folded = conn.execute("DELETE FROM metric_samples WHERE ts < ?", (raw_cut,)).rowcount
        hourly = conn.execute("DELETE FROM metric_hourly WHERE hour < ?", (roll_cut,)).rowcount
        runs = conn.execute("DELETE FROM collector_runs WHERE ts < ? AND rowid NOT IN "
                            "(SELECT MAX(rowid) FROM collector_runs WHERE ok = 1 GROUP BY name)",
                            (raw_cut,)).rowcount
        gone = conn.execute("DELETE FROM metric_series WHERE "
                            "NOT EXISTS (SELECT 1 FROM metric_samples WHERE series_id = metric_series.id) "
                            "AND NOT EXISTS (SELECT 1 FROM metric_hourly WHERE series_id = metric_series.id)"
                            ).rowcount
    return {"rolled_up": folded, "hourly_deleted": hourly, "runs_deleted": runs, "series_deleted": gone}


def series_count(store: Store, cluster: Optional[str] = None) -> int:
    """How many series the store holds (of ``cluster``, or all)."""
    sql: str = "SELECT COUNT(*) AS n FROM metric_series"
    args: Sequence[Any] = ()
    if cluster is not None:
        sql, args = sql + " WHERE cluster = ?", [cluster]
    rows = all_rows(store.conn, sql, args)
    return rows[0]["n"] if rows else 0


def metric_clusters(store: Store) -> List[str]:
    """The clusters the store holds metric series of, sorted (``/metrics`` labels each one's)."""
    return [r["cluster"] for r in all_rows(store.conn, "SELECT DISTINCT cluster FROM metric_series "
                                                       "ORDER BY cluster", ())]


def series_table(store: Store, metric: str, *, cluster: Optional[str] = None, host: Optional[str] = None,
                 labels: Optional[Mapping[str, Any]] = None, since: Optional[float] = None,
                 until: Optional[float] = None) -> List[Dict[str, Any]]:
    """``series`` kept apart per series (the Python API's metrics frame): dicts of cluster, host,
    labels (dict), ts and value, by series then time; hourly rollups where raw samples were
    pruned, as ``series`` reads them."""
    meta = {}
    for sid in _matching_series(store, metric, cluster, host, labels):
        row = all_rows(store.conn, "SELECT cluster, host, labels FROM metric_series WHERE id = ?", (sid,))[0]
        meta[sid] = (row["cluster"], row["host"], json.loads(row["labels"]))
    out: List[Dict[str, Any]] = []
    lo = float("-inf") if since is None else float(since)
    hi = float("inf") if until is None else float(until)
    for sid, (c, h, lab) in meta.items():
        raw = all_rows(store.conn, "SELECT ts, value FROM metric_samples WHERE series_id = ? "
                                   "AND ts >= ? AND ts <= ? ORDER BY ts", (sid, lo, hi))
        first = all_rows(store.conn, "SELECT MIN(ts) AS t FROM metric_samples WHERE series_id = ?", (sid,))
        first_raw = first[0]["t"] if first and first[0]["t"] is not None else float("inf")
        hourly = all_rows(store.conn, "SELECT hour, avg FROM metric_hourly WHERE series_id = ? "
                                      "AND hour + 1800 >= ? AND hour + 1800 <= ? ORDER BY hour", (sid, lo, hi))
        points = [(float(r["hour"] + HOUR // 2), r["avg"]) for r in hourly if r["hour"] + HOUR <= first_raw]
        points += [(r["ts"], r["value"]) for r in raw]
        out += [{"cluster": c, "host": h, "labels": lab, "ts": ts, "value": v} for ts, v in points]
    return out
