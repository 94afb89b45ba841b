"""The read queries over jobs: listing (``nomade jobs``), outcome counts, one job's row and the
clusters a store holds (report, why), a user's similar past jobs (why), and the training job table
(with the node recorder's peak memory from job_summaries)."""

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from .. import states
from ..jobrecord import JOB_COLUMNS
from ._query import all_rows, one_row
from .db import Store

UNKNOWN = "unknown"  # outcome class of a job with no final state (yet)

# failure class -> SQL condition on the jobs table (mirrors nomade.states.failure_class)
_OWNER_CANCEL = "(cancelled_by IS NULL OR uid IS NULL OR cancelled_by = uid)"
_CLASS_SQL = {
    states.SUCCESS: "state = 'COMPLETED'",
    states.FAILED: "state = 'FAILED'",
    states.TIMEOUT: "state IN ('TIMEOUT', 'DEADLINE')",
    states.OOM: "state = 'OUT_OF_MEMORY'",
    states.SYSTEM: "state IN ('NODE_FAIL', 'BOOT_FAIL', 'PREEMPTED', 'REVOKED')",
    states.CANCELLED_OWNER: f"(state = 'CANCELLED' AND {_OWNER_CANCEL})",
    states.CANCELLED_OTHER: f"(state = 'CANCELLED' AND NOT {_OWNER_CANCEL})",
}


@dataclass
class JobQuery:
    """What to list. ``states`` holds Slurm state names and/or failure classes (OR-ed)."""

    users: Sequence[str] = ()
    states: Sequence[str] = ()
    since: Optional[float] = None      # submit_time >= since (epoch s)
    cluster: Optional[str] = None
    limit: int = 50
    owner_uid: Optional[int] = None    # only this uid's jobs (and, for jobs without a uid, ...
    owner_name: Optional[str] = None   # ... this user name's): the access rule's "own jobs"
    job_ids: Sequence[str] = ()        # ids as people type them (nomade.jobid); any of them


@dataclass
class JobRow:
    cluster: str
    job_id: str
    user: Optional[str]
    name: Optional[str]
    state: Optional[str]
    outcome: str
    submit_time: Optional[float]
    start_time: Optional[float]
    end_time: Optional[float]
    elapsed_s: Optional[int]
    exit_code: Optional[int]
    exit_signal: Optional[int]
    partition: Optional[str] = None

    def as_dict(self) -> Dict[str, object]:
        return dict(self.__dict__)


@dataclass
class OutcomeCounts:
    jobs: int = 0
    users: int = 0
    first_submit: Optional[float] = None
    last_submit: Optional[float] = None
    by_class: Dict[str, int] = field(default_factory=dict)

    def share(self, cls: str) -> float:
        return 100.0 * self.by_class.get(cls, 0) / self.jobs if self.jobs else 0.0


def state_condition(wanted: Sequence[str]) -> Tuple[str, List[str]]:
    """SQL condition (and its parameters) for jobs in any of ``wanted``: Slurm state names or
    abbreviations (FAILED, F, CANCELLED, ...) or failure classes (success, oom, timeout, ...).
    Raises ValueError naming the valid choices."""
    parts: List[str] = []
    params: List[str] = []
    for w in wanted:
        key = w.strip()
        if key.lower() in _CLASS_SQL:
            parts.append(_CLASS_SQL[key.lower()])
        elif key.lower() == UNKNOWN:
            parts.append("is_final = 0")
        else:
            try:
                name, _ = states.parse_state(key.upper())
            except ValueError:
                choices = ", ".join(sorted(_CLASS_SQL) + [UNKNOWN])
                raise ValueError(f"unknown state or failure class {w!r} (a Slurm state such as "
                                 f"FAILED or TIMEOUT, or one of: {choices})") from None
            parts.append("state = ?")
            params.append(name)
    return ("(" + " OR ".join(parts) + ")") if parts else "", params


