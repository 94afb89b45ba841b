"""What each dashboard page shows, as plain data (dicts and lists that JSON and the templates
both take). Every function gets the ``Viewer``; the privacy rule is applied here, once per page,
with ``whyservice.access`` (a non-admin's listings are limited to their uid; one job is checked
with ``check_access``). The modules of other engines (alerts, behaviour analysis) are imported
lazily: a page says "not available" when one is missing."""

import importlib
import logging
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .. import risk_scale
from ..errors import AccessDenied, NomadeError
from ..store import web_queries
from ..store.job_queries import job_clusters
from .auth import Viewer

log = logging.getLogger(__name__)

NETWORK_LIMIT = 20000     # points the Network page asks for
NETWORK_MAX = 100000      # the most /api/network?limit= gives
PAGE_MAX = 1_000_000_000  # the last page of /jobs and /api/jobs that may be asked for


class NotFound(NomadeError):
    """A page or a job the viewer may not see, or that does not exist: both read the same."""


class TooBig(NomadeError):
    """The behaviour network is not built for a store this big (web.network_max_jobs)."""


class BadRequest(NomadeError):
    """A filter or parameter that cannot be used (the message names it)."""


def optional_module(name: str):
    """The module ``name``, None when it is not there (another engine not installed yet)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def default_cluster(store, cfg) -> Optional[str]:
    """The cluster the job pages show: ``cluster`` when set, else the store's only one; None
    (all clusters) when the store holds several and no setting says which."""
    if cfg.get("cluster"):
        return cfg.get("cluster")
    found = job_clusters(store)
    return found[0] if len(found) == 1 else None


# ------------------------------------------------------------------ overview
def overview(cfg, store, viewer: Viewer) -> Dict[str, Any]:
    from ..analysis import Analysis
    from ..monitor import cluster_name
    status = Analysis(store, cluster=cluster_name(cfg)).status().as_dict()
    out: Dict[str, Any] = {"status": status, "alerts": firing_alerts(cfg, store, viewer)}
    if viewer.admin:
        cl = default_cluster(store, cfg)
        newest = web_queries.newest_submit(store, cl)
        counts = web_queries.level_counts(store, cl, newest - 86400.0) if newest is not None else {}
        out["risk_levels"] = [[name, counts[name]] for name in risk_scale.LEVELS + (web_queries.UNSCORED,)
                              if name in counts]
    return out


# ------------------------------------------------------------------ jobs
def jobs_list(cfg, store, viewer: Viewer, params: Mapping[str, str]) -> Dict[str, Any]:
    """One page of jobs for ``params`` (user, state, level, job, page)."""
    from ..jobid import BadJobId, parse_job_ref
    users = _split(params.get("user", ""))
    if users and not viewer.admin and any(u != viewer.name for u in users):
        raise AccessDenied("only administrators may list other users' jobs")
    job_ids = _split(params.get("job", ""))
    for j in job_ids:
        try:
            parse_job_ref(j)
        except BadJobId as exc:
            raise BadRequest(str(exc)) from None
    try:
        page = max(1, int(params.get("page") or 1))
    except ValueError:
        page = 0
    if not 1 <= page <= PAGE_MAX:   # past it, the offset would not fit the database's integers
        raise BadRequest(f"page: a whole number, 1 to {PAGE_MAX}")
    size = max(1, int(cfg.get("web.page_size")))
    q = web_queries.JobsPageQuery(
        cluster=default_cluster(store, cfg), users=users, states=_split(params.get("state", "")),
        levels=_split(params.get("level", "")), job_ids=job_ids, offset=(page - 1) * size, limit=size)
    if not viewer.admin:
        q.owner_uid, q.owner_name = viewer.uid, viewer.name
    try:
        rows, more = web_queries.jobs_page(store, q)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return {"jobs": rows, "page": page, "more": more, "page_size": size,
            "filters": {k: params.get(k, "") for k in ("user", "state", "level", "job")},
            "levels": list(risk_scale.LEVELS) + [web_queries.UNSCORED]}


def _split(text: str) -> List[str]:
    return [p.strip() for p in str(text or "").split(",") if p.strip()][:50]


# ------------------------------------------------------------------ one job
def job_detail(cfg, store, viewer: Viewer, job_id: str, cluster: str = "") -> Dict[str, Any]:
    """Everything the Job page shows; NotFound alike for a missing job and someone else's."""
    from .. import why
    from ..report import JobNotFound, SeveralJobs, _report_of, job_keys
    from ..whyservice.access import check_access
    try:
        job = why.job_owner(store, job_id, cluster)
        check_access(viewer.caller(), job, cfg.get("privacy.admin_group"))
    except (JobNotFound, SeveralJobs, AccessDenied, ValueError):
        raise NotFound(f"job {job_id}: not among the jobs you may see") from None
    except NomadeError as exc:          # BadJobId and friends
        raise NotFound(f"job {job_id}: {exc}") from None
    threshold = risk_scale.current_threshold(cfg)
    answer = why.explain(store, str(job["job_id"]), job.get("cluster") or "", threshold, job=job).as_dict()
    report = None
    if job.get("source") not in ("prolog", "slurm"):
        report = _report_of(store, job, threshold, None, "").as_dict()
    cl = job.get("cluster") or ""
    samples = web_queries.job_samples(store, cl, job_keys(job))
    return {"job": _public_job(job), "why": answer, "report": report,
            "waterfall": waterfall(answer), "series": series(samples, job),
            "option": (answer.get("recommendations") or [None])[0]}


