"""The job report, in the style of seff and jobstats: CPU and memory efficiency (GPU where known),
time used vs limit, outcome and failure class, predicted risk vs what happened, and notes that
name the exact sbatch option to change.

``load_report(store, job_id)`` reads the store (jobs, job_steps, scores, job_summaries,
hook_records); ``load_reports`` does it for every job an id names (an array's tasks, a het job's
components: ``nomade.jobid``); ``build_report(job, scores, ...)`` is the pure part;
``format_report`` / ``format_reports`` render text.

The numbers and the field each comes from are ``nomade.efficiency``'s (docs/features.md,
"Efficiency"): memory used = the largest step's TRESUsageInTot ``mem=`` (MaxRSS x NTasks without
it), memory requested = the whole job's (ReqTRES / ReqMem by its form / AllocTRES), CPU time =
TotalCPU, or TRESUsageInTot / TRESUsageInMax ``cpu=`` where TotalCPU missed killed processes. The report names the
source of each (``mem_used_source``, ``mem_requested_source``, ``cpu_source``)."""

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from . import efficiency, risk_scale
from .analysis.words import printable
from .errors import JobNotFound, NomadeError
from .jobid import array_task, parse_job_ref
from .states import FINAL_STATES, failure_class
from .store import hook_records
from .store.job_queries import job_clusters, job_row, job_steps, jobs_by_number
from .store import recorder as recorder_table
from .store import scores as score_table



class AmbiguousJob(JobNotFound):
    """The job id is in the store for several clusters and no cluster was given."""


class SeveralJobs(NomadeError):
    """The id names several jobs (an array's tasks, a het job's components) where one is needed."""


@dataclass
class ScoreSeen:
    stage: str
    risk: float
    level: Optional[str]
    model_version: str


@dataclass
class JobReport:
    job_id: str
    cluster: str
    user: Optional[str]
    uid: Optional[int]
    name: Optional[str]
    state: Optional[str]
    failure_class: Optional[str]
    exit_code: Optional[int]
    exit_signal: Optional[int]
    node_list: Optional[str]
    cpus: Optional[int]
    elapsed_s: Optional[float]
    timelimit_s: Optional[int]
    time_used: Optional[float]          # elapsed / limit
    cpu_time_s: Optional[float]
    cpu_efficiency: Optional[float]     # total CPU / (elapsed * cpus)
    mem_requested_mb: Optional[float]   # whole job
    mem_peak_mb: Optional[float]        # whole job: the largest step, all its tasks
    mem_efficiency: Optional[float]
    gpu_utilization: Optional[float]    # mean 0..1 when the recorder saw GPUs
    scores: List[ScoreSeen] = field(default_factory=list)
    prediction: str = ""
    notes: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)   # the node recorder's early warnings
    source: str = "store"
    cpu_source: str = ""                # TotalCPU, TRESUsageInTot, TRESUsageInMax, node recorder
    mem_peak_source: str = ""           # TRESUsageInTot, MaxRSS x NTasks, MaxRSS, node recorder
    mem_requested_source: str = ""      # ReqTRES, ReqMem (whole job), ReqMem per node x nodes, ...
    mem_task_peak_mb: Optional[float] = None   # the largest single task
    mem_node_peak_mb: Optional[float] = None   # largest task x tasks on one node

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------ formatting helpers
def slurm_time(seconds: float) -> str:
    """Seconds -> sbatch --time value ([D-]HH:MM:SS), rounded up to a whole minute."""
    minutes = int(math.ceil(max(60.0, seconds) / 60.0))
    d, rem = divmod(minutes, 24 * 60)
    h, m = divmod(rem, 60)
    return f"{d}-{h:02d}:{m:02d}:00" if d else f"{h:02d}:{m:02d}:00"


def human_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def mem_option(mb: float) -> str:
    """MiB -> a round sbatch memory value ('500M', '4G')."""
    if mb < 1024:
        return f"{int(math.ceil(mb / 100.0) * 100)}M"
    return f"{int(math.ceil(mb / 1024.0))}G"


