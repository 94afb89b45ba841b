"""``nomade predict``: score the jobs pending and running now, with the current bundle.

The queue comes from one ``squeue -h -t PENDING,RUNNING -o "%A %U %u %T"`` (job id, uid, user
name and state at fixed positions, nothing users wrote), restricted by Slurm to the caller's uid
unless the caller may see everyone's jobs; each job's request is then read like nomade-why reads
a job accounting has not delivered (``live_job.SlurmJobs.job``: the part of ``scontrol show job``
users cannot write, with Slurm's identity). Scores come from ``why_ondemand.OnDemand``: the
submit stage (and the start stage once running) and the verdict sbatch gave. Nothing is stored."""

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from .command import run_command
from .errors import NomadeError, SlurmCommandError
from .states import parse_state

_LINE = re.compile(r"^([0-9]{1,12}) ([0-9]{1,10}) ([A-Za-z0-9._][A-Za-z0-9._-]{0,63}\$?) ([A-Z_]{2,32})$")


@dataclass
class QueuedJob:
    job_id: str
    uid: int
    user: str
    state: str


def parse_squeue_queue(text: str) -> List[QueuedJob]:
    """The jobs of ``squeue -h -o "%A %U %u %T"`` output, one per distinct job id (an array's
    records share none: %A is each task's own id). A line not in Slurm's fixed form is an error
    naming its number, not a guess."""
    out: Dict[str, QueuedJob] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _LINE.match(line.strip())
        if m is None or int(m.group(2)) >= 2 ** 32:
            raise NomadeError(f"squeue line {n} is not in the expected form (job id, uid, user, state)")
        state, _ = parse_state(m.group(4))
        out.setdefault(m.group(1), QueuedJob(m.group(1), int(m.group(2)), m.group(3), state))
    return list(out.values())


@dataclass
class Prediction:
    job_id: str
    user: str
    state: str
    risk: Optional[float] = None
    level: Optional[str] = None
    stage: str = ""
    warned: Optional[bool] = None         # what sbatch did (the Lua verdict)
    reasons: List[str] = field(default_factory=list)
    suggestion: Optional[str] = None
    model_version: str = ""
    error: str = ""

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def queued_jobs(cfg, uid: Optional[int], timeout: float) -> List[QueuedJob]:
    """Pending and running jobs (of ``uid`` only, unless None)."""
    argv = [cfg.get("slurm.squeue"), "-h", "-t", "PENDING,RUNNING", "-o", "%A %U %u %T"]
    if uid is not None:
        argv += ["-u", str(int(uid))]
    try:
        out = run_command(argv, timeout=timeout)
    except SlurmCommandError as exc:
        raise NomadeError(f"cannot list the queue: {exc}", hint="is Slurm reachable from this host?") from None
    return parse_squeue_queue(out.stdout)


def predict(cfg, store, jobs: List[QueuedJob], ondemand) -> List[Prediction]:
    """Score each of ``jobs`` now (``ondemand``: a why_ondemand.OnDemand with a SlurmJobs)."""
    from .why import parse_reasons
    out = []
    for q in jobs:
        p = Prediction(q.job_id, q.user, q.state)
        try:
            owner = {"job_id": q.job_id, "cluster": cfg.get("cluster") or "", "user": q.user, "uid": q.uid,
                     "state": q.state, "source": "slurm"}
            job = ondemand.live.job(owner)
            scores = ondemand.scores(store, job, ["submit", "start"])
        except NomadeError as exc:
            p.error = str(exc)
            out.append(p)
            continue
        stage = "start" if "start" in scores else "submit"
        s = scores.get(stage)
        if s is not None:
            p.stage, p.risk, p.level, p.model_version = stage, s["risk"], s["level"], s["model_version"]
            p.reasons = [c.text or c.feature for c in parse_reasons(s.get("reasons"))
                         if c.direction == "raises risk"][:3]
        v = scores.get("sbatch")
        if v is not None:
            p.warned, p.suggestion = bool(v["warned"]), v.get("suggestion")
            if s is None:
                p.stage, p.risk, p.level, p.model_version = "sbatch", v["risk"], v["level"], v["model_version"]
                p.reasons = list(v.get("reasons") or [])
        if s is None and v is None:
            p.error = "no model could score it"
        out.append(p)
    return out
