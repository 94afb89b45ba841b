"""A job accounting has not delivered yet, read from Slurm itself (for nomade-why): first its
owner and state from ``squeue -h -j JOBID -o "%U %u %T"`` (uid, user name and state printed by
Slurm at fixed positions, no user text before them), then - once the caller may see the job -
its request from the part of ``scontrol show job -o JOBID`` users cannot write, read with that
identity (``hooks.jobenv.parse_scontrol_job``). Both through ``nomade.command.run_command``."""

import re
from typing import Any, Dict, Optional, Tuple

from .command import run_command
from .errors import NomadeError, SlurmCommandError
from .hooks.jobenv import ScontrolOutputError, parse_scontrol_job
from .report import JobNotFound
from .states import parse_state

LIVE_TIMEOUT_S = 4.0          # per Slurm command; the why-service answers within its deadline
_JOB_ID = re.compile(r"^[0-9]{1,12}$")
_OWNER = re.compile(r"^([0-9]{1,10}) ([A-Za-z0-9._][A-Za-z0-9._-]{0,63}\$?) ([A-Z_]{2,32})$")
_NOT_FOUND_HINT = ("check the job id; a job that ended a while ago is known once "
                   "`nomade ingest sacct` has run")


_WAIT = re.compile(r"^(N/A|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}) ([A-Za-z][A-Za-z0-9_]{0,63})"
                   r"(?:\(([A-Za-z0-9_.,:@\[\] -]{0,120})\))?$")

# what a pending reason means for the user and what would let the job start sooner
PENDING_ADVICE = {
    "Priority": "jobs of higher priority are ahead of it; a shorter --time lets the backfill "
                "scheduler start it in a gap sooner",
    "Resources": "it waits for the resources it asked for to become free; fewer nodes or cores, "
                 "or a shorter --time, can let it start in a gap sooner",
    "Dependency": "it waits for the jobs it depends on (--dependency) to finish",
    "DependencyNeverSatisfied": "its dependency can never be satisfied: cancel it and resubmit",
    "JobHeldUser": "you held it: `scontrol release JOBID` lets it run",
    "JobHeldAdmin": "an administrator held it: ask them why",
    "BeginTime": "it was submitted with --begin and waits for that time",
    "QOSMaxJobsPerUserLimit": "you have as many jobs running as your QOS allows: it starts when one ends",
    "QOSMaxCpuPerUserLimit": "your running jobs use all the CPUs your QOS allows: it starts when they end",
    "AssocGrpCPULimit": "your account's group CPU limit is reached: it starts when the group's jobs end",
    "AssocMaxJobsLimit": "your association's job limit is reached: it starts when one of your jobs ends",
    "ReqNodeNotAvail": "a node it needs is unavailable (down, drained or reserved)",
    "PartitionTimeLimit": "its --time is above the partition's limit: it will never start; resubmit "
                          "with a shorter --time",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows: resubmit with fewer",
    "Reservation": "it waits for its reservation to start",
}


def parse_squeue_start(text: str) -> Optional[Dict[str, Any]]:
    """{reason, nodes, expected_start (epoch s or None), advice} from ``squeue -h --start -o "%S %r"``
    for one pending job (Slurm's fixed fields); None for no line or any other form."""
    from .slurm.sacct_fields import parse_time
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) != 1:
        return None
    m = _WAIT.match(lines[0])
    if m is None:
        return None
    start = None if m.group(1) == "N/A" else parse_time(m.group(1))
    reason = m.group(2)
    return {"reason": reason, "nodes": m.group(3) or "", "expected_start": start,
            "advice": PENDING_ADVICE.get(reason, "")}


