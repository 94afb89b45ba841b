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


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or b <= 0:
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
        notes.append(f"The job ran out of memory (peak {human_mem(r.mem_peak_mb)} of "
                     f"{human_mem(r.mem_requested_mb)}). Ask for more: {opt}={mem_option(base * 1.5 / per)}.")
    if r.failure_class == "failed":
        notes.append(f"The job's program exited with code {r.exit_code}"
                     f"{' (signal ' + str(r.exit_signal) + ')' if r.exit_signal else ''}: see the end of "
                     f"its output/error file; `nomade-why {jid}` lists similar jobs and how they ended.")
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


def find_job(store, job_id: str, cluster: str = "") -> Dict[str, Any]:
    """The jobs row for ``job_id`` (the newest submission when no cluster is given)."""
    if cluster:
        job = _row(store.conn, "SELECT * FROM jobs WHERE cluster = ? AND job_id = ?", (cluster, job_id))
    else:
        job = _row(store.conn, "SELECT * FROM jobs WHERE job_id = ? ORDER BY submit_time DESC LIMIT 1",
                   (job_id,))
    if job is None:
        end = _row(store.conn, "SELECT * FROM hook_records WHERE job_id = ? AND kind = 'end' "
                   "ORDER BY written_at DESC LIMIT 1", (job_id,))
        if end is None:
            raise JobNotFound(f"job {job_id} is not in the store",
                              hint="run `nomade ingest sacct` (and `nomade ingest hooks`) first")
        job = job_from_end_record(json.loads(end["data"]))
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
    rows = store.conn.execute("SELECT stage, risk, level, model_version FROM scores WHERE job_id = ? "
                              "AND (cluster = ? OR cluster = '') ORDER BY scored_at", (job_id, cluster))
    return [ScoreSeen(r["stage"], float(r["risk"]), r["level"], r["model_version"]) for r in rows]


def load_warnings(store, cluster: str, job_id: str) -> List[str]:
    """The recorder's early-warning events for a job (``events`` table), as one line each."""
    try:
        rows = store.conn.execute("SELECT kind, node, created_at, detail FROM events WHERE job_id = ? "
                                  "AND (cluster = ? OR cluster = '') ORDER BY created_at",
                                  (job_id, cluster)).fetchall()
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
        msg = detail.get("message") or f"{r['kind']} on {r['node']}"
        out.append(f"{r['kind']}: {msg}")
    return out


def load_report(store, job_id: str, cluster: str = "", threshold: float = ALERT_DEFAULT) -> JobReport:
    job = find_job(store, str(job_id), cluster)
    summary = _row(store.conn, "SELECT * FROM job_summaries WHERE cluster = ? AND job_id = ?",
                   (job.get("cluster") or "", job["job_id"]))
    report = build_report(job, load_scores(store, job.get("cluster") or "", job["job_id"]),
                          summary, threshold)
    report.warnings = load_warnings(store, job.get("cluster") or "", job["job_id"])
    report.source = job.get("source") or "store"
    return report


def format_report(r: JobReport) -> str:
    """seff-style text."""
    def pct(x: Optional[float]) -> str:
        return "?" if x is None else f"{x:.1%}"
    lines = [
        f"Job ID: {r.job_id}" + (f" (cluster {r.cluster})" if r.cluster else ""),
        f"User: {r.user or '?'}" + (f"   Name: {r.name}" if r.name else ""),
        f"State: {r.state or '?'}" + (f" (exit code {r.exit_code}"
                                       + (f", signal {r.exit_signal}" if r.exit_signal else "") + ")"
                                       if r.exit_code is not None else "")
        + (f"   Outcome: {r.failure_class}" if r.failure_class else ""),
        f"Nodes: {r.node_list or '?'}   Cores: {r.cpus or '?'}",
        f"Wall time: {human_duration(r.elapsed_s)} of {human_duration(r.timelimit_s)} limit "
        f"({pct(r.time_used)})",
        f"CPU efficiency: {pct(r.cpu_efficiency)} ({human_duration(r.cpu_time_s)} CPU time)",
        f"Memory efficiency: {pct(r.mem_efficiency)} (peak {human_mem(r.mem_peak_mb)} of "
        f"{human_mem(r.mem_requested_mb)})",
    ]
    if r.gpu_utilization is not None:
        lines.append(f"GPU utilization: {r.gpu_utilization:.0%}")
    lines.append(f"Prediction: {r.prediction}")
    for w in r.warnings:
        lines.append(f"Early warning: {w}")
    for note in r.notes:
        lines.append(f"Note: {note}")
    return "\n".join(lines)