def jobs_matching(store: Store, query: JobQuery) -> List[JobRow]:
    """Jobs matching ``query``, newest submission first, at most ``query.limit``."""
    where, params = _where(query)
    sql = ("SELECT cluster, job_id, user, name, state, cancelled_by, uid, submit_time, start_time, "  # noqa: S608 (where: placeholders)
           "end_time, elapsed_s, exit_code, exit_signal, partition FROM jobs"
           + where + " ORDER BY submit_time DESC, cluster, job_id_raw DESC, job_id DESC LIMIT ?")
    rows = store.conn.execute(sql, params + [max(0, int(query.limit))]).fetchall()
    return [JobRow(cluster=r[0], job_id=r[1], user=r[2], name=r[3], state=r[4],
                   outcome=outcome_class(r[4], r[5], r[6]), submit_time=r[7], start_time=r[8],
                   end_time=r[9], elapsed_s=r[10], exit_code=r[11], exit_signal=r[12],
                   partition=r[13])
            for r in rows]


def jobs_table(store: Store, query: JobQuery, columns: Sequence[str]) -> List[Dict[str, Any]]:
    """``jobs_matching``'s jobs (same filters and order) with the ``columns`` named (jobs columns)
    as dicts, and each job's ``outcome`` class (the Python API's jobs frame)."""
    unknown = set(columns) - set(JOB_COLUMNS)
    if unknown:
        raise ValueError(f"not jobs columns: {sorted(unknown)}")
    cols = list(dict.fromkeys(list(columns) + ["cluster", "job_id", "state", "cancelled_by", "uid"]))
    where, params = _where(query)
    rows = all_rows(store.conn, f"SELECT {', '.join(cols)} FROM jobs" + where  # noqa: S608 (columns checked, where: placeholders)
                    + " ORDER BY submit_time DESC, cluster, job_id_raw DESC, job_id DESC LIMIT ?",
                    params + [max(0, int(query.limit))])
    for r in rows:
        r["outcome"] = outcome_class(r["state"], r["cancelled_by"], r["uid"])
    return rows


def newest_submit(store: Store, cluster: str) -> Optional[float]:
    """The newest submit time of ``cluster``'s jobs (one lookup on the (cluster, submit_time)
    index), None without jobs."""
    row = one_row(store.conn, "SELECT max(submit_time) AS t FROM jobs WHERE cluster = ?", (cluster,))
    return row["t"] if row else None


def outcome_class(state: Optional[str], cancelled_by: Optional[int], uid: Optional[int]) -> str:
    """A listed job's failure class (``unknown`` without a state)."""
    if state is None:
        return UNKNOWN
    return states.failure_class(state, cancelled_by, uid) or UNKNOWN


def _where(query: JobQuery) -> Tuple[str, List[object]]:
    conds: List[str] = []
    params: List[object] = []
    if query.cluster:
        conds.append("cluster = ?")
        params.append(query.cluster)
    if query.owner_uid is not None:
        cond, p = owner_condition(query.owner_uid, query.owner_name)
        conds.append(cond)
        params.extend(p)
    if query.users:
        conds.append(f"user IN ({','.join('?' * len(query.users))})")
        params.extend(query.users)
    if query.since is not None:
        conds.append("submit_time >= ?")
        params.append(query.since)
    if query.states:
        cond, p = state_condition(query.states)
        conds.append(cond)
        params.extend(p)
    if query.job_ids:
        cond, p = job_id_condition(query.job_ids)
        conds.append(cond)
        params.extend(p)
    return (" WHERE " + " AND ".join(conds)) if conds else "", params


def job_id_condition(job_ids: Sequence[str]) -> Tuple[str, List[object]]:
    """SQL for the jobs any of ``job_ids`` names (``nomade.jobid``): the JobID, and for a bare
    number the array's tasks, the het job's components and the job whose JobIDRaw it is."""
    from ..jobid import parse_job_ref
    parts: List[str] = []
    params: List[object] = []
    for text in job_ids:
        ref = parse_job_ref(text)
        parts.append("job_id = ?")
        params.append(ref.job_id)
        if ref.number is not None:
            parts.append("job_id_raw = ? OR array_job_id = ? OR het_job_id = ?")
            params += [ref.number] * 3
    return "(" + " OR ".join(parts) + ")", params