def _public_job(job: Mapping[str, Any]) -> Dict[str, Any]:
    keep = ("cluster", "job_id", "user", "name", "state", "partition", "account", "qos", "submit_time",
            "start_time", "end_time", "elapsed_s", "timelimit_s", "req_cpus", "req_mem_mb", "req_gpus",
            "node_list", "exit_code", "exit_signal", "source")
    return {k: job.get(k) for k in keep}


def waterfall(answer: Mapping[str, Any]) -> Dict[str, Any]:
    """The factors of the newest risk as a waterfall in log-odds: the base (the risk with every
    factor taken away), each factor's step, the final risk. Factors without a weight (the Lua
    model's reasons) are listed without a step."""
    risk = (answer.get("risk_start") or answer.get("risk_submit") or {}).get("risk")
    steps = [{"label": c.get("text") or c.get("feature"), "feature": c.get("feature"),
              "value": c.get("value"), "weight": c.get("weight"), "direction": c.get("direction")}
             for c in answer.get("contributions") or []]
    weighted = [s["weight"] for s in steps if isinstance(s["weight"], (int, float))]
    if risk is None:
        return {"risk": None, "base": None, "steps": steps}
    final = _logit(float(risk))
    return {"risk": float(risk), "final_logit": final, "base": final - sum(weighted), "steps": steps}


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def series(samples: Sequence[Mapping[str, Any]], job: Mapping[str, Any]) -> Dict[str, Any]:
    """The recorder's memory series (cgroup working set, else RSS, summed over nodes per time)
    and its projection against the cgroup limit (``recorder.projection``)."""
    from ..recorder.projection import project
    mem: Dict[float, float] = {}
    limit: Optional[float] = None
    cpu: List[List[float]] = []
    for s in samples:
        v = s.get("cg_mem_mb") if s.get("cg_mem_mb") is not None else s.get("rss_mb")
        if v is not None:
            mem[s["ts"]] = mem.get(s["ts"], 0.0) + float(v)
        if s.get("cg_mem_limit_mb"):
            limit = float(s["cg_mem_limit_mb"])
        if s.get("cpu_eff") is not None:
            cpu.append([s["ts"], float(s["cpu_eff"])])
    points = sorted(mem.items())
    limit = limit or (float(job["req_mem_mb"]) if job.get("req_mem_mb") and not job.get("req_mem_per_cpu") else None)
    proj = project(points, limit) if points and limit else None
    return {"memory": [[t, v] for t, v in points], "cpu_eff": cpu, "limit_mb": limit,
            "projection": proj.as_dict() if proj else None}


