"""The job report, in the style of seff and jobstats: CPU and memory efficiency (GPU where known),
time used vs limit, outcome and failure class, predicted risk vs what happened, and notes that
name the exact sbatch option to change.

``load_report(store, job_id)`` reads the store (jobs, job_steps, scores, job_summaries,
hook_records); ``build_report(job, scores, ...)`` is the pure part; ``format_report`` renders text."""

import json
import math
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .errors import NomadeError
from .states import FINAL_STATES, failure_class

ALERT_DEFAULT = 0.5


class JobNotFound(NomadeError):
    """The store has no record of this job."""


class AmbiguousJob(JobNotFound):
    """The job id is in the store for several clusters and no cluster was given."""


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
    mem_peak_mb: Optional[float]
    mem_efficiency: Optional[float]
    gpu_utilization: Optional[float]    # mean 0..1 when the recorder saw GPUs
    scores: List[ScoreSeen] = field(default_factory=list)
    prediction: str = ""
    notes: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)   # the node recorder's early warnings
    source: str = "store"

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
    mem = job.get("req_mem_mb")
    if mem is None:
        return None
    if job.get("req_mem_per_cpu"):
        return mem * (job.get("alloc_cpus") or job.get("req_cpus") or 1)
    return mem * (job.get("alloc_nodes") or job.get("req_nodes") or 1)


def prediction_verdict(scores: Sequence[ScoreSeen], fclass: Optional[str], threshold: float) -> str:
    if not scores:
        return "no risk was recorded for this job"
    top = max(scores, key=lambda s: s.risk)
    said = f"risk {top.risk:.0%} at {top.stage} (model {top.model_version})"
    if fclass is None:
        return f"{said}; the job has not ended yet"
    failed = fclass not in ("success", "cancelled_owner", "cancelled_other")
    if fclass in ("cancelled_owner", "cancelled_other"):
        return f"{said}; the job was cancelled, so the prediction cannot be checked"
    if top.risk >= threshold:
        return f"{said}: warned, and it {'failed (' + fclass + ')' if failed else 'succeeded (a false alarm)'}"
    return f"{said}: not warned, and it {'failed (' + fclass + ', missed)' if failed else 'succeeded'}"


def resource_notes(job: Mapping[str, Any], r: JobReport) -> List[str]:
    notes: List[str] = []
    jid = r.job_id
    limit = r.timelimit_s
    if r.failure_class == "timeout" and limit:
        notes.append(f"The job hit its time limit ({human_duration(limit)}). Ask for more: "
                     f"--time={slurm_time(limit * 1.5)}, or add checkpoints so a rerun can resume.")
    if r.failure_class == "oom":
        base = max(r.mem_requested_mb or 0, r.mem_peak_mb or 0)
        opt = "--mem-per-cpu" if job.get("req_mem_per_cpu") else "--mem"
        per = (job.get("alloc_cpus") or 1) if job.get("req_mem_per_cpu") else (job.get("alloc_nodes") or 1)
        ask = f"{opt}={mem_option(base * 1.5 / per)}" if base > 0 else f"a larger {opt}"
        used = mem_phrase(r.mem_peak_mb, r.mem_requested_mb)
        notes.append(f"The job ran out of memory{' (' + used + ')' if used else ''}. Ask for more: {ask}.")
    if r.failure_class == "failed":
        notes.append(f"{exit_phrase(r.exit_code, r.exit_signal)}: see the end of its output/error "
                     f"file; `nomade-why {jid}` lists similar jobs and how they ended.")
    if r.failure_class == "system":
        notes.append("The job ended because of the system (node failure, preemption), not its own "
                     "fault: resubmit it; --requeue lets Slurm do that for you.")
    ok = r.failure_class == "success"
    if ok and r.mem_efficiency is not None and r.mem_efficiency < 0.25 and (r.mem_requested_mb or 0) > 2048:
        per = (job.get("alloc_cpus") or 1) if job.get("req_mem_per_cpu") else (job.get("alloc_nodes") or 1)
        opt = "--mem-per-cpu" if job.get("req_mem_per_cpu") else "--mem"
        notes.append(f"Memory efficiency {r.mem_efficiency:.0%}: peak {human_mem(r.mem_peak_mb)} of "
                     f"{human_mem(r.mem_requested_mb)}. {opt}={mem_option((r.mem_peak_mb or 0) * 1.25 / per)} "
                     f"would do and frees memory for others.")
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
                 threshold: float = ALERT_DEFAULT) -> JobReport:
    """A report from one ``jobs`` row (a mapping), its scores and the recorder's summary."""
    summary = summary or {}
    state = job.get("state")
    fclass = failure_class(state, job.get("cancelled_by"), job.get("uid"), job.get("exit_code")) \
        if state in FINAL_STATES else None
    elapsed = job.get("elapsed_s")
    cpus = job.get("alloc_cpus") or job.get("req_cpus")
    cpu_s = job.get("total_cpu_s")
    if cpu_s is None:
        cpu_s = summary.get("cpu_time_s")
    peak = job.get("max_rss_mb")
    for key in ("peak_cg_mem_mb", "peak_rss_mb"):
        if summary.get(key) is not None:
            peak = max(peak or 0.0, summary[key])
    req_mem = requested_mem_mb(job)
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
        scores=list(scores),
    )
    r.prediction = prediction_verdict(r.scores, fclass, threshold)
    r.notes = resource_notes(job, r)
    return r