def owner_condition(uid: int, name: Optional[str]) -> Tuple[str, List[object]]:
    """SQL for "the caller's own jobs", as ``whyservice.access.check_access`` decides it: the
    job's uid, or its user name when the record has no uid."""
    if name is None:
        return "uid = ?", [uid]
    return "(uid = ? OR (uid IS NULL AND user = ?))", [uid, name]


def outcome_counts(store: Store, cluster: Optional[str] = None) -> OutcomeCounts:
    """Jobs, distinct users, submit-time span and jobs per outcome class (``unknown`` for jobs
    without a final state)."""
    where, params = (" WHERE cluster = ?", [cluster]) if cluster else ("", [])
    n, users, first, last = store.conn.execute(
        "SELECT count(*), count(DISTINCT user), min(submit_time), max(submit_time) FROM jobs" + where,  # noqa: S608 (constant)
        params).fetchone()
    counts = OutcomeCounts(jobs=n, users=users, first_submit=first, last_submit=last)
    sql = ("SELECT state, (state = 'CANCELLED' AND NOT " + _OWNER_CANCEL + ") AS other, count(*) "
           "FROM jobs" + where + " GROUP BY state, other")
    for state, other, k in store.conn.execute(sql, params):
        # a representative (cancelled_by, uid) pair for the group: other -> (1, 0), else (None, None)
        cls = outcome_class(state, 1 if other else None, 0 if other else None)
        counts.by_class[cls] = counts.by_class.get(cls, 0) + k
    return counts


def has_jobs(store: Store) -> bool:
    """Whether the store holds at least one job."""
    return store.conn.execute("SELECT 1 FROM jobs LIMIT 1").fetchone() is not None


def job_row(store: Store, cluster: str, job_id: str) -> Optional[Dict[str, Any]]:
    """The jobs row of (cluster, job_id), every column, as a dict; None if not stored."""
    return one_row(store.conn, "SELECT * FROM jobs WHERE cluster = ? AND job_id = ?", (cluster, job_id))


def job_steps(store: Store, cluster: str, job_id: str) -> List[Dict[str, Any]]:
    """The job_steps rows of (cluster, job_id), every column, as dicts (step order as stored)."""
    return all_rows(store.conn, "SELECT * FROM job_steps WHERE cluster = ? AND job_id = ? ORDER BY rowid",
                    (cluster, job_id))


def jobs_by_number(store: Store, cluster: Optional[str], number: int) -> List[Dict[str, Any]]:
    """The jobs a bare number names when no job has it as its job_id (``nomade.jobid``): the tasks
    of array ``number`` or the components of het job ``number`` (several rows, array / het order),
    else the job whose JobIDRaw is ``number`` (an array task's or a het component's own id).
    Every column, as dicts. Without an index on these columns: a scan, only on that miss."""
    where = " AND cluster = ?" if cluster is not None else ""
    extra: List[Any] = [cluster] if cluster is not None else []
    rows = all_rows(store.conn, "SELECT * FROM jobs WHERE (array_job_id = ? OR het_job_id = ?)" + where  # noqa: S608 (constant)
                    + " ORDER BY cluster, array_job_id, CAST(array_task_id AS INTEGER), het_offset, job_id",
                    [number, number] + extra)
    if rows:
        return rows
    return all_rows(store.conn, "SELECT * FROM jobs WHERE job_id_raw = ?" + where + " ORDER BY cluster",  # noqa: S608 (constant)
                    [number] + extra)


