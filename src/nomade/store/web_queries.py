"""The dashboard's reads (``nomade.web``): a page of jobs with each job's latest risk, the
recorder's samples of one job, and a few counts. Privacy is the caller's: ``owner_uid`` limits
every listing to one user's jobs (``job_queries.owner_condition``, the access rule's "own jobs")."""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .. import risk_scale
from ._query import all_rows
from .db import Store
from .job_queries import job_id_condition, outcome_class, owner_condition, state_condition

# the newest stage's risk of a job: running > start > submit, then the newest score
_LATEST_RISK = ("(SELECT risk FROM scores s WHERE s.cluster = j.cluster AND s.job_id = j.job_id "
                "ORDER BY CASE s.stage WHEN 'running' THEN 3 WHEN 'start' THEN 2 ELSE 1 END DESC, "
                "s.scored_at DESC LIMIT 1)")
UNSCORED = "UNSCORED"


@dataclass
class JobsPageQuery:
    """One page of the Jobs list. ``levels``: risk level names (``risk_scale.LEVELS``) and/or
    UNSCORED; ``states``: Slurm states or failure classes (``job_queries.state_condition``)."""
    cluster: Optional[str] = None
    owner_uid: Optional[int] = None
    owner_name: Optional[str] = None
    users: Sequence[str] = ()
    states: Sequence[str] = ()
    levels: Sequence[str] = ()
    job_ids: Sequence[str] = ()
    offset: int = 0
    limit: int = 50


def level_condition(levels: Sequence[str]) -> Tuple[str, List[object]]:
    """SQL on the latest risk for jobs at any of ``levels`` (ValueError names the choices)."""
    bounds = dict(zip(risk_scale.LEVELS, zip((0.0,) + risk_scale.CUTOFFS, risk_scale.CUTOFFS + (2.0,))))
    parts: List[str] = []
    params: List[object] = []
    for name in levels:
        key = name.strip().upper()
        if key == UNSCORED:
            parts.append(f"{_LATEST_RISK} IS NULL")
        elif key in bounds:
            parts.append(f"({_LATEST_RISK} >= ? AND {_LATEST_RISK} < ?)")
            params += list(bounds[key])
        else:
            raise ValueError(f"unknown risk level {name!r} (one of: {', '.join(risk_scale.LEVELS)}, "
                             f"{UNSCORED})")
    return ("(" + " OR ".join(parts) + ")") if parts else "", params


def _where(q: JobsPageQuery) -> Tuple[str, List[object]]:
    conds: List[str] = []
    params: List[object] = []
    if q.cluster is not None:
        conds.append("j.cluster = ?")
        params.append(q.cluster)
    if q.owner_uid is not None:
        cond, p = owner_condition(q.owner_uid, q.owner_name)
        conds.append(cond.replace("uid", "j.uid").replace("user", "j.user"))
        params += p
    if q.users:
        conds.append(f"j.user IN ({','.join('?' * len(q.users))})")
        params += list(q.users)
    for build, values in ((state_condition, q.states), (job_id_condition, q.job_ids),
                          (level_condition, q.levels)):
        if values:
            cond, p = build(values)
            conds.append(cond)
            params += p
    return (" WHERE " + " AND ".join(conds)) if conds else "", params


def jobs_page(store: Store, q: JobsPageQuery) -> Tuple[List[Dict[str, Any]], bool]:
    """The jobs of one page, newest submission first, each a dict (cluster, job_id, user, uid,
    name, state, outcome, partition, submit/start/end time, elapsed_s, risk, level), and whether
    another page follows (one more row is read, no count over the table)."""
    where, params = _where(q)
    sql = ("SELECT j.cluster, j.job_id, j.user, j.uid, j.name, j.state, j.cancelled_by, j.partition, "  # noqa: S608 (where: placeholders)
           "j.submit_time, j.start_time, j.end_time, j.elapsed_s, j.exit_code, "
           f"{_LATEST_RISK} AS risk FROM jobs j" + where
           + " ORDER BY j.submit_time DESC, j.job_id DESC LIMIT ? OFFSET ?")
    limit = max(1, int(q.limit))
    rows = all_rows(store.conn, sql, params + [limit + 1, max(0, int(q.offset))])
    for r in rows:
        r["outcome"] = outcome_class(r["state"], r.pop("cancelled_by"), r["uid"])
        r["level"] = risk_scale.level(r["risk"]) if r["risk"] is not None else None
    return rows[:limit], len(rows) > limit