def human_mem(mb: Optional[float]) -> str:
    if mb is None:
        return "?"
    return f"{mb / 1024:.2f} GiB" if mb >= 1024 else f"{mb:.0f} MiB"


def known(x: Optional[float]) -> bool:
    """A value that can be shown: not None and not NaN/inf."""
    return x is not None and math.isfinite(float(x))


def mem_phrase(peak_mb: Optional[float], requested_mb: Optional[float]) -> str:
    """'peak 7.80 GiB of 8.00 GiB', 'peak 7.80 GiB', '8.00 GiB requested', or '' when neither is known."""
    if known(peak_mb) and known(requested_mb):
        return f"peak {human_mem(peak_mb)} of {human_mem(requested_mb)}"
    if known(peak_mb):
        return f"peak {human_mem(peak_mb)}; the request is unknown"
    if known(requested_mb):
        return f"{human_mem(requested_mb)} requested; the peak is unknown"
    return ""


def exit_phrase(code: Optional[int], signal: Optional[int]) -> str:
    """How the program ended, in words, whatever is unknown."""
    sig = f" (signal {signal})" if signal else ""
    if code is None:
        return f"The job's program failed{sig}; its exit code is unknown"
    return f"The job's program exited with code {code}{sig}"


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if not known(a) or not known(b) or b <= 0:
        return None
    return a / b


# ------------------------------------------------------------------ the pure part
def requested_mem_mb(job: Mapping[str, Any]) -> Optional[float]:
    """The whole job's requested memory (``nomade.efficiency.requested_mem``)."""
    return efficiency.requested_mem(job)[0]


def mem_suggestion(job: Mapping[str, Any], r: "JobReport", factor: float) -> Optional[str]:
    """``--mem=...`` (or ``--mem-per-cpu=...`` for a per-CPU request) for ``factor`` x what the job
    used, never below the largest task x the tasks on one node; None when nothing is known."""
    opt, per = efficiency.mem_option(job)
    used = r.mem_peak_mb or 0.0
    floor = r.mem_node_peak_mb or 0.0
    if opt == "--mem-per-cpu":
        cpus_per_node = max(1.0, (r.cpus or per) / max(1, efficiency.job_nodes(job)))
        amount = max(used / per, floor / cpus_per_node)
    else:
        amount = max(used / per, floor)
    return f"{opt}={mem_option(amount * factor)}" if amount > 0 else None


def prediction_verdict(scores: Sequence[ScoreSeen], fclass: Optional[str], threshold: float) -> str:
    if not scores:
        return "no risk was recorded for this job"
    top = max(scores, key=lambda s: s.risk)
    said = f"risk {top.risk:.0%} ({risk_scale.level(top.risk)}) at {top.stage} (model {top.model_version})"
    if fclass is None:
        return f"{said}; the job has not ended yet"
    failed = fclass not in ("success", "cancelled_owner", "cancelled_other")
    if fclass in ("cancelled_owner", "cancelled_other"):
        return f"{said}; the job was cancelled, so the prediction cannot be checked"
    if top.risk >= threshold:
        return f"{said}: warned, and it {'failed (' + fclass + ')' if failed else 'succeeded (a false alarm)'}"
    return f"{said}: not warned, and it {'failed (' + fclass + ', missed)' if failed else 'succeeded'}"