def job_clusters(store: Store) -> List[str]:
    """The clusters the store holds jobs of ('' first when cluster-less jobs are stored), walked
    on the (cluster, job_id) key: one indexed lookup per cluster, not a scan."""
    found: List[str] = []
    while True:
        row = one_row(store.conn, "SELECT min(cluster) AS c FROM jobs WHERE cluster > ?",
                   (found[-1] if found else "",))
        if row is None or row["c"] is None:
            break
        found.append(row["c"])
    if one_row(store.conn, "SELECT 1 AS x FROM jobs WHERE cluster = '' LIMIT 1", ()) is not None:
        found.insert(0, "")
    return found


def owner_ended_jobs(store: Store, cluster: str, uid: Optional[int], user: Optional[str],
                     exclude_job_id: str, limit: int, *, name: Optional[str] = None,
                     partition_cpus: Optional[Tuple[Optional[str], int, int]] = None) -> List[Dict[str, Any]]:
    """One owner's newest ended (final) jobs on ``cluster``, ``exclude_job_id`` left out, as dicts
    (job_id, name, state, cancelled_by, uid, exit_code, elapsed_s, timelimit_s, max_rss_mb,
    req_mem_mb): those named ``name``, or those in partition ``partition_cpus[0]`` (None: none)
    asking for ``partition_cpus[1]`` to ``[2]`` cores. The owner is the uid; by user name only
    (jobs without a uid) when ``uid`` is None."""
    owner = "uid = ?" if uid is not None else "user = ? AND uid IS NULL"
    sql = ("SELECT job_id, name, state, cancelled_by, uid, exit_code, elapsed_s, timelimit_s, max_rss_mb, "  # noqa: S608 (owner is one of two constant clauses)
           f"req_mem_mb FROM jobs WHERE cluster = ? AND {owner} AND job_id != ? AND is_final = 1 ")
    args: List[Any] = [cluster, uid if uid is not None else user, exclude_job_id]
    if name is not None:
        sql += "AND name = ? ORDER BY submit_time DESC LIMIT ?"
        args += [name, limit]
    elif partition_cpus is not None:
        sql += ("AND coalesce(partition, '') = coalesce(?, '') AND req_cpus BETWEEN ? AND ? "
                "ORDER BY submit_time DESC LIMIT ?")
        args += [*partition_cpus, limit]
    else:
        raise ValueError("owner_ended_jobs: give name or partition_cpus")
    return [dict(r) for r in store.conn.execute(sql, args)]


def owner_submits_between(store: Store, cluster: str, uid: int, start: float, end: float,
                          exclude_job_id: str) -> int:
    """How many jobs of ``uid`` on ``cluster`` were submitted in [start, end), ``exclude_job_id``
    left out (nomade-why's count of a job's "recent submissions", as job_submit.lua counts them)."""
    row = store.conn.execute("SELECT count(*) FROM jobs WHERE cluster = ? AND uid = ? AND job_id != ? "
                             "AND submit_time >= ? AND submit_time < ?",
                             (cluster, uid, exclude_job_id, start, end)).fetchone()
    return int(row[0])


def jobs_for_training(store: Store, columns: Sequence[str], cluster: Optional[str] = None) -> List[Any]:
    """Every job with a submit time (of ``cluster``, or all), the ``columns`` named (jobs columns,
    nomade's constants), as rows readable by column name. ``max_rss_mb`` is the job's peak memory
    (whole job, ``nomade.efficiency``): its largest step (TRESUsageInTot mem=, else MaxRSS x
    NTasks), the job row's MaxRSS without step rows, or the node recorder's peak (job_summaries)
    when higher or when accounting has none (sites without jobacct_gather). All in memory: for a
    table of any size, read ``training_batches``."""
    from .pg import _row_class
    row_cls = _row_class(tuple(columns))
    return [row_cls(r) for batch in training_batches(store, columns, cluster) for r in batch]


TRAINING_BATCH = 5000


