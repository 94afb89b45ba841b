"""Why is this job risky? The library behind ``nomade-why``: risk at submit and at start (from the
``scores`` table), the main contributing features with their values and direction, the most
similar past jobs of the same user and how they ended, and concrete recommendations.

Works for pending, running and finished jobs: whatever the store holds (``jobs`` rows from sacct,
or the Prolog's ``start`` hook record for a job accounting has not delivered yet). Privacy is not
decided here: see ``nomade.whyservice.access``."""

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .report import (JobNotFound, ScoreSeen, build_report, clusters_for, human_duration,
                     human_mem, known, load_scores, load_warnings, mem_option, slurm_time, store_clusters)
from . import efficiency, risk_scale
from .features.words import distinct, reason_text
from .jobid import array_task, parse_job_ref
from .states import FINAL_STATES, failure_class
from .store import hook_records
from .store import scores as score_table
from .store.job_queries import owner_ended_jobs
from .why_ondemand import OnDemand

SIMILAR_LIMIT = 5


@dataclass
class Contribution:
    feature: str
    value: Optional[Any]
    direction: str              # 'raises risk' / 'lowers risk'
    weight: Optional[float]     # contribution in log-odds when the model gave one
    text: str = ""              # the reason in words (nomade.features.words)
    points: Optional[float] = None   # the risk (in percentage points) it adds at the job's risk


MAX_LOG_ODDS = 20.0   # a contribution beyond this (a degenerate stack's 1e16) is shown as this


def risk_points(contribution: float, risk: float) -> float:
    """How many percentage points of ``risk`` a log-odds ``contribution`` accounts for: the risk
    minus the risk without it, both clamped to finite values."""
    c = max(-MAX_LOG_ODDS, min(MAX_LOG_ODDS, float(contribution)))
    p = max(1e-4, min(1 - 1e-4, float(risk)))
    without = 1.0 / (1.0 + math.exp(-(math.log(p / (1 - p)) - c)))
    return (p - without) * 100.0


def points_text(c: Mapping[str, Any]) -> str:
    """'raises the risk by about 12 points' (or the direction alone when no size is known)."""
    pts = c.get("points")
    verb = "lowers" if c.get("direction") == "lowers risk" else "raises"
    if pts is None:
        return f"{verb} the risk"
    if abs(pts) < 1:
        return f"{verb} the risk by less than 1 point"
    return f"{verb} the risk by about {abs(pts):.0f} points"


@dataclass
class SimilarJob:
    job_id: str
    name: Optional[str]
    state: Optional[str]
    outcome: Optional[str]
    elapsed_s: Optional[float]
    timelimit_s: Optional[int]
    max_rss_mb: Optional[float]
    req_mem_mb: Optional[float]
    why_similar: str


@dataclass
class WhyAnswer:
    job_id: str
    cluster: str
    user: Optional[str]
    uid: Optional[int]
    name: Optional[str]
    state: Optional[str]
    outcome: Optional[str]
    risk_submit: Optional[Dict[str, Any]]
    risk_start: Optional[Dict[str, Any]]
    contributions: List[Contribution] = field(default_factory=list)
    similar: List[SimilarJob] = field(default_factory=list)
    similar_summary: str = ""
    recommendations: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)    # the node recorder's early warnings
    sbatch: Optional[Dict[str, Any]] = None   # what sbatch told the user (the Lua model, recomputed)
    waiting: Optional[Dict[str, Any]] = None  # a pending job: Slurm's reason, expected start, advice

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def parse_reasons(text: Optional[str], risk: Optional[float] = None) -> List[Contribution]:
    """``scores.reasons`` JSON: a list of strings (Lua-style reasons) or of objects
    {feature, value, contribution} (exact tree contributions / ensemble approximation), one per
    family of reasons (nomade.features.words.distinct); ``risk``: the score's, to state each
    contribution in points of risk."""
    if not text:
        return []
    try:
        items = json.loads(text)
    except (TypeError, ValueError):
        return [Contribution(str(text), None, "raises risk", None)]
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping):
            w = item.get("contribution", item.get("weight"))
            w = float(w) if isinstance(w, (int, float)) and w == w else None
            feat = str(item.get("feature") or item.get("name") or "?")
            pts = risk_points(w, risk) if w is not None and isinstance(risk, (int, float)) else None
            out.append(Contribution(feat, item.get("value"),
                                    "lowers risk" if (w is not None and w < 0) else "raises risk",
                                    None if w is None else max(-MAX_LOG_ODDS, min(MAX_LOG_ODDS, w)),
                                    reason_text(feat, item.get("value")), pts))
        else:
            out.append(Contribution(str(item), None, "raises risk", None, str(item)))
    return [out[i] for i in distinct([c.feature for c in out])]


