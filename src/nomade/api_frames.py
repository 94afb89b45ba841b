"""The notebook side of the Python API: ``nomade.Nomade``'s ``jobs``, ``metrics``, ``alerts``,
``similar_jobs`` and ``profiles`` as pandas DataFrames (docs/api.md). pandas is imported inside
the functions (the ``web`` extra), so ``import nomade`` stays light.

Privacy is the CLI's: the caller is the real uid running the notebook (``current_caller``,
``nomade.caller_access``); a caller who is not root nor in ``privacy.admin_group`` gets only
their own jobs, alerts about their own jobs, similar jobs among their own, their own per-user
metric series, and only profiles of ``behaviour.min_count`` jobs or more. Times are UTC
``datetime64`` columns; a frame with no rows still has its documented columns.
"""

import time
from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence, Union

from . import risk_scale
from .errors import NomadeError

JOB_COLUMNS = ("cluster", "job_id", "user", "uid", "account", "partition", "qos", "name", "state",
               "outcome", "submit_time", "start_time", "end_time", "elapsed_s", "timelimit_s",
               "req_cpus", "req_nodes", "req_mem_mb", "req_gpus", "exit_code", "exit_signal",
               "max_rss_mb")
SCORE_COLUMNS = ("risk_submit", "risk_start", "risk_running", "risk", "level", "model_version")
METRIC_COLUMNS = ("time", "value", "cluster", "host", "metric", "labels")
ALERT_COLUMNS = ("id", "rule", "cluster", "severity", "state", "summary", "description", "owner",
                 "value", "labels", "started_at", "fired_at", "resolved_at", "acked_at")
SIMILAR_COLUMNS = ("cluster", "job_id", "similarity", "why_similar", "name", "state", "outcome",
                   "elapsed_s", "timelimit_s", "req_mem_mb", "max_rss_mb")
PROFILE_COLUMNS = ("id", "name", "size", "failure_rate", "by_class", "traits", "your_jobs")
_TIME_COLUMNS = ("submit_time", "start_time", "end_time", "started_at", "fired_at", "resolved_at",
                 "acked_at", "time")
_STAGES = ("submit", "start", "running")

When = Union[None, float, int, str, datetime]


def current_caller():
    """Who runs this notebook (the real uid; tests replace this one function)."""
    from .caller_access import local_caller
    return local_caller()


def _admin(cfg: Any):
    """(caller, admin group, whether the caller is an admin)."""
    from .whyservice.access import is_admin
    caller, group = current_caller(), cfg.get("privacy.admin_group")
    return caller, group, is_admin(caller, group)


def _frame(rows: List[Dict[str, Any]], columns: Sequence[str]):
    import pandas as pd
    df = pd.DataFrame(rows, columns=list(columns))
    for col in _TIME_COLUMNS:
        if col in df.columns:
            df[col] = pd.to_datetime(pd.to_numeric(df[col], errors="coerce"), unit="s", utc=True)
    return df


def _epoch(when: When, name: str) -> Optional[float]:
    """``since``/``until`` as epoch seconds: a number, a datetime (naive = UTC), or text as
    ``nomade jobs --since`` reads it (7d, 12h, 2024-05-01)."""
    if when is None:
        return None
    if isinstance(when, bool):
        raise NomadeError(f"{name}={when!r}: give epoch seconds, a datetime or text such as 7d")
    if isinstance(when, (int, float)):
        return float(when)
    if isinstance(when, datetime):
        from datetime import timezone
        return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()
    from .jobs_query import parse_since
    try:
        return parse_since(str(when))
    except ValueError as exc:
        raise NomadeError(f"{name}: {exc}") from None


def _many(value: Union[None, str, Sequence[str]]) -> tuple:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(str(v) for v in value)