def resource_notes(job: Mapping[str, Any], r: JobReport, via_why: bool = False) -> List[str]:
    """What to change, from how the job ended and used its resources. ``via_why``: the notes are
    shown by nomade-why itself, so none of them points to it."""
    notes: List[str] = []
    jid = r.job_id
    limit = r.timelimit_s
    if r.failure_class == "timeout" and limit:
        notes.append(f"The job hit its time limit ({human_duration(limit)}). Ask for more: "
                     f"--time={slurm_time(limit * 1.5)}, or add checkpoints so a rerun can resume.")
    if r.failure_class == "oom":
        base = max(r.mem_requested_mb or 0, r.mem_peak_mb or 0)
        opt, per = efficiency.mem_option(job)
        floor = mem_suggestion(job, r, 1.5)
        ask = f"{opt}={mem_option(base * 1.5 / per)}" if base > 0 else (floor or f"a larger {opt}")
        used = mem_phrase(r.mem_peak_mb, r.mem_requested_mb)
        notes.append(f"The job ran out of memory{' (' + used + ')' if used else ''}. Ask for more: {ask}.")
    if r.failure_class == "failed":
        notes.append(f"{exit_phrase(r.exit_code, r.exit_signal)}: see the end of its output/error "
                     "file" + ("." if via_why else f"; `nomade-why {jid}` lists similar jobs and how they ended."))
    if r.failure_class == "system":
        notes.append("The job ended because of the system (node failure, preemption), not its own "
                     "fault: resubmit it; --requeue lets Slurm do that for you.")
    ok = r.failure_class == "success"
    ask = mem_suggestion(job, r, 1.25)
    if ok and r.mem_efficiency is not None and r.mem_efficiency < 0.25 and (r.mem_requested_mb or 0) > 2048 and ask:
        notes.append(f"Memory efficiency {r.mem_efficiency:.0%}: peak {human_mem(r.mem_peak_mb)} of "
                     f"{human_mem(r.mem_requested_mb)}. {ask} would do and frees memory for others.")
    if (r.cpu_efficiency is not None and r.cpu_efficiency < 0.5 and (r.cpus or 1) > 1
            and (r.elapsed_s or 0) >= 60):
        used = max(1, int(round(r.cpu_efficiency * (r.cpus or 1))))
        notes.append(f"CPU efficiency {r.cpu_efficiency:.0%}: the job kept about {used} of {r.cpus} cores "
                     f"busy. Use --cpus-per-task={used} (or make the program use all cores).")
    if ok and r.time_used is not None and r.time_used < 0.25 and limit and limit > 3600:
        notes.append(f"The job used {r.time_used:.0%} of its time limit. --time="
                     f"{slurm_time((r.elapsed_s or 0) * 1.5)} lets the scheduler start it sooner (backfill).")
    return notes


def build_report(job: Mapping[str, Any], scores: Sequence[ScoreSeen] = (),
                 summary: Optional[Mapping[str, Any]] = None,
                 threshold: float = risk_scale.DEFAULT_ALERT, via_why: bool = False) -> JobReport:
    """A report from one ``jobs`` row (a mapping; its ``job_steps`` rows under ``"steps"`` when
    known: ``find_job`` puts them there), its scores and the recorder's summary."""
    summary = summary or {}
    state = job.get("state")
    fclass = failure_class(state, job.get("cancelled_by"), job.get("uid"), job.get("exit_code")) \
        if state in FINAL_STATES else None
    elapsed = job.get("elapsed_s")
    use = efficiency.usage(job, job.get("steps") or ())
    cpus = use.cpus
    cpu_s, cpu_src = use.cpu_used_s, use.cpu_source
    if cpu_s is None and summary.get("cpu_time_s") is not None:
        cpu_s, cpu_src = summary["cpu_time_s"], "node recorder"
    peak, peak_src = use.mem_used_mb, use.mem_used_source
    for key in ("peak_cg_mem_mb", "peak_rss_mb"):
        if summary.get(key) is not None and (peak is None or summary[key] > peak):
            peak, peak_src = summary[key], "node recorder"
    req_mem = use.mem_requested_mb
    gpu = summary.get("mean_gpu_util")
    r = JobReport(
        job_id=str(job["job_id"]), cluster=str(job.get("cluster") or ""), user=job.get("user"),
        uid=job.get("uid"), name=job.get("name"), state=state, failure_class=fclass,
        exit_code=job.get("exit_code"), exit_signal=job.get("exit_signal"),
        node_list=job.get("node_list"), cpus=cpus, elapsed_s=elapsed,
        timelimit_s=job.get("timelimit_s"), time_used=_ratio(elapsed, job.get("timelimit_s")),
        cpu_time_s=cpu_s, cpu_efficiency=_ratio(cpu_s, (elapsed or 0) * (cpus or 0)),
        mem_requested_mb=req_mem, mem_peak_mb=peak, mem_efficiency=_ratio(peak, req_mem),
        gpu_utilization=(gpu / 100.0 if gpu is not None and gpu > 1.0 else gpu),
        scores=list(scores), cpu_source=cpu_src if cpu_s is not None else "",
        mem_peak_source=peak_src if peak is not None else "",
        mem_requested_source=use.mem_requested_source,
        mem_task_peak_mb=use.mem_task_peak_mb, mem_node_peak_mb=use.mem_node_peak_mb,
    )
    r.prediction = prediction_verdict(r.scores, fclass, threshold)
    r.notes = resource_notes(job, r, via_why)
    return r