def _score_dict(s: ScoreSeen) -> Dict[str, Any]:
    return {"risk": s.risk, "level": risk_scale.level(s.risk), "model_version": s.model_version}


def _job_or_start_record(store, job_id: str, cluster: str) -> Dict[str, Any]:
    """The stored job, else the Prolog's start record of a running job. The owner of a start
    record is slurmd's (the record's ``job``: SLURM_JOB_USER/UID), never the request's text."""
    from .report import find_job
    try:
        return find_job(store, job_id, cluster)
    except JobNotFound:
        row = _start_record(store, job_id, cluster)
        if row is None:
            raise
        rec = json.loads(row["data"])
        env, req = rec.get("job") or {}, rec.get("request") or {}
        return {"job_id": row.get("job_id") or job_id, "cluster": row["cluster"] or env.get("cluster", ""), "user": env.get("user"),
                "uid": env.get("uid"), "name": req.get("name"), "partition": req.get("partition"),
                "req_cpus": req.get("cpus"), "timelimit_s": req.get("timelimit_s"), "state": "RUNNING",
                "submit_time": req.get("submit_time"), "start_time": req.get("start_time"),
                "source": "prolog", "request": req}


def _start_record(store, job_id: str, cluster: str) -> Optional[Dict[str, Any]]:
    """The newest Prolog start record of ``job_id``: stored under the raw id (SLURM_JOB_ID); an
    array task's ``123_4`` found by the array ids the record holds."""
    ref = parse_job_ref(job_id)
    rows = hook_records.job_records(store, ref.job_id, "start", cluster, limit=1)
    task = array_task(ref)
    if not rows and task is not None:
        rows = hook_records.array_task_records(store, task[0], task[1], "start", cluster, limit=1)
    return rows[0] if rows else None


def job_owner(store, job_id: str, cluster: str = "", live=None) -> Dict[str, Any]:
    """The row used for the privacy check: user and uid of the job. A job the store does not
    hold is asked of Slurm when ``live`` (a ``live_job.SlurmJobs``) is given: its owner as
    squeue prints it (``source`` 'slurm'; ``explain`` completes it)."""
    try:
        return _job_or_start_record(store, job_id, cluster)
    except JobNotFound as exc:
        from .live_job import live_owner
        return live_owner(live, job_id, cluster, exc)