# ------------------------------------------------------------------ network and profiles
def behaviour_network(cfg, store, viewer: Viewer, limit: int = NETWORK_LIMIT) -> Optional[Dict[str, Any]]:
    """The similarity network of ``nomade.behaviour.export.network_export`` with the safe and
    danger zones' shapes (``nomade.behaviour.zones``); None when the behaviour analysis is not
    installed. Slow on big stores: the app builds it in the background."""
    export = optional_module("nomade.behaviour.zones")
    if export is None or not hasattr(export, "network_export"):
        return None
    most = int(cfg.get("web.network_max_jobs"))
    if most <= 0 or web_queries.more_jobs_than(store, most):
        raise TooBig(f"the store holds more than web.network_max_jobs ({most}) jobs: the behaviour "
                     "analysis is not run by the dashboard")
    data = export.network_export(store, default_cluster(store, cfg),
                                 viewer=None if viewer.admin else viewer.caller(), limit=limit)
    data["source"] = "behaviour"
    return data


def network(cfg, store, viewer: Viewer, limit: int = NETWORK_LIMIT,
            behaviour: Optional[Dict[str, Any]] = None, note: str = "") -> Dict[str, Any]:
    """The network page's payload: ``behaviour`` (the exporter's result) when given, else the
    jobs placed by what they asked for (cores, time limit, memory), no edges, with ``note``
    saying why. A non-admin's payload holds only their own jobs (filtered here as well as by the
    exporter); zones and profiles are the exporter's aggregates."""
    if behaviour is not None:
        data = dict(behaviour)
        data.pop("layout_fit", None)        # the transform stays on the server (running_network)
    else:
        data = request_network(store, default_cluster(store, cfg), viewer, limit)
        if note:
            data["problem"] = note
    if not viewer.admin:
        data = _only_own(data, viewer)
    data["count"] = len(data.get("nodes") or [])
    return data


def _only_own(data: Dict[str, Any], viewer: Viewer) -> Dict[str, Any]:
    """The viewer's own nodes (``own`` true where the exporter says so, else the user name), the
    edges between them re-indexed."""
    nodes = data.get("nodes") or []
    keep = [i for i, n in enumerate(nodes)
            if (n.get("own") if "own" in n else (n.get("user") is not None and n.get("user") == viewer.name))]
    index = {old: new for new, old in enumerate(keep)}
    data["nodes"] = [nodes[i] for i in keep]
    data["edges"] = [[index[e[0]], index[e[1]]] + list(e[2:]) for e in data.get("edges") or []
                     if e[0] in index and e[1] in index]
    return data


def request_network(store, cluster: Optional[str], viewer: Viewer, limit: int) -> Dict[str, Any]:
    """The fallback layout: recent jobs at (log cores, log time limit, log memory), scaled to
    [-1, 1]; no edges, no zones."""
    q = web_queries.JobsPageQuery(cluster=cluster, limit=limit)
    if not viewer.admin:
        q.owner_uid, q.owner_name = viewer.uid, viewer.name
    rows = web_queries.network_jobs(store, q)
    raw = [_asked(r) for r in rows]
    spans = [(min(c), max(c)) for c in zip(*raw)] if raw else []
    nodes = []
    for r, xyz in zip(rows, raw):
        pos = _scaled(xyz, spans)
        nodes.append({"job_id": r["job_id"], "user": r["user"], "own": not viewer.admin or r["user"] == viewer.name,
                      "outcome": r["outcome"],
                      "failed": r["outcome"] not in ("success", "cancelled_owner", "unknown"),
                      "xyz": pos, "pca": pos[:2] + [0.0]})
    return {"version": 1, "source": "requests", "cluster": cluster,
            "axes": ["cores (log)", "time limit (log)", "memory (log)"],
            "nodes": nodes, "edges": [], "zones": [], "profiles": [], "request_spans": spans}