def training_batches(store: Store, columns: Sequence[str], cluster: Optional[str] = None,
                     size: int = TRAINING_BATCH, since: Optional[float] = None) -> Iterator[List[tuple]]:
    """``jobs_for_training``'s rows (submitted at or after ``since``, when given), ``size`` at a
    time, as tuples of ``columns`` in that order (bounded memory: SQLite steps through its
    cursor, PostgreSQL reads from a server-side one)."""
    unknown = set(columns) - set(JOB_COLUMNS)
    if unknown:
        raise ValueError(f"not jobs columns: {sorted(unknown)}")
    if store.dialect != "sqlite" and "max_rss_mb" in columns:
        yield from _batched(_training_rows_stepwise(store, columns, cluster, size, since), size)
        return
    if "max_rss_mb" in columns:
        store.conn.create_function("nomade_step_mem", 3, _step_mem, deterministic=True)
    q, args = _training_sql(columns, cluster, since)
    yield from _row_batches(store, q, args, size)   # PostgreSQL: no max_rss_mb, no Python function


def _batched(rows: Iterable[tuple], size: int) -> Iterator[List[tuple]]:
    batch: List[tuple] = []
    for r in rows:
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


_PEAK_MB = ("LEFT JOIN (SELECT cluster, job_id, "
            "nullif(max(coalesce(peak_cg_mem_mb, 0), coalesce(peak_rss_mb, 0)), 0) AS peak_mb "
            "FROM job_summaries) s ON s.cluster = j.cluster AND s.job_id = j.job_id")


def _training_where(cluster: Optional[str], since: Optional[float]) -> Tuple[str, List[object]]:
    where, args = " WHERE j.submit_time IS NOT NULL", []
    if cluster:
        where, args = where + " AND j.cluster = ?", args + [cluster]
    if since is not None:
        where, args = where + " AND j.submit_time >= ?", args + [since]
    return where, args


def newest_training_submit(store: Store, cluster: Optional[str] = None) -> Optional[float]:
    """The newest submit time (of ``cluster``'s jobs, or all); None without jobs."""
    if cluster:
        row = one_row(store.conn, "SELECT max(submit_time) AS t FROM jobs WHERE cluster = ?", (cluster,))
    else:
        row = one_row(store.conn, "SELECT max(submit_time) AS t FROM jobs", ())
    return row["t"] if row else None


def submit_time_cut(store: Store, n: int, cluster: Optional[str] = None) -> Optional[float]:
    """The submit time of the ``n``-th newest job (of ``cluster``, or all): the jobs submitted at or
    after it include the newest ``n`` (ties at the cut may add a few); None when there are fewer
    than ``n`` jobs. One index walk, no job read."""
    if n < 1:
        raise ValueError("n must be at least 1")
    where, args = _training_where(cluster, None)
    row = one_row(store.conn, "SELECT j.submit_time AS t FROM jobs j" + where  # noqa: S608 (fixed clauses)
                  + " ORDER BY j.submit_time DESC LIMIT 1 OFFSET ?", tuple(args) + (n - 1,))
    return row["t"] if row else None


def _training_sql(columns: Sequence[str], cluster: Optional[str],
                  since: Optional[float] = None) -> Tuple[str, List[object]]:
    """The SQLite query of training_batches (its ``nomade_step_mem`` a Python function)."""
    cols = [f"j.{c}" if c != "max_rss_mb" else
            "CASE WHEN s.peak_mb IS NOT NULL AND (coalesce(t.used_mb, j.max_rss_mb) IS NULL "
            "OR s.peak_mb > coalesce(t.used_mb, j.max_rss_mb)) "
            "THEN s.peak_mb ELSE coalesce(t.used_mb, j.max_rss_mb) END AS max_rss_mb"
            for c in columns]
    q = f"SELECT {', '.join(cols)} FROM jobs j " + _PEAK_MB  # noqa: S608 (column list is nomade's constants)
    if "max_rss_mb" in columns:
        q += (" LEFT JOIN (SELECT cluster, job_id, "
              "max(nomade_step_mem(tres_usage_in_tot, max_rss_mb, ntasks)) AS used_mb "
              "FROM job_steps GROUP BY cluster, job_id) t "
              "ON t.cluster = j.cluster AND t.job_id = j.job_id")
    where, args = _training_where(cluster, since)
    return q + where, args