def parse_squeue_owner(text: str, job_id: str) -> Tuple[int, str, str]:
    """(uid, user, state) from ``squeue -h -o "%U %u %T"`` output. Every line (an array job has
    one per record) must name the same owner; the state is the first line's. JobNotFound for no
    line; NomadeError for anything that is not Slurm's fixed format."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise JobNotFound(f"job {job_id} is not in the store and Slurm does not know it",
                          hint=_NOT_FOUND_HINT)
    found = []
    for ln in lines:
        m = _OWNER.match(ln)
        if m is None or int(m.group(1)) >= 2 ** 32:
            raise NomadeError(f"squeue's answer for job {job_id} is not in the expected form")
        found.append((int(m.group(1)), m.group(2), m.group(3)))
    if len({(uid, user) for uid, user, _ in found}) != 1:
        raise NomadeError(f"squeue names several owners for job {job_id}")
    return found[0]


class SlurmJobs:
    """Reads one job from Slurm: ``owner(job_id)`` for the privacy check, then ``job(owner)``."""

    def __init__(self, squeue: str = "squeue", scontrol: str = "scontrol",
                 timeout: float = LIVE_TIMEOUT_S, cluster: str = ""):
        self.squeue, self.scontrol = squeue, scontrol
        self.timeout, self.cluster = timeout, cluster

    @classmethod
    def from_config(cls, cfg) -> "SlurmJobs":
        return cls(cfg.get("slurm.squeue"), cfg.get("slurm.scontrol"),
                   min(LIVE_TIMEOUT_S, float(cfg.get("slurm.command_timeout_s"))), cfg.get("cluster") or "")

    def owner(self, job_id: str, cluster: str = "") -> Dict[str, Any]:
        """{job_id, cluster, user, uid, state, source='slurm'}; JobNotFound when Slurm does not
        know the job (or cannot be asked)."""
        job_id = str(job_id).strip()
        if not _JOB_ID.match(job_id):   # also keeps "-x" and array ids out of the argument list
            raise JobNotFound(f"job {job_id} is not in the store", hint=_NOT_FOUND_HINT)
        job_id = str(int(job_id))       # as scontrol prints it: JobId=43, not 043
        try:
            out = run_command([self.squeue, "-h", "-j", job_id, "-o", "%U %u %T"], timeout=self.timeout)
        except SlurmCommandError as exc:   # squeue exits 1 for an id it does not know
            why = "Slurm does not know it" if exc.rc is not None else f"Slurm could not be asked ({exc})"
            raise JobNotFound(f"job {job_id} is not in the store and {why}", hint=_NOT_FOUND_HINT) from None
        uid, user, state_text = parse_squeue_owner(out.stdout, job_id)
        state, _ = parse_state(state_text)
        return {"job_id": job_id, "cluster": cluster or self.cluster, "user": user, "uid": uid,
                "state": state, "source": "slurm"}

    def waiting(self, job_id: str) -> Optional[Dict[str, Any]]:
        """Why a pending job waits and when Slurm expects it to start (``squeue --start``); None
        when Slurm cannot say. Call only after the caller was checked against the job's owner."""
        job_id = str(job_id).strip()
        if not _JOB_ID.match(job_id):
            return None
        try:
            out = run_command([self.squeue, "-h", "-j", str(int(job_id)), "--start", "-o", "%S %r"],
                              timeout=self.timeout)
        except SlurmCommandError:
            return None
        return parse_squeue_start(out.stdout)

    def job(self, owner: Dict[str, Any]) -> Dict[str, Any]:
        """The owner row completed from scontrol: a jobs-like row plus ``request`` (the Lua
        ``req`` contract). Call only after the caller was checked against ``owner``."""
        job_id = owner["job_id"]
        try:
            out = run_command([self.scontrol, "show", "job", "-o", job_id], timeout=self.timeout)
            req = parse_scontrol_job(out.stdout, job_id, owner["user"], owner["uid"])
        except SlurmCommandError as exc:
            raise NomadeError(f"cannot read job {job_id} from Slurm: {exc}",
                              hint="try again in a minute") from None
        except ScontrolOutputError as exc:
            raise NomadeError(f"cannot read job {job_id} from Slurm safely: {exc}") from None
        if owner.get("state") == "PENDING":
            req["start_time"] = None   # scontrol's StartTime of a pending job is an estimate
        job = dict(owner)
        job.update({"name": req.get("name"), "partition": req.get("partition"),
                    "account": req.get("account"), "qos": req.get("qos"), "req_cpus": req.get("cpus"),
                    "req_nodes": req.get("nodes"), "req_gpus": req.get("gpus"),
                    "req_mem_mb": req.get("mem_mb"), "req_mem_per_cpu": int(bool(req.get("mem_per_cpu"))),
                    "timelimit_s": req.get("timelimit_s"), "submit_time": req.get("submit_time"),
                    "start_time": req.get("start_time"), "node_list": req.get("node_list"),
                    "request": req})
        return job


def live_owner(live: Optional[SlurmJobs], job_id: str, cluster: str, exc: JobNotFound) -> Dict[str, Any]:
    """The Slurm owner row of a job the store does not hold; re-raise ``exc`` without ``live``."""
    if live is None:
        raise exc
    return live.owner(job_id, cluster)