def similar_jobs(store, job: Mapping[str, Any], limit: int = SIMILAR_LIMIT) -> List[SimilarJob]:
    """The user's most recent ended jobs with the same name; topped up with jobs in the same
    partition with a comparable core count. The user is the job's uid on the job's cluster
    (a user name alone is text another record may carry); by name only where no uid is known."""
    def ended(**like):
        return owner_ended_jobs(store, job.get("cluster") or "", job.get("uid"), job.get("user"),
                                job["job_id"], limit, **like)

    seen: Dict[str, SimilarJob] = {}
    queries = []
    if job.get("name"):
        queries.append((ended(name=job["name"]), "same name"))
    cpus = job.get("req_cpus") or 1
    queries.append((ended(partition_cpus=(job.get("partition"), max(1, cpus // 2), cpus * 2)),
                    "same partition, similar cores"))
    for rows, why in queries:
        for r in rows:
            if r["job_id"] in seen or len(seen) >= limit:
                continue
            seen[r["job_id"]] = SimilarJob(
                r["job_id"], r["name"], r["state"],
                failure_class(r["state"], r["cancelled_by"], r["uid"], r["exit_code"]),
                r["elapsed_s"], r["timelimit_s"], r["max_rss_mb"], r["req_mem_mb"], why)
    return list(seen.values())


def summarize_similar(similar: Sequence[SimilarJob]) -> str:
    if not similar:
        return "no similar past jobs in the store"
    bad = [s for s in similar if s.outcome not in ("success", "cancelled_owner", None)]
    kinds: Dict[str, int] = {}
    for s in bad:
        kinds[s.outcome or "?"] = kinds.get(s.outcome or "?", 0) + 1
    detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
    return f"{len(bad)} of {len(similar)} similar past jobs failed" + (f" ({detail})" if detail else "")


def recommend(job: Mapping[str, Any], similar: Sequence[SimilarJob]) -> List[str]:
    recs: List[str] = []
    ok = [s for s in similar if s.outcome == "success"]
    timeouts = [s for s in similar if s.outcome == "timeout"]
    ooms = [s for s in similar if s.outcome == "oom"]
    if timeouts:
        need = max([s.elapsed_s or 0 for s in ok + timeouts])
        recs.append(f"--time={slurm_time(need * 1.3)}: {len(timeouts)} similar job(s) hit their time limit; "
                    f"the longest similar run took {human_duration(need)}.")
    if ooms:
        peak = max([s.max_rss_mb or s.req_mem_mb or 0 for s in ooms + ok])
        # --mem is per node: never below a task's peak x the tasks on one node (nomade.efficiency)
        steps = job.get("steps") or ()
        node = max(peak * efficiency.tasks_per_node(job, steps), efficiency.usage(job, steps).mem_node_peak_mb or 0)
        recs.append(f"--mem={mem_option(node * 1.5)}: {len(ooms)} similar job(s) ran out of memory "
                    f"(peak seen {human_mem(peak)}" + (f" per task, {human_mem(node)} per node)." if node > peak else ")."))
    if not timeouts and job.get("timelimit_s") and ok:
        longest = max(s.elapsed_s or 0 for s in ok)
        if longest > job["timelimit_s"]:
            recs.append(f"--time={slurm_time(longest * 1.3)}: similar successful jobs ran "
                        f"{human_duration(longest)}, longer than this job's limit.")
    failed = [s for s in similar if s.outcome == "failed"]
    if failed and not recs:
        recs.append(f"{len(failed)} similar job(s) failed with a non-zero exit: run a short test first "
                    f"(e.g. --time=00:10:00 on a small input) and check their error files.")
    return recs


def explain(store, job_id: str, cluster: str = "", threshold: float = risk_scale.DEFAULT_ALERT,
            job: Optional[Dict[str, Any]] = None, ondemand: Optional[OnDemand] = None) -> WhyAnswer:
    """Everything ``nomade-why`` shows for one job. Raises JobNotFound. ``job``: the row
    ``job_owner`` returned (a Slurm owner row is completed from scontrol through ``ondemand``);
    ``ondemand``: score the stages nothing stored a score for, now, with the current bundle."""
    job = job if job is not None else _job_or_start_record(store, str(job_id), cluster)
    if job.get("source") == "slurm" and "request" not in job and ondemand is not None and ondemand.live:
        job = ondemand.live.job(job)
        if not job.get("cluster") and len(store_clusters(store)) == 1:
            job["cluster"] = store_clusters(store)[0]
    clus = job.get("cluster") or ""
    # a cluster-less score counts only in a one-cluster store
    rows = score_table.job_scores(store, job["job_id"], clusters_for(store, clus))
    by_stage: Dict[str, Any] = {r["stage"]: r for r in rows}
    fresh = ondemand.scores(store, job, [s for s in ("submit", "start") if s not in by_stage]) \
        if ondemand is not None else {}
    sbatch = fresh.pop("sbatch", None)
    by_stage.update(fresh)
    contributions: List[Contribution] = []
    for stage in ("start", "submit"):
        if stage in by_stage and not contributions:
            contributions = parse_reasons(by_stage[stage]["reasons"], by_stage[stage].get("risk"))
    scores = load_scores(store, clus, job["job_id"])
    sim = similar_jobs(store, job)
    recs = recommend(job, sim)
    option = (sbatch or {}).get("suggestion") or ""
    if option and not any(r.startswith(option.split("=")[0] + "=") for r in recs):
        recs.insert(0, option)   # the sbatch option job_submit.lua suggested
    if job.get("state") in FINAL_STATES:
        recs += [n for n in build_report(job, scores, None, threshold, via_why=True).notes if n not in recs]
    state = job.get("state")
    waiting = None
    if state == "PENDING" and ondemand is not None and ondemand.live is not None:
        waiting = ondemand.live.waiting(str(job["job_id"]))
    return WhyAnswer(
        job_id=str(job["job_id"]), cluster=clus, user=job.get("user"), uid=job.get("uid"),
        name=job.get("name"), state=state,
        outcome=failure_class(state, job.get("cancelled_by"), job.get("uid"), job.get("exit_code"))
        if state in FINAL_STATES else None,
        risk_submit=_stage_risk(by_stage, "submit"), risk_start=_stage_risk(by_stage, "start"),
        contributions=contributions[:5], similar=sim, similar_summary=summarize_similar(sim),
        recommendations=recs, warnings=load_warnings(store, clus, str(job["job_id"])), sbatch=sbatch,
        waiting=waiting)


def _stage_risk(by_stage: Mapping[str, Mapping[str, Any]], stage: str) -> Optional[Dict[str, Any]]:
    """The risk dict of a stage: a stored score, or one scored now (``scored``: 'now', ``as_of``:
    the submit or start time it was scored as of)."""
    r = by_stage.get(stage)
    if r is None:
        return None
    out = _score_dict(ScoreSeen(stage, r["risk"], r["level"], r["model_version"]))
    if r.get("scored") == "now":
        out.update(scored="now", as_of=r.get("as_of"))
    return out


def _ran_for(elapsed: Optional[float], limit: Optional[float]) -> str:
    """'ran 1h02m of 2h00m', with words where a value is unknown (never '?')."""
    ran = f"ran {human_duration(elapsed)}" if known(elapsed) else "run time unknown"
    return ran + (f" of {human_duration(limit)}" if known(limit) else ", no time limit known")


def _sbatch_lines(v: Optional[Mapping[str, Any]]) -> List[str]:
    """What sbatch told the user (the Lua model's verdict, recomputed)."""
    if not v:
        return []
    if not v.get("warned"):
        return [f"At sbatch: no warning (the submit model, {v['model_version']}, gave {v['risk']:.0%}; "
                f"it warns from {v['threshold']:.0%})"]
    return [f"At sbatch (recomputed with model {v['model_version']}; nothing was shown if the job was "
            "submitted with --comment=nomade:quiet):"] + \
        [f"  {line}" for line in str(v.get("message") or "").splitlines()]


def _waiting_lines(w: Optional[Mapping[str, Any]]) -> List[str]:
    """Why a pending job waits (Slurm's reason), when Slurm expects it to start, what helps."""
    if not w:
        return []
    import time as _time
    when = ("Slurm has no start estimate yet" if w.get("expected_start") is None else
            "Slurm expects it to start around " + _time.strftime("%Y-%m-%d %H:%M", _time.localtime(w["expected_start"])))
    out = [f"Waiting: {w.get('reason')}" + (f" ({w['nodes']})" if w.get("nodes") else "") + f"; {when}"]
    if w.get("advice"):
        out.append(f"  {w['advice']}")
    return out


def format_why(a: Mapping[str, Any]) -> str:
    """Text for a WhyAnswer.as_dict() (what the service sends)."""
    def risk(r: Optional[Mapping[str, Any]]) -> str:
        if not r:
            return "not scored"
        now = ", scored now by nomade-why" if r.get("scored") == "now" else ""
        return f"{r['risk']:.0%} {r.get('level') or ''} (model {r['model_version']}{now})"
    lines = [f"Job {a['job_id']}" + (f" ({a['name']})" if a.get("name") else "")
             + f" of {a.get('user') or 'an unknown user'}: {a.get('state') or 'state unknown'}"
             + (f", outcome {a['outcome']}" if a.get("outcome") else ""),
             f"Risk at submit: {risk(a.get('risk_submit'))}",
             f"Risk at start:  {risk(a.get('risk_start'))}"]
    lines.extend(_sbatch_lines(a.get("sbatch")))
    lines.extend(_waiting_lines(a.get("waiting")))
    if a.get("contributions"):
        lines.append("Main factors:")
        for c in a["contributions"]:
            lines.append(f"  {c.get('text') or c['feature'].replace('_', ' ')}: {points_text(c)}")
    for w in a.get("warnings") or []:
        lines.append(f"Early warning: {w}")
    lines.append(f"Similar past jobs: {a.get('similar_summary')}")
    for s in a.get("similar") or []:
        lines.append(f"  {s['job_id']:<10} {(s.get('name') or '')[:20]:<20} {s.get('state') or 'unknown':<13} "
                     f"{_ran_for(s.get('elapsed_s'), s.get('timelimit_s'))}  [{s['why_similar']}]")
    if a.get("recommendations"):
        lines.append("Recommendations:")
        lines.extend(f"  {r}" for r in a["recommendations"])
    return "\n".join(lines)