# ------------------------------------------------------------------------------ jobs
def jobs(cfg: Any, store: Any, *, since: When = None, user: Union[None, str, Sequence[str]] = None,
         state: Union[None, str, Sequence[str]] = None, cluster: Optional[str] = None,
         limit: int = 10000, job_id: Union[None, str, Sequence[str]] = None):
    """Jobs newest submission first with their scores: JOB_COLUMNS + SCORE_COLUMNS (``risk`` and
    ``level``: the latest stage's, running > start > submit)."""
    from .caller_access import listing_scope
    from .jobid import BadJobId
    from .store import job_queries
    from .store import scores as store_scores

    caller, group, admin = _admin(cfg)
    users = _many(user)
    scope = listing_scope(caller, group, users, all_users=admin and not users)
    owner = scope.owner
    try:
        query = job_queries.JobQuery(users=scope.users, states=_many(state), since=_epoch(since, "since"),
                                     cluster=cluster, limit=int(limit), job_ids=_many(job_id),
                                     owner_uid=owner.uid if owner else None,
                                     owner_name=owner.name if owner else None)
        rows = job_queries.jobs_table(store, query, [c for c in JOB_COLUMNS if c != "outcome"])
    except (ValueError, BadJobId) as exc:
        raise NomadeError(str(exc)) from None
    scores: Dict[tuple, Dict[str, Any]] = {}
    for s in store_scores.scores_of_jobs(store, [(r["cluster"], r["job_id"]) for r in rows]):
        scores.setdefault((s["cluster"], s["job_id"]), {})[s["stage"]] = s   # newest per stage last
    for r in rows:
        by_stage = scores.get((r["cluster"], r["job_id"]), {})
        for stage in _STAGES:
            r["risk_" + stage] = by_stage[stage]["risk"] if stage in by_stage else None
        latest = next((by_stage[s] for s in reversed(_STAGES) if s in by_stage), None)
        r["risk"] = latest["risk"] if latest else None
        r["level"] = risk_scale.level(latest["risk"]) if latest and latest["risk"] is not None else None
        r["model_version"] = latest["model_version"] if latest else None
    return _frame(rows, JOB_COLUMNS + SCORE_COLUMNS)


# ------------------------------------------------------------------------------ metrics
def metrics(cfg: Any, store: Any, metric: str, *, hours: float = 24.0, host: Optional[str] = None,
            labels: Optional[Dict[str, Any]] = None, cluster: Optional[str] = None, until: When = None):
    """One metric's points over the last ``hours`` (before ``until``, default now), one row per
    point of each series: METRIC_COLUMNS plus one column per label. Series that name a user
    (``web.metrics_endpoint.is_per_user``) are a non-admin's only when the user is the caller."""
    from .store import metrics as store_metrics
    from .web.metrics_endpoint import is_per_user

    end = _epoch(until, "until")
    end = time.time() if end is None else end
    rows = store_metrics.series_table(store, metric, cluster=cluster, host=host, labels=labels,
                                      since=end - 3600.0 * float(hours), until=end)
    caller, _, admin = _admin(cfg)
    if not admin:
        me = caller.name
        rows = [r for r in rows if not is_per_user(metric, r["labels"])
                or me in (r["labels"].get("user"), r["labels"].get("name"))]
    keys = sorted({k for r in rows for k in r["labels"]} - set(METRIC_COLUMNS))
    out = [dict({"time": r["ts"], "value": r["value"], "cluster": r["cluster"], "host": r["host"],
                 "metric": metric, "labels": r["labels"]}, **{k: r["labels"].get(k) for k in keys})
           for r in rows]
    return _frame(out, METRIC_COLUMNS + tuple(keys))


# ------------------------------------------------------------------------------ alerts
def alerts(cfg: Any, store: Any, *, unresolved: bool = False, severity: Optional[str] = None,
           since: When = None, limit: int = 1000):
    """Alerts newest first (ALERT_COLUMNS); a non-admin's are those about their own jobs. Empty
    (same columns) where the alert engine (``nomade.store.alerts``) is not installed."""
    try:
        from .store import alerts as store_alerts
    except ImportError:   # pragma: no cover - an install without the alert engine
        return _frame([], ALERT_COLUMNS)
    caller, _, admin = _admin(cfg)
    if not admin and caller.name is None:
        return _frame([], ALERT_COLUMNS)
    rows = store_alerts.list_alerts(store, unresolved=unresolved, severity=severity,
                                    since=_epoch(since, "since"), owner=None if admin else caller.name,
                                    limit=int(limit))
    return _frame(rows, ALERT_COLUMNS)