def _asked(r: Mapping[str, Any]) -> List[float]:
    """What a job asked for, as the fallback layout places it (log cores, time limit, memory)."""
    return [math.log1p(r["req_cpus"] or 1), math.log1p((r["timelimit_s"] or 0) / 60.0),
            math.log1p(r["req_mem_mb"] or 0)]


def _scaled(xyz: Sequence[float], spans: Sequence[Sequence[float]]) -> List[float]:
    return [(2 * (v - lo) / (hi - lo) - 1) if hi > lo else 0.0 for v, (lo, hi) in zip(xyz, spans)]


# running jobs placed per request of the Network page's live layer (each: one summary row read
# with the others, its nodes' statistics over its run so far, one behaviour vector)
RUNNING_MAX = 200


def running_network(cfg, store, viewer: Viewer, behaviour: Optional[Dict[str, Any]] = None,
                    request_spans: Optional[Sequence[Sequence[float]]] = None,
                    limit: Optional[int] = None) -> Dict[str, Any]:
    """Where the running jobs the viewer may see (their own; an admin all) stand now in the
    network's layouts: those with recorder samples, the newest sampled first, at most ``limit``
    (default RUNNING_MAX).
    With the behaviour analysis (``behaviour`` holds its ``layout_fit``) each job's behaviour
    vector is built from its summary so far (``behaviour.vectors.build``, as for ended jobs:
    runtime up to its newest sample, its nodes' statistics over that run) and placed by the
    analysis' own transform (``behaviour.zones.place``); without it, by what the job asked for
    and ``request_spans``, as the fallback layout places every job."""
    cl = default_cluster(store, cfg)
    q = web_queries.JobsPageQuery(cluster=cl, limit=max(1, int(limit or RUNNING_MAX)))
    if not viewer.admin:
        q.owner_uid, q.owner_name = viewer.uid, viewer.name
    columns, rows = web_queries.running_job_rows(store, q)
    rows = [dict(zip(columns, r)) for r in rows]
    fit = (behaviour or {}).get("layout_fit")
    zones = optional_module("nomade.behaviour.zones") if fit else None
    if zones is not None and hasattr(zones, "place"):
        xyz, pca = _placed_by_behaviour(store, zones, fit, rows, columns)
        source = "behaviour"
    else:
        pos = [_scaled(_asked(r), request_spans or []) or [0.0, 0.0, 0.0] for r in rows]
        xyz, pca, source = pos, [p[:2] + [0.0] for p in pos], "requests"
    jobs = []
    for r, p, c in zip(rows, xyz, pca):
        own = r["uid"] == viewer.uid if r["uid"] is not None else r["user"] == viewer.name
        jobs.append({"cluster": r["cluster"], "job_id": str(r["job_id"]),
                     "user": r["user"] if viewer.admin else None, "own": bool(own or not viewer.admin),
                     "last_sample": r["s_last_ts"], "elapsed_s": _run_so_far(r),
                     "xyz": [_round(v) for v in p], "pca": [_round(v) for v in c]})
    return {"source": source, "cluster": cl, "count": len(jobs), "limit": q.limit, "jobs": jobs}


def _run_so_far(r: Mapping[str, Any]) -> Optional[float]:
    if r.get("start_time") is None or r.get("s_last_ts") is None:
        return r.get("elapsed_s")
    return max(0.0, float(r["s_last_ts"]) - float(r["start_time"]))


def _round(v: Any) -> Optional[float]:
    return round(float(v), 4) if v is not None and math.isfinite(float(v)) else None