def job_samples(store: Store, cluster: str, job_ids: Sequence[str], limit: int = 5000) -> List[Dict[str, Any]]:
    """The recorder's samples of a job (its ids: JobID and JobIDRaw), oldest first, at most
    ``limit`` (the newest kept): ts, node, rss_mb, cg_mem_mb, cg_mem_limit_mb, cpu_eff,
    write_bytes, gpu_util. None before the recorder's migration."""
    keys = list(job_ids)
    if not keys:
        return []
    rows = all_rows(store.conn,
                    "SELECT ts, node, rss_mb, cg_mem_mb, cg_mem_limit_mb, cpu_eff, write_bytes, gpu_util "  # noqa: S608 (placeholders only)
                    f"FROM samples WHERE cluster = ? AND job_id IN ({','.join('?' * len(keys))}) "
                    "ORDER BY ts DESC LIMIT ?", [cluster] + keys + [int(limit)])
    rows.reverse()
    return rows


def level_counts(store: Store, cluster: Optional[str], since: float) -> Dict[str, int]:
    """Jobs submitted since ``since`` (of ``cluster``) by the level of their latest risk
    (UNSCORED for none): the Overview's risk panel, counted over the (cluster, submit_time)
    index's range only."""
    where = " WHERE j.submit_time >= ?" + (" AND j.cluster = ?" if cluster is not None else "")
    params: List[object] = [since] + ([cluster] if cluster is not None else [])
    out: Dict[str, int] = {}
    for r in all_rows(store.conn, f"SELECT {_LATEST_RISK} AS risk FROM jobs j" + where, params):  # noqa: S608 (constant)
        key = UNSCORED if r["risk"] is None else risk_scale.level(r["risk"])
        out[key] = out.get(key, 0) + 1
    return out


def newest_change(store: Store) -> Tuple[Any, ...]:
    """A cheap fingerprint of what the pages show (the newest row of jobs, scores, events,
    metric and recorder samples): it changes when something new is stored (an update in place
    does not change it; the live updates also watch the store's files)."""
    parts: List[Any] = []
    for sql in ("SELECT max(rowid) FROM jobs", "SELECT max(rowid) FROM scores", "SELECT max(rowid) FROM events",
                "SELECT max(rowid) FROM samples"):
        rows = all_rows(store.conn, sql, ())
        parts.append(next(iter(rows[0].values())) if rows else None)
    return tuple(parts)


def newest_submit(store: Store, cluster: Optional[str]) -> Optional[float]:
    """The newest submit time (of ``cluster``), read from the (cluster, submit_time) index."""
    where, params = (" WHERE cluster = ?", [cluster]) if cluster is not None else ("", [])
    rows = all_rows(store.conn, "SELECT max(submit_time) AS t FROM jobs" + where, params)  # noqa: S608 (constant)
    return rows[0]["t"] if rows else None


def network_jobs(store: Store, q: JobsPageQuery) -> List[Dict[str, Any]]:
    """The newest ``q.limit`` jobs matching ``q`` with what they asked for (req_cpus,
    timelimit_s, req_mem_mb) and their outcome: the network view's layout without the
    behaviour analysis."""
    where, params = _where(q)
    sql = ("SELECT j.job_id, j.user, j.uid, j.state, j.cancelled_by, j.req_cpus, j.timelimit_s, "  # noqa: S608 (where: placeholders)
           "j.req_mem_mb FROM jobs j" + where + " ORDER BY j.submit_time DESC LIMIT ?")
    rows = all_rows(store.conn, sql, params + [max(1, int(q.limit))])
    for r in rows:
        r["outcome"] = outcome_class(r["state"], r.pop("cancelled_by"), r["uid"])
    return rows


