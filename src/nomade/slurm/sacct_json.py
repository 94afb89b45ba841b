"""Reading ``sacct --json`` (Slurm 22.05, openapi ``dbv0.0.38``) into JobRecords.

Mapping notes: times are epoch seconds already (0 = unknown -> None); ``time.limit`` is minutes
and null means ``UNLIMITED``; ``required.memory`` is MiB with the per-CPU flag in bit 63 (as in
Slurm's ``MEM_PER_CPU``); a step's ``tres.requested`` block is its TRES usage *in* (``total`` =
TRESUsageInTot, ``max`` = TRESUsageInMax, whose ``mem`` is MaxRSS; ``consumed`` is usage out),
stored as the text ``sacct -P`` prints (``usage_text``) with ``tasks.count`` as NTasks; CPU time is
``time.total`` (seconds + microseconds). ``kill_request_user`` is a user name, turned
into ``cancelled_by`` (a uid) only if this machine knows the user.

The file is parsed whole (the standard library has no streaming JSON parser); use ``sacct -P``
dumps (``--file``) for very large histories.
"""

import json
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..errors import IngestError
from ..jobrecord import JobRecord, StepRecord
from ..states import FINAL_STATES, parse_state
from .sacct_fields import check_storable

_MEM_PER_CPU = 1 << 63
Bad = Tuple[str, str, str]