def _placed_by_behaviour(store, zones, fit, rows, columns):
    """Behaviour vectors of the running ``rows`` (their run so far: elapsed up to the newest
    sample, node statistics over [start, newest sample]) placed by ``fit``."""
    import numpy as np

    from ..behaviour.vectors import NODE_METRICS, build
    from ..features.start import expand_nodes
    metrics = sorted({m for ms in NODE_METRICS.values() for m in ms})
    vecs = []
    for r in rows:
        r = dict(r, elapsed_s=_run_so_far(r), end_time=r["s_last_ts"])
        points = {}
        if r["start_time"] is not None and r["end_time"] is not None and r["node_list"]:
            mid = (float(r["start_time"]) + float(r["end_time"])) / 2.0
            means = web_queries.node_stat_means(store, r["cluster"], metrics, expand_nodes(r["node_list"]),
                                                float(r["start_time"]), float(r["end_time"]))
            points = {key: [(mid, v)] for key, v in means.items()}
        b = build([tuple(r[c] for c in columns[:-1])], columns[:-1], points or None)
        vecs.append(b.X[0])
    if not vecs:
        return [], []
    where = zones.place(fit, np.vstack(vecs))
    return where["xyz"].tolist(), where["pca"].tolist()


# ------------------------------------------------------------------ models
def models(cfg, store, viewer: Viewer) -> Dict[str, Any]:
    from ..store.models import all_models
    rows = []
    for m in reversed(all_models(store)):
        man = m.manifest or {}
        rows.append({"version": m.version, "status": m.status, "created_at": m.created_at,
                     "promoted_at": m.promoted_at, "format": man.get("format_version", man.get("format")),
                     "window": man.get("training_window"),
                     "metrics": _flat_numbers({k: man.get(k) for k in ("metrics", "evaluation", "readiness")
                                               if isinstance(man.get(k), dict)}),
                     "threshold": risk_scale.bundle_threshold(man)})
    return {"models": rows, **evaluation(cfg, store, viewer, rows)}


def evaluation(cfg, store, viewer: Viewer, rows: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """The current bundle as ``nomade ml status`` summarises it (``ml_status.current``: the
    readiness verdict) and the evaluation charts of the current bundle (else the newest):
    aggregates over the evaluation's test windows, shown to every viewer; the report's
    directory on the server only to admins."""
    from .. import ml_status
    from .model_charts import evaluation_charts, readiness_notes
    current = ml_status.current(store, cfg)
    shown = current["version"] or (rows[0]["version"] if rows else None)
    manifest = ml_status.manifest_of(store, shown)
    reports = {st: ev.get("report") for st, ev in (manifest.get("evaluation") or {}).items()
               if isinstance(ev, Mapping) and ev.get("report")}
    return {"current": current,
            "evaluation": {"version": shown, "charts": evaluation_charts(manifest),
                           "notes": readiness_notes(manifest),
                           "protocol": ((manifest.get("evaluation") or {}).get("submit") or {}).get("protocol"),
                           "reports": reports if viewer.admin else {}}}


PRODUCTION_WINDOW_S = 7 * 86400.0


def production(cfg, store, now: float) -> Optional[List[Dict[str, Any]]]:
    """Production precision and recall of the recorded warnings, jobs submitted in the last 7
    days that ended (``nomade.production.performance``), per stage and model version; None
    without that module."""
    mod = optional_module("nomade.production")
    if mod is None or not hasattr(mod, "performance"):
        return None
    rows = mod.performance(store, since=now - PRODUCTION_WINDOW_S,
                           owner_cancel_is_failure=bool(cfg.get("model.owner_cancel_is_failure")),
                           alert_threshold=float(cfg.get("model.alert_threshold") or 0.0))
    keep = ("stage", "model_version", "jobs", "failed", "warned", "warned_share", "precision", "recall")
    return [{k: r.as_dict().get(k) for k in keep} for r in rows]


def _flat_numbers(d: Mapping[str, Any], prefix: str = "", depth: int = 0) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, bool) or isinstance(v, str):
            out[key] = v
        elif isinstance(v, (int, float)):
            out[key] = round(float(v), 4) if math.isfinite(float(v)) else None
        elif isinstance(v, dict) and depth < 2:
            out.update(_flat_numbers(v, key + ".", depth + 1))
        if len(out) >= 40:
            break
    return out