def more_jobs_than(store: Store, n: int) -> bool:
    """Whether the store holds more than ``n`` jobs (reads at most n + 1 keys, no full count)."""
    rows = all_rows(store.conn, "SELECT count(*) AS k FROM (SELECT 1 AS one FROM jobs LIMIT ?) AS some_jobs", [int(n) + 1])
    return bool(rows) and rows[0]["k"] > n


def running_job_rows(store: Store, q: JobsPageQuery) -> Tuple[Tuple[str, ...], List[Tuple[Any, ...]]]:
    """The running jobs matching ``q`` (cluster, owner) that have a recorder summary (rebuilt
    from their samples as each spool is ingested), those sampled last first, at most
    ``q.limit``: (columns, rows) with the columns of ``store.behaviour.ENDED_COLUMNS`` (the rows
    the behaviour vectors are built from) and ``s_last_ts``, the newest sample's time."""
    from .behaviour import ENDED_COLUMNS, JOB_COLUMNS, SUMMARY_COLUMNS
    where, params = _where(q)
    sql = ("SELECT " + ", ".join("j." + c for c in JOB_COLUMNS) + ", "  # noqa: S608 (constant columns, where: placeholders)
           + ", ".join("s." + c for c in SUMMARY_COLUMNS) + ", s.last_ts FROM jobs j JOIN job_summaries s "
           "ON s.cluster = j.cluster AND s.job_id = j.job_id" + (where + " AND" if where else " WHERE")
           + " j.state = 'RUNNING' AND j.is_final = 0 ORDER BY s.last_ts DESC, j.job_id LIMIT ?")
    rows = store.conn.execute(sql, params + [max(1, int(q.limit))]).fetchall()
    return ENDED_COLUMNS + ("s_last_ts",), [tuple(r) for r in rows]


def node_stat_means(store: Store, cluster: str, metrics: Sequence[str], hosts: Sequence[str],
                    start: float, end: float) -> Dict[Tuple[str, str], float]:
    """The mean nodestats value per (metric, host) of ``hosts`` over [start, end]: its raw
    samples and hourly averages (at the middle of the hour) in the window, as
    ``store.behaviour.node_stat_points`` gives them to the behaviour vectors, averaged here."""
    sums: Dict[Tuple[str, str], List[float]] = {}
    hosts = list(dict.fromkeys(h for h in hosts if h))
    for i in range(0, len(hosts), 400):
        part = hosts[i:i + 400]
        where = (f"s.source = 'nodestats' AND s.cluster = ? AND s.metric IN ({','.join('?' * len(metrics))})"
                 f" AND s.host IN ({','.join('?' * len(part))})"
                 " AND (s.labels = '{}' OR s.labels = '{\"window\":\"avg10\"}')")
        args: List[Any] = [cluster] + list(metrics) + part + [start, end]
        for sql in ("SELECT s.metric AS metric, s.host AS host, sum(m.value) AS total, count(*) AS n "  # noqa: S608 (placeholders)
                    "FROM metric_series s JOIN metric_samples m ON m.series_id = s.id "
                    f"WHERE {where} AND m.ts >= ? AND m.ts <= ? GROUP BY s.metric, s.host",
                    "SELECT s.metric AS metric, s.host AS host, sum(h.avg) AS total, count(*) AS n "  # noqa: S608 (placeholders)
                    "FROM metric_series s JOIN metric_hourly h ON h.series_id = s.id "
                    f"WHERE {where} AND h.hour + 1800 >= ? AND h.hour + 1800 <= ? GROUP BY s.metric, s.host"):
            for r in all_rows(store.conn, sql, args):
                acc = sums.setdefault((r["metric"], r["host"]), [0.0, 0.0])
                acc[0] += float(r["total"])
                acc[1] += float(r["n"])
    return {k: t / n for k, (t, n) in sums.items() if n > 0}