# ------------------------------------------------------------------------------ similar jobs
def similar_jobs(cfg: Any, store: Any, job_id: str, *, k: int = 10, cluster: str = ""):
    """The ``k`` jobs most like ``job_id`` (SIMILAR_COLUMNS), most similar first: by behaviour
    vectors (cosine similarity, ``nomade.behaviour``) where that module and the job's vector
    exist, else ``nomade.why``'s rule (the owner's jobs of the same name, then same partition and
    similar cores; ``why_similar`` says which). AccessDenied for another user's job; a non-admin's
    similar jobs are among their own."""
    from . import why
    from .report import find_job
    from .whyservice.access import check_access

    caller, group, admin = _admin(cfg)
    job = find_job(store, str(job_id), cluster)
    check_access(caller, job, group)
    rows = _behaviour_neighbours(store, job, int(k), None if admin else caller)
    if rows is None:
        rows = [dict(s.__dict__, cluster=job.get("cluster"), similarity=None)
                for s in why.similar_jobs(store, job, limit=int(k))]
    return _frame(rows, SIMILAR_COLUMNS)


def _behaviour_modules():
    """nomade.behaviour's vectors and network modules when they offer what is used here, else None."""
    try:
        from .behaviour import analysis, network, vectors
    except ImportError:
        return None
    if not all(hasattr(m, n) for m, n in ((vectors, "load"), (network, "SimilarityIndex"),
                                           (analysis, "is_own"))):
        return None
    return vectors, network, analysis


def _behaviour_neighbours(store: Any, job: Dict[str, Any], k: int, viewer) -> Optional[List[Dict[str, Any]]]:
    import numpy as np

    from .states import failure_class
    from .store.job_queries import job_row
    mods = _behaviour_modules()
    if mods is None:
        return None
    vectors, network, analysis = mods
    bset = vectors.load(store, job.get("cluster"))
    if len(bset) < 2:
        return None
    row = bset.index_of(job["job_id"], job.get("cluster"))
    if row is None:
        return None
    keep = analysis.is_own(bset, np.arange(len(bset)), viewer)
    keep[row] = True
    rows = np.nonzero(keep)[0]
    sub = bset.subset(rows)
    idx, sims = network.SimilarityIndex(sub.X).query(int(np.searchsorted(rows, row)), k)
    out = []
    for i, sim in zip(idx, sims):
        r = job_row(store, sub.cluster[i], sub.job_id[i]) or {}
        out.append({"cluster": sub.cluster[i], "job_id": sub.job_id[i], "similarity": float(sim),
                    "why_similar": "behaviour", "name": r.get("name"), "state": r.get("state"),
                    "outcome": failure_class(r["state"], r.get("cancelled_by"), r.get("uid"))
                    if r.get("state") else None,
                    "elapsed_s": r.get("elapsed_s"), "timelimit_s": r.get("timelimit_s"),
                    "req_mem_mb": r.get("req_mem_mb"), "max_rss_mb": r.get("max_rss_mb")})
    return out


# ------------------------------------------------------------------------------ profiles
def profiles(cfg: Any, store: Any, *, cluster: Optional[str] = None):
    """Job profiles (``nomade.behaviour``): PROFILE_COLUMNS, ``your_jobs`` = the caller's jobs in
    each; a non-admin sees profiles of at least ``behaviour.min_count`` jobs. Empty (same
    columns) where that module is not installed or the store has fewer than 2 ended jobs."""
    try:
        from .behaviour import analysis, vectors
    except ImportError:
        return _frame([], PROFILE_COLUMNS)
    caller, _, admin = _admin(cfg)
    bset = vectors.load(store, cluster)
    if len(bset) < 2:
        return _frame([], PROFILE_COLUMNS)
    try:
        opts = analysis.Options.from_config(cfg)
    except KeyError:   # a configuration without the behaviour settings: their defaults
        opts = analysis.Options()
    a = analysis.analyse(bset, opts, with_network=False, with_profiles=True)
    summary = analysis.profiles_summary(a, viewer=None if admin else caller)
    return _frame(summary["profiles"], PROFILE_COLUMNS)