# ------------------------------------------------------------------ reading the store
def store_clusters(store) -> List[str]:
    """The clusters the store holds jobs of (store.job_queries.job_clusters)."""
    return job_clusters(store)


def clusters_for(store, cluster: str) -> List[str]:
    """The values of a ``cluster`` column that belong to ``cluster``: itself, and '' (written by
    a hook that did not know its cluster) only while the store holds no other cluster."""
    if cluster and set(store_clusters(store)) <= {cluster, ""}:
        return [cluster, ""]
    return [cluster]


def find_jobs(store, job_id: str, cluster: str = "") -> List[Dict[str, Any]]:
    """The jobs rows ``job_id`` names (``nomade.jobid``: a JobID as sacct prints it, else a bare
    number's array tasks / het components, else the job whose JobIDRaw it is), each with its
    ``job_steps`` rows under ``"steps"``; an Epilog record's partial row when the store has none.
    Without a cluster, the one cluster that has them; AmbiguousJob when several have them (a
    store of several clusters never mixes them). BadJobId for text that is no job id."""
    ref = parse_job_ref(job_id)
    rows = [r for r in (job_row(store, c, ref.job_id) for c in ([cluster] if cluster else store_clusters(store)))
            if r is not None]
    if not rows and ref.number is not None:
        rows = jobs_by_number(store, cluster or None, ref.number)
    if not cluster:
        _one_cluster(job_id, [r["cluster"] for r in rows])
    if not rows:
        return [_job_from_end_records(store, ref.job_id, clusters_for(store, cluster) if cluster else None)]
    for r in rows:
        r["steps"] = job_steps(store, r["cluster"], r["job_id"])
    return rows


def find_job(store, job_id: str, cluster: str = "") -> Dict[str, Any]:
    """The one job ``job_id`` names (``find_jobs``); SeveralJobs for an array or het job as a whole."""
    rows = find_jobs(store, job_id, cluster)
    if len(rows) > 1:   # said before any access check: no job of it is named
        raise SeveralJobs(f"job {job_id} is an array or heterogeneous job, not one job",
                          hint=f"ask about one of its jobs ({job_id}_TASK or {job_id}+COMPONENT); "
                               f"`nomade report {job_id}` shows them all")
    return rows[0]


def _one_cluster(job_id: str, clusters: Sequence[str]) -> None:
    names = sorted({c or "(no name)" for c in clusters})
    if len(names) > 1:
        raise AmbiguousJob(f"job {job_id} is in the store for several clusters ({', '.join(names)})",
                           hint="say which with --cluster NAME")


def _job_from_end_records(store, job_id: str, clusters: Optional[Sequence[str]]) -> Dict[str, Any]:
    """A partial row from the newest Epilog record of the job in ``clusters`` (None: any, as long
    as only one cluster has such a record)."""
    rows = hook_records.job_records(store, job_id, "end")   # none in a store from before the hooks' migration
    task = array_task(parse_job_ref(job_id))
    if not rows and task is not None:   # an array task's record is under its raw id
        rows = hook_records.array_task_records(store, task[0], task[1], "end")
    if clusters is not None:
        rows = [r for r in rows if r["cluster"] in clusters]
    else:
        _one_cluster(job_id, [r["cluster"] for r in rows if r["cluster"]])
    if not rows:
        raise JobNotFound(f"job {job_id} is not in the store",
                          hint="run `nomade ingest sacct` (and `nomade ingest hooks`) first")
    job = job_from_end_record(json.loads(rows[0]["data"]))
    job["cluster"] = job.get("cluster") or rows[0]["cluster"]
    return job