# ------------------------------------------------------------------ reading the store
def _row(conn, sql: str, args: Sequence[Any]) -> Optional[Dict[str, Any]]:
    try:
        row = conn.execute(sql, args).fetchone()
    except sqlite3.OperationalError as exc:  # a table an older or partial schema lacks
        if "no such table" in str(exc):
            return None
        raise
    return dict(row) if row is not None else None


def store_clusters(store) -> List[str]:
    """The clusters the store holds jobs of, walked on the (cluster, job_id) key: one indexed
    lookup per cluster, not a scan."""
    found: List[str] = []
    while True:
        row = _row(store.conn, "SELECT min(cluster) AS c FROM jobs WHERE cluster > ?",
                   (found[-1] if found else "",))
        if row is None or row["c"] is None:
            break
        found.append(row["c"])
    if _row(store.conn, "SELECT 1 AS x FROM jobs WHERE cluster = '' LIMIT 1", ()) is not None:
        found.insert(0, "")
    return found


def clusters_for(store, cluster: str) -> List[str]:
    """The values of a ``cluster`` column that belong to ``cluster``: itself, and '' (written by
    a hook that did not know its cluster) only while the store holds no other cluster."""
    if cluster and set(store_clusters(store)) <= {cluster, ""}:
        return [cluster, ""]
    return [cluster]


def find_job(store, job_id: str, cluster: str = "") -> Dict[str, Any]:
    """The jobs row for (cluster, job_id). Without a cluster, the one cluster that has the job id;
    AmbiguousJob when several have it (a store of several clusters never mixes them)."""
    if cluster:
        job = _row(store.conn, "SELECT * FROM jobs WHERE cluster = ? AND job_id = ?", (cluster, job_id))
        return job if job is not None else _job_from_end_records(store, job_id, clusters_for(store, cluster))
    rows = [r for r in (_row(store.conn, "SELECT * FROM jobs WHERE cluster = ? AND job_id = ?", (c, job_id))
                        for c in store_clusters(store)) if r is not None]
    _one_cluster(job_id, [r["cluster"] for r in rows])
    return rows[0] if rows else _job_from_end_records(store, job_id, None)


def _one_cluster(job_id: str, clusters: Sequence[str]) -> None:
    names = sorted({c or "(no name)" for c in clusters})
    if len(names) > 1:
        raise AmbiguousJob(f"job {job_id} is in the store for several clusters ({', '.join(names)})",
                           hint="say which with --cluster NAME")