def _training_rows_stepwise(store: Store, columns: Sequence[str], cluster: Optional[str],
                            size: int, since: Optional[float] = None) -> Iterator[tuple]:
    """training_batches where SQL functions cannot be written in Python (PostgreSQL): each job's
    steps come with it as arrays (one streamed query), ``_step_mem`` is applied here and the same
    CASE to each row."""
    cols = [c for c in columns if c != "max_rss_mb"]
    where, args = _training_where(cluster, since)
    q = (f"SELECT {''.join(f'j.{c}, ' for c in cols)}j.max_rss_mb, s.peak_mb, "  # noqa: S608 (constants)
         "t.tres, t.rss, t.ntasks FROM jobs j " + _PEAK_MB +
         " LEFT JOIN (SELECT cluster, job_id, array_agg(tres_usage_in_tot) AS tres, "
         "array_agg(max_rss_mb) AS rss, array_agg(ntasks) AS ntasks FROM job_steps "
         "GROUP BY cluster, job_id) t ON t.cluster = j.cluster AND t.job_id = j.job_id" + where)
    n = len(cols)
    at = list(columns).index("max_rss_mb")
    for r in store.conn.stream(q, size, args):
        acct = None
        if r[n + 2] is not None:
            for tres, rss, ntasks in zip(r[n + 2], r[n + 3], r[n + 4]):
                mem = _step_mem(tres, rss, ntasks)
                if mem is not None and (acct is None or mem > acct):
                    acct = mem
        acct = r[n] if acct is None else acct
        peak = r[n + 1]
        mem = peak if peak is not None and (acct is None or peak > acct) else acct
        vals = tuple(r[:n])
        yield vals[:at] + (mem,) + vals[at:]


def _step_mem(tres_usage_in_tot: Optional[str], max_rss_mb: Optional[float],
              ntasks: Optional[int]) -> Optional[float]:
    """``nomade.efficiency.step_mem_used`` as an SQL function (the one definition)."""
    from ..efficiency import step_mem_used
    return step_mem_used({"tres_usage_in_tot": tres_usage_in_tot, "max_rss_mb": max_rss_mb,
                          "ntasks": ntasks})[0]


def export_batches(store: Store, columns: Sequence[str], since: Optional[float] = None,
                   cluster: Optional[str] = None, size: int = TRAINING_BATCH) -> Iterator[List[tuple]]:
    """Jobs with a submit time (since ``since``, of ``cluster`` or all) in submit order, ``size``
    at a time, as tuples of ``columns`` (jobs columns) in that order: bounded memory for a
    table of any size (``nomade export``)."""
    unknown = set(columns) - set(JOB_COLUMNS)
    if unknown:
        raise ValueError(f"not jobs columns: {sorted(unknown)}")
    q = f"SELECT {', '.join(columns)} FROM jobs WHERE submit_time IS NOT NULL"  # noqa: S608 (constants)
    args: List[object] = []
    if since is not None:
        q += " AND submit_time >= ?"
        args.append(since)
    if cluster:
        q += " AND cluster = ?"
        args.append(cluster)
    q += " ORDER BY submit_time, cluster, job_id"
    yield from _row_batches(store, q, args, size)


def _row_batches(store: Store, q: str, args: Sequence[Any], size: int) -> Iterator[List[tuple]]:
    """The rows of ``q`` in lists of at most ``size`` (PostgreSQL: a server-side cursor)."""
    if store.dialect != "sqlite":
        yield from _batched((tuple(r) for r in store.conn.stream(q, size, args)), size)
        return
    cur = store.conn.execute(q, args)
    while True:
        rows = cur.fetchmany(size)
        if not rows:
            return
        yield [tuple(r) for r in rows]