def job_from_end_record(rec: Mapping[str, Any]) -> Dict[str, Any]:
    """A partial jobs row from an Epilog record, for jobs accounting has not delivered yet."""
    j = rec.get("job") or {}
    code, sig = j.get("exit_code"), j.get("exit_signal")
    state = None
    if code is not None:
        state = "COMPLETED" if code == 0 and not sig else "FAILED"
    return {"job_id": rec["job_id"], "cluster": j.get("cluster", ""), "user": j.get("user"),
            "uid": j.get("uid"), "state": state, "exit_code": code, "exit_signal": sig,
            "node_list": j.get("node"), "source": "epilog"}


def load_scores(store, cluster: str, job_id: str) -> List[ScoreSeen]:
    """The job's scores on its own cluster (unknown risks left out)."""
    rows = score_table.job_scores(store, job_id, clusters_for(store, cluster))
    return [ScoreSeen(r["stage"], float(r["risk"]), r["level"], r["model_version"]) for r in rows
            if r["risk"] is not None and math.isfinite(float(r["risk"]))]


def load_warnings(store, cluster: str, job_id: str) -> List[str]:
    """The recorder's early-warning events for a job (``events`` table), as one line each."""
    rows = recorder_table.job_events(store, job_id, clusters_for(store, cluster))  # none before the recorder's migration
    out = []
    for r in rows:
        try:
            detail = json.loads(r["detail"] or "{}")
        except ValueError:
            detail = {}
        msg = detail.get("message") or f"{r['kind']} on {r['node'] or 'an unknown node'}"
        out.append(f"{r['kind']}: {msg}")
    return out


def load_report(store, job_id: str, cluster: str = "", threshold: float = risk_scale.DEFAULT_ALERT,
                caller=None, admin_group: str = "") -> JobReport:
    """The report of (cluster, job_id). With a ``caller`` (``whyservice.access.Caller``), the
    why-service's access rule applies: AccessDenied unless the job is theirs or they are an admin.
    SeveralJobs when the id names an array or het job as a whole (``load_reports``)."""
    job = find_job(store, str(job_id), cluster)
    return _report_of(store, job, threshold, caller, admin_group)


def load_reports(store, job_id: str, cluster: str = "", threshold: float = risk_scale.DEFAULT_ALERT,
                 caller=None, admin_group: str = "") -> List[JobReport]:
    """The reports of every job ``job_id`` names (one, or an array's tasks in task order)."""
    return [_report_of(store, job, threshold, caller, admin_group)
            for job in find_jobs(store, str(job_id), cluster)]


def reports_summary(reports: Sequence[JobReport]) -> Dict[str, Any]:
    """An array's summary line's numbers: jobs, outcomes, and mean / min / max efficiencies."""
    out: Dict[str, Any] = {"jobs": len(reports), "outcomes": {}}
    for r in reports:
        key = r.failure_class or (r.state or "unknown").lower()
        out["outcomes"][key] = out["outcomes"].get(key, 0) + 1
    for key in ("cpu_efficiency", "mem_efficiency", "time_used"):
        vals = [getattr(r, key) for r in reports if known(getattr(r, key))]
        out[key] = ({"mean": sum(vals) / len(vals), "min": min(vals), "max": max(vals)}
                    if vals else None)
    return out


def format_reports(reports: Sequence[JobReport], job_id: str) -> str:
    """One report, or each of several followed by the summary line."""
    if len(reports) == 1:
        return format_report(reports[0])
    s = reports_summary(reports)
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(s["outcomes"].items()))

    def span(key: str) -> str:
        v = s[key]
        return "unknown" if v is None else f"mean {v['mean']:.1%} (min {v['min']:.1%}, max {v['max']:.1%})"
    line = (f"Summary of {job_id}: {s['jobs']} jobs ({outcomes}); CPU efficiency {span('cpu_efficiency')}; "
            f"memory efficiency {span('mem_efficiency')}; time used {span('time_used')}")
    return "\n\n".join([format_report(r) for r in reports] + [line])