def _job_from_end_records(store, job_id: str, clusters: Optional[Sequence[str]]) -> Dict[str, Any]:
    """A partial row from the newest Epilog record of the job in ``clusters`` (None: any, as long
    as only one cluster has such a record)."""
    try:
        rows = store.conn.execute("SELECT cluster, data FROM hook_records WHERE job_id = ? AND kind = 'end' "
                                  "ORDER BY written_at DESC", (job_id,)).fetchall()
    except sqlite3.OperationalError as exc:  # a store from before the hooks' migration
        if "no such table" not in str(exc):
            raise
        rows = []
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
    keys = clusters_for(store, cluster)
    rows = store.conn.execute("SELECT stage, risk, level, model_version FROM scores WHERE job_id = ? "  # noqa: S608 (placeholders)
                              f"AND cluster IN ({','.join('?' * len(keys))}) ORDER BY scored_at",
                              [job_id] + keys)
    return [ScoreSeen(r["stage"], float(r["risk"]), r["level"], r["model_version"]) for r in rows
            if r["risk"] is not None and math.isfinite(float(r["risk"]))]


def load_warnings(store, cluster: str, job_id: str) -> List[str]:
    """The recorder's early-warning events for a job (``events`` table), as one line each."""
    keys = clusters_for(store, cluster)
    try:
        rows = store.conn.execute("SELECT kind, node, created_at, detail FROM events WHERE job_id = ? "  # noqa: S608 (placeholders)
                                  f"AND cluster IN ({','.join('?' * len(keys))}) ORDER BY created_at",
                                  [job_id] + keys).fetchall()
    except sqlite3.OperationalError as exc:  # a store from before the recorder's migration
        if "no such table" in str(exc):
            return []
        raise
    out = []
    for r in rows:
        try:
            detail = json.loads(r["detail"] or "{}")
        except ValueError:
            detail = {}
        msg = detail.get("message") or f"{r['kind']} on {r['node'] or 'an unknown node'}"
        out.append(f"{r['kind']}: {msg}")
    return out


def load_report(store, job_id: str, cluster: str = "", threshold: float = ALERT_DEFAULT,
                caller=None, admin_group: str = "") -> JobReport:
    """The report of (cluster, job_id). With a ``caller`` (``whyservice.access.Caller``), the
    why-service's access rule applies: AccessDenied unless the job is theirs or they are an admin."""
    job = find_job(store, str(job_id), cluster)
    if caller is not None:
        from .whyservice.access import check_access
        check_access(caller, job, admin_group)
    cl = job.get("cluster") or ""
    summary = _row(store.conn, "SELECT * FROM job_summaries WHERE cluster = ? AND job_id = ?",
                   (cl, job["job_id"]))
    report = build_report(job, load_scores(store, cl, job["job_id"]), summary, threshold)
    report.warnings = load_warnings(store, cl, job["job_id"])
    report.source = job.get("source") or "store"
    return report


def format_report(r: JobReport) -> str:
    """seff-style text. What is unknown is said in words or left out, never shown as None or ?."""
    lines = [
        f"Job ID: {r.job_id}" + (f" (cluster {r.cluster})" if r.cluster else ""),
        f"User: {r.user or 'unknown'}" + (f"   Name: {r.name}" if r.name else ""),
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
    if known(r.cpu_efficiency):
        return f"CPU efficiency: {r.cpu_efficiency:.1%}" + (f" ({cpu})" if cpu else "")
    return "CPU efficiency: unknown" + (f" ({cpu})" if cpu else "")


def _mem_line(r: JobReport) -> str:
    used = mem_phrase(r.mem_peak_mb, r.mem_requested_mb)
    eff = f"{r.mem_efficiency:.1%}" if known(r.mem_efficiency) else "unknown"
    return f"Memory efficiency: {eff}" + (f" ({used})" if used else "")