# ------------------------------------------------------------------ alerts
ALERT_LIMIT = 500


def _alert_store():
    mod = optional_module("nomade.store.alerts")
    return mod if mod is not None and hasattr(mod, "list_alerts") else None


def firing_alerts(cfg, store, viewer: Viewer) -> Optional[List[Dict[str, Any]]]:
    """The firing alerts this viewer may see (None: no alert engine)."""
    found = all_alerts(cfg, store, viewer, unresolved=True)
    return None if found is None else [a for a in found if a.get("state") == "firing"]


def all_alerts(cfg, store, viewer: Viewer, unresolved: bool = False) -> Optional[List[Dict[str, Any]]]:
    """Alerts newest first (``store.alerts.list_alerts``) that this viewer may see: an admin all,
    a user those about no user's jobs and those about their own (``owner``, or a ``user``
    label). None when the alert engine is not installed."""
    mod = _alert_store()
    if mod is None:
        return None
    rows = mod.list_alerts(store, unresolved=unresolved, limit=ALERT_LIMIT)
    return [a for a in rows if _may_see_alert(a, viewer)]


def _may_see_alert(a: Mapping[str, Any], viewer: Viewer) -> bool:
    if viewer.admin:
        return True
    labels = a.get("labels") if isinstance(a.get("labels"), Mapping) else {}
    about = [u for u in (a.get("owner"), labels.get("user"), labels.get("owner")) if u]
    return all(u == viewer.name for u in about) and not (labels.get("job_id") and not about)


def alert_action(cfg, store, viewer: Viewer, alert_id: str, action: str, by: str,
                 duration_s: float = 3600.0, comment: str = "", now: Optional[float] = None) -> None:
    """Acknowledge an open alert (``ack``: no repeats for ``duration_s``) or silence its rule on
    its cluster for ``duration_s`` (``silence``). Admins only."""
    import time as _time
    if not viewer.admin:
        raise AccessDenied("only administrators may acknowledge or silence alerts")
    mod = _alert_store()
    if mod is None:
        raise NotFound("the alert engine is not installed")
    try:
        key = int(alert_id)
    except ValueError:
        raise NotFound(f"alert {alert_id!r}: no such alert") from None
    alert = mod.get_alert(store, key)
    if alert is None:
        raise NotFound(f"alert {key}: no such alert")
    now = _time.time() if now is None else now
    if action == "ack":
        if not mod.ack(store, key, now, now + duration_s, by, comment):
            raise BadRequest(f"alert {key} is resolved: nothing to acknowledge")
    else:
        matchers = {"rule": alert["rule"], "cluster": alert["cluster"]}
        mod.add_silence(store, matchers, now, now + duration_s, by, comment or f"from the dashboard (alert {key})")


# ------------------------------------------------------------------ my page
def my_page(cfg, store, viewer: Viewer) -> Dict[str, Any]:
    jobs = jobs_list(cfg, store, viewer, {"user": viewer.name or ""} if viewer.admin and viewer.name else {})
    out: Dict[str, Any] = {"jobs": jobs["jobs"][:20], "recommendations": None}
    rec = optional_module("nomade.behaviour.recommend")
    fn = getattr(rec, "recommendations_for", None) if rec is not None else None
    if fn is not None:
        try:
            out["recommendations"] = fn(store, viewer.caller())
        except NomadeError as exc:
            out["recommendations_error"] = str(exc)
    return out