def _report_of(store, job: Dict[str, Any], threshold: float, caller, admin_group: str) -> JobReport:
    if caller is not None:
        from .whyservice.access import check_access
        check_access(caller, job, admin_group)
    cl = job.get("cluster") or ""
    ids = job_keys(job)
    summary = next((s for s in (recorder_table.job_summary(store, cl, i) for i in ids) if s), None)
    scores = [sc for i in ids for sc in load_scores(store, cl, i)]
    report = build_report(job, scores, summary, threshold)
    report.warnings = [w for i in ids for w in load_warnings(store, cl, i)]
    report.source = job.get("source") or "store"
    return report


def job_keys(job: Mapping[str, Any]) -> List[str]:
    """The ids a job's other records may be kept under: its JobID, and its JobIDRaw when that
    differs (an array task's or het component's SLURM_JOB_ID, which the hooks and the recorder see)."""
    ids = [str(job["job_id"])]
    raw = job.get("job_id_raw")
    if raw is not None and str(raw) != ids[0]:
        ids.append(str(raw))
    return ids


def format_report(r: JobReport) -> str:
    """seff-style text. What is unknown is said in words or left out, never shown as None or ?."""
    lines = [
        f"Job ID: {r.job_id}" + (f" (cluster {r.cluster})" if r.cluster else ""),
        f"User: {printable(r.user or 'unknown')}" + (f"   Name: {printable(r.name)}" if r.name else ""),
        _state_line(r),
        _nodes_line(r),
        _time_line(r),
        _cpu_line(r),
        _mem_line(r),
    ]
    if known(r.gpu_utilization):
        lines.append(f"GPU utilization: {r.gpu_utilization:.0%}")
    lines.append(f"Prediction: {r.prediction}")
    for w in r.warnings:
        lines.append(f"Early warning: {w}")
    for note in r.notes:
        lines.append(f"Note: {note}")
    return "\n".join(line for line in lines if line)


def _state_line(r: JobReport) -> str:
    line = f"State: {r.state or 'unknown'}"
    if r.exit_code is not None:
        line += f" (exit code {r.exit_code}" + (f", signal {r.exit_signal}" if r.exit_signal else "") + ")"
    elif r.state in FINAL_STATES:
        line += " (exit code unknown)"
    return line + (f"   Outcome: {r.failure_class}" if r.failure_class else "")


def _nodes_line(r: JobReport) -> str:
    parts = ([f"Nodes: {r.node_list}"] if r.node_list else []) + ([f"Cores: {r.cpus}"] if r.cpus else [])
    return "   ".join(parts)


def _time_line(r: JobReport) -> str:
    if not known(r.elapsed_s):
        return "Wall time: unknown" + (f" (limit {human_duration(r.timelimit_s)})" if known(r.timelimit_s) else "")
    if not known(r.timelimit_s):
        return f"Wall time: {human_duration(r.elapsed_s)} (no time limit known)"
    used = f" ({r.time_used:.1%})" if known(r.time_used) else ""
    return f"Wall time: {human_duration(r.elapsed_s)} of {human_duration(r.timelimit_s)} limit{used}"


def _cpu_line(r: JobReport) -> str:
    cpu = f"{human_duration(r.cpu_time_s)} CPU time" if known(r.cpu_time_s) else ""
    if cpu and r.cpu_source and r.cpu_source != "TotalCPU":
        cpu += f" from {r.cpu_source}" + ("; TotalCPU missed killed processes"
                                          if r.cpu_source.startswith("TRESUsageIn") else "")
    if known(r.cpu_efficiency):
        return f"CPU efficiency: {r.cpu_efficiency:.1%}" + (f" ({cpu})" if cpu else "")
    return "CPU efficiency: unknown" + (f" ({cpu})" if cpu else "")


def _mem_line(r: JobReport) -> str:
    used = mem_phrase(r.mem_peak_mb, r.mem_requested_mb)
    if used and r.mem_peak_source and known(r.mem_peak_mb):
        used += f"; peak from {r.mem_peak_source}"
    eff = f"{r.mem_efficiency:.1%}" if known(r.mem_efficiency) else "unknown"
    return f"Memory efficiency: {eff}" + (f" ({used})" if used else "")