def load_jobs(text: str, source: str) -> List[Dict[str, Any]]:
    """The ``jobs`` list of a ``sacct --json`` document. Raises IngestError if it is not one."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise IngestError(f"{source}: not valid JSON: {exc}",
                          hint="pass the output of `sacct --json` (or use --file for sacct -P)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("jobs"), list):
        raise IngestError(f"{source}: no 'jobs' list; not sacct --json output",
                          hint="pass the output of `sacct --json`")
    return doc["jobs"]


def records(jobs: List[Dict[str, Any]], cluster: Optional[str], bad: List[Bad]) -> Iterator[JobRecord]:
    """JobRecords for ``jobs``; a job that cannot be mapped, or with a value the store cannot hold
    (an integer outside 0..2^63-1, a number too big for a float), goes to ``bad`` (location,
    reason, raw)."""
    for i, job in enumerate(jobs):
        try:
            rec = job_record(job, cluster)
            check_storable(rec)
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
            jid = job.get("job_id") if isinstance(job, dict) else None
            bad.append((f"jobs[{i}]" + (f" (job {jid})" if jid is not None else ""),
                        f"cannot read job: {type(exc).__name__}: {exc}",
                        json.dumps(job, sort_keys=True)[:100_000]))
            continue
        yield rec


def job_record(job: Dict[str, Any], cluster: Optional[str]) -> JobRecord:
    t = job.get("time") or {}
    state_text = (job.get("state") or {}).get("current") or ""
    state, by = parse_state(state_text) if state_text else (None, None)
    if state == "CANCELLED" and by is None and job.get("kill_request_user"):
        by = _uid(job["kill_request_user"])
    code, sig = _exit(job.get("exit_code"))
    dcode, dsig = _exit(job.get("derived_exit_code"))
    req = job.get("required") or {}
    mem = req.get("memory")
    per_cpu = None
    if isinstance(mem, int):
        per_cpu = 1 if mem & _MEM_PER_CPU else 0
        mem = float(mem & ~_MEM_PER_CPU)
    tres = job.get("tres") or {}
    alloc = _tres_counts(tres.get("allocated"))
    reqt = _tres_counts(tres.get("requested"))
    limit = t.get("limit")
    jid, array_job, task, het_job, het_off = _ids(job)
    steps = [_step(s) for s in job.get("steps") or []]
    rec = JobRecord(
        cluster=cluster or job.get("cluster") or "default", job_id=jid,
        job_id_raw=job.get("job_id"), array_job_id=array_job, array_task_id=task,
        het_job_id=het_job, het_offset=het_off, name=job.get("name") or None,
        user=job.get("user") or None, uid=None, grp=job.get("group") or None,
        account=job.get("account") or None, partition=job.get("partition") or None,
        qos=job.get("qos") or None, submit_time=_t(t.get("submission")),
        eligible_time=_t(t.get("eligible")), req_cpus=req.get("CPUs"),
        req_nodes=reqt.get("node"), req_mem_mb=mem, req_mem_per_cpu=per_cpu,
        timelimit_s=None if limit is None else int(limit) * 60,
        timelimit_raw="UNLIMITED" if limit is None else str(limit),
        req_gpus=reqt.get("gres/gpu"), req_tres=_tres_text(reqt), work_dir=job.get("working_directory") or None,
        submit_line=job.get("submit_line") or None, state=state,
        state_raw=state_text or None, cancelled_by=by, is_final=1 if state in FINAL_STATES else 0,
        exit_code=code, exit_signal=sig, derived_exit_code=dcode, derived_exit_signal=dsig,
        start_time=_t(t.get("start")), end_time=_t(t.get("end")), elapsed_s=t.get("elapsed"),
        alloc_cpus=alloc.get("cpu"), alloc_nodes=job.get("allocation_nodes"),
        node_list=job.get("nodes") or None, alloc_tres=_tres_text(alloc),
        total_cpu_s=_cpu(t.get("total")), steps=steps)
    rss = [s.max_rss_mb for s in steps if s.max_rss_mb is not None]
    rec.max_rss_mb = max(rss) if rss else None
    step_cpu = [s.total_cpu_s for s in steps if s.total_cpu_s is not None]
    if not rec.total_cpu_s and step_cpu:
        rec.total_cpu_s = sum(step_cpu)
    return rec


def _ids(job: Dict[str, Any]) -> Tuple[str, Optional[int], Optional[str], Optional[int], Optional[int]]:
    jid = int(job["job_id"])
    arr = job.get("array") or {}
    het = job.get("het") or {}
    if arr.get("job_id"):
        if arr.get("task_id") is not None:
            task = str(arr["task_id"])
        elif arr.get("task"):
            task = f"[{arr['task']}]"
        else:
            task = None
        if task is not None:
            return f"{arr['job_id']}_{task}", int(arr["job_id"]), task, None, None
    if het.get("job_id") and het.get("job_offset") is not None:
        return f"{het['job_id']}+{het['job_offset']}", None, None, int(het["job_id"]), int(het["job_offset"])
    return str(jid), None, None, None, None


def _step(s: Dict[str, Any]) -> StepRecord:
    t = s.get("time") or {}
    st = s.get("state") or ""
    state = parse_state(st)[0] if st else None
    code, sig = _exit(s.get("exit_code"))
    tres = s.get("tres") or {}
    alloc = _tres_counts(tres.get("allocated"))
    usage_in = tres.get("requested") or {}
    rss = None
    for item in usage_in.get("max") or []:
        if item.get("type") == "mem" and item.get("count") is not None:
            rss = item["count"] / 1048576.0
    ntasks = (s.get("tasks") or {}).get("count")
    return StepRecord(
        step_id=str((s.get("step") or {}).get("id")), name=(s.get("step") or {}).get("name") or None,
        state=state, state_raw=st or None, exit_code=code, exit_signal=sig,
        start_time=_t(t.get("start")), end_time=_t(t.get("end")), elapsed_s=t.get("elapsed"),
        alloc_cpus=alloc.get("cpu"), alloc_tres=_tres_text(alloc),
        node_list=(s.get("nodes") or {}).get("range") or None, max_rss_mb=rss,
        total_cpu_s=_cpu(t.get("total")),
        ntasks=int(ntasks) if isinstance(ntasks, int) and ntasks > 0 else None,
        tres_usage_in_tot=usage_text(usage_in.get("total")),
        tres_usage_in_max=usage_text(usage_in.get("max")))


def usage_text(items: Any) -> Optional[str]:
    """A step's TRES usage list as ``sacct -P`` prints TRESUsageInTot/InMax (checked on 22.05
    captures): keys sorted, ``cpu`` milliseconds as whole-second ``[D-]HH:MM:SS``, ``mem``/``vmem``
    bytes divided by 1024 while exact (``10804K``, a bare number under 1 KiB), others as counted.
    Counts outside 0..2^63-1 (Slurm's NO_VAL64/INFINITE64) and names holding ``,`` or ``=`` are
    left out; None when nothing is left."""
    out: Dict[str, str] = {}
    for it in items or []:
        if not isinstance(it, dict):
            continue
        count, kind = it.get("count"), it.get("type")
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count < 1 << 63 \
                or not isinstance(kind, str) or not kind:
            continue
        key = kind + (f"/{it['name']}" if it.get("name") else "")
        if "," in key or "=" in key:
            continue
        if key == "cpu":
            out[key] = _hms(count // 1000)
        elif key in ("mem", "vmem"):
            out[key] = _exact_units(count)
        else:
            out[key] = str(count)
    return ",".join(f"{k}={out[k]}" for k in sorted(out)) or None


def _hms(secs: int) -> str:
    days, rest = divmod(secs, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{text}" if days else text


def _exact_units(count: int) -> str:
    unit = 0
    while count >= 1024 and count % 1024 == 0 and unit < 5:
        count //= 1024
        unit += 1
    return f"{count}{('', 'K', 'M', 'G', 'T', 'P')[unit]}"


def _t(v: Any) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) and v > 0 else None


def _cpu(v: Any) -> Optional[float]:
    if not isinstance(v, dict):
        return None
    return float(v.get("seconds") or 0) + float(v.get("microseconds") or 0) / 1e6


def _exit(v: Any) -> Tuple[Optional[int], Optional[int]]:
    if not isinstance(v, dict) or not v.get("status"):
        return None, None
    sig = (v.get("signal") or {}).get("signal_id")
    return int(v.get("return_code") or 0), int(sig or 0)


def _tres_counts(items: Any) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for it in items or []:
        if it.get("count") is None:
            continue
        key = it["type"] + (f"/{it['name']}" if it.get("name") else "")
        out[key] = int(it["count"])
    return out


def _tres_text(counts: Dict[str, int]) -> Optional[str]:
    if not counts:
        return None
    return ",".join(f"{k}={v}M" if k == "mem" else f"{k}={v}" for k, v in sorted(counts.items()))


def _uid(user: str) -> Optional[int]:
    try:
        import pwd
        return pwd.getpwnam(user).pw_uid
    except (KeyError, ImportError):
        return None
