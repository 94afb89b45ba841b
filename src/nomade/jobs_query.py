"""Listing jobs from the store: filters (user, state or failure class, since, cluster), newest
first, and outcome counts by failure class. The CLI (`nomade jobs`, `nomade demo`) formats these."""

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Dict, List, Optional, Sequence, Tuple

from . import states
from .store.db import Store

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
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


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


def parse_since(text: str, now: Optional[float] = None) -> float:
    """'7d', '12h', '30m', '2w', '90s' (ago), or an ISO date/time ('2024-05-01', '2024-05-01T08:00',
    UTC unless it carries an offset) -> epoch seconds. Raises ValueError."""
    t = text.strip()
    m = _RELATIVE.match(t.lower())
    if m:
        now = time.time() if now is None else now
        return now - int(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(f"{text!r} is neither a relative time (7d, 12h, 30m) "
                         f"nor an ISO date (2024-05-01 or 2024-05-01T08:00)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


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


def list_jobs(store: Store, query: JobQuery) -> List[JobRow]:
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


def outcome_class(state: Optional[str], cancelled_by: Optional[int], uid: Optional[int]) -> str:
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
    return (" WHERE " + " AND ".join(conds)) if conds else "", params


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
