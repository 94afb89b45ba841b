"""The job as Slurm's hook environments describe it, and as `scontrol show job -o` adds to it.

Prolog/Epilog (slurmd, root) get SLURM_JOB_ID, SLURM_JOB_USER, SLURM_JOB_UID, SLURM_JOB_GID,
SLURM_JOB_ACCOUNT, SLURM_JOB_PARTITION, SLURM_JOB_WORK_DIR, SLURM_JOB_CPUS_PER_NODE,
SLURMD_NODENAME; the Epilog also SLURM_JOB_EXIT_CODE, SLURM_JOB_EXIT_CODE2, SLURM_JOB_DERIVED_EC.
No SLURM_JOB_NAME: the name and request come from scontrol when wanted. SLURM_JOB_ID of an array
task is its own raw id; slurmd 22.05 gives its Prolog/Epilog no SLURM_ARRAY_JOB_ID/TASK_ID (they are
read when present), so the Prolog takes the array ids from scontrol's ``ArrayJobId=``/``ArrayTaskId=``."""

import re
import time
from typing import Any, Dict, Mapping, Optional, Tuple

_ENV_FIELDS = {
    "SLURM_JOB_ID": "job_id", "SLURM_JOB_USER": "user", "SLURM_JOB_ACCOUNT": "account",
    "SLURM_JOB_PARTITION": "partition", "SLURM_JOB_WORK_DIR": "work_dir",
    "SLURMD_NODENAME": "node", "SLURM_CLUSTER_NAME": "cluster", "SLURM_JOB_NAME": "name",
    "SLURM_JOB_CPUS_PER_NODE": "cpus_per_node",
}
_ENV_INTS = {"SLURM_JOB_UID": "uid", "SLURM_JOB_GID": "gid", "SLURM_JOB_EXIT_CODE": "exit_status",
             "SLURM_JOB_EXIT_CODE2": None, "SLURM_JOB_DERIVED_EC": "derived_exit_status",
             "SLURM_ARRAY_JOB_ID": "array_job_id", "SLURM_ARRAY_TASK_ID": "array_task_id"}
_TOKEN = re.compile(r"(\w+)=(\S*)")
_MEM = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?)$")
_MEM_FACTOR = {"": 1.0, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 ** 2, "P": 1024.0 ** 3}


def _int(v: Optional[str]) -> Optional[int]:
    try:
        return int(v) if v not in (None, "") else None
    except ValueError:
        return None


def job_from_env(environ: Mapping[str, str]) -> Dict[str, Any]:
    """The fields a hook's environment carries (missing ones absent)."""
    job: Dict[str, Any] = {}
    for var, key in _ENV_FIELDS.items():
        if environ.get(var):
            job[key] = environ[var]
    for var, key in _ENV_INTS.items():
        value = _int(environ.get(var))
        if value is not None and key:
            job[key] = value
    code2 = environ.get("SLURM_JOB_EXIT_CODE2")  # "exit:signal", e.g. "0:0", "1:0", "0:9"
    if code2 and ":" in code2:
        rc, sig = code2.split(":", 1)
        job["exit_code"], job["exit_signal"] = _int(rc), _int(sig)
    return job


def parse_duration(text: str) -> Optional[int]:
    """Slurm time '[D-]HH:MM:SS' / 'MM:SS' -> seconds; None for UNLIMITED and the like."""
    m = re.match(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$", text or "")
    if not m:
        return None
    d, h, mi, s = (int(x) if x else 0 for x in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def parse_mem_mb(text: str) -> Optional[float]:
    m = _MEM.match(text or "")
    return float(m.group(1)) * _MEM_FACTOR[m.group(2)] if m else None


def _epoch(text: str) -> Optional[float]:
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


QUIET_TAG = "nomade:quiet"   # job_submit.lua's QUIET_TAG: in --comment, no message for the job
QUIET_ENV = "NOMADE_QUIET"   # job_submit.lua's QUIET_ENV: in the job's environment, the same


def quiet_comment(text: str) -> bool:
    """True when `scontrol show job -o` output carries the quiet tag in the job's comment (the
    user's own text from ``Comment=`` on: it can only silence the user's own job)."""
    at = (text or "").find(" Comment=")
    return at >= 0 and QUIET_TAG in text[at:]


def quiet_env(environ: Mapping[str, str]) -> bool:
    """True when the job's environment asks for silence, as job_submit.lua reads it."""
    return environ.get(QUIET_ENV, "") not in ("", "0")


class ScontrolOutputError(ValueError):
    """`scontrol show job -o` output that cannot be read without trusting the user's own text."""


# Keys whose values users write (free text) and that follow the request fields in scontrol's
# fixed order: the trusted part of a record ends at the first of them.
_USER_TEXT_KEYS = ("Features", "Prefer", "Licenses", "Network", "Command", "WorkDir", "Comment",
                   "AdminComment", "SystemComment", "StdErr", "StdIn", "StdOut", "Container",
                   "MailUser", "Power")


def _trusted_region(text: str, job_id: str, user: str, uid: int) -> Tuple[str, str]:
    """(job name, the key=value text between UserId= and the first user-text key).

    The job name comes before UserId= and Comment/WorkDir/StdOut/Command after the request
    fields; both are the user's and may hold ``UserId=root(0)`` or a whole fake record. The real
    UserId is known from slurmd's environment, so the record is read only when that identity
    occurs exactly once; anything else is refused (the job is then not scored)."""
    if not text.startswith(f"JobId={job_id} ") or " JobName=" not in text:
        raise ScontrolOutputError(f"scontrol output is not the record of job {job_id}")
    anchor = f" UserId={user}({uid}) GroupId="
    first = text.find(anchor)
    if first < 0:
        raise ScontrolOutputError(f"scontrol output does not name the job's owner {user}({uid})")
    if text.find(anchor, first + 1) >= 0:
        raise ScontrolOutputError("scontrol output is ambiguous: the job's name or comment repeats "
                                  "its UserId= field")
    name = text[text.index(" JobName=") + len(" JobName="):first]
    end = len(text)
    for key in _USER_TEXT_KEYS:
        at = text.find(f" {key}=", first)
        if 0 <= at < end:
            end = at
    newline = text.find("\n", first)
    if 0 <= newline < end:
        end = newline
    return name, text[first:end]


def _array_ids(text: str) -> Dict[str, int]:
    """``ArrayJobId``/``ArrayTaskId`` of an array task: scontrol prints them between ``JobId=`` and
    ``JobName=``, before any text a user wrote (``JobId=391 ArrayJobId=390 ArrayTaskId=1 JobName=``)."""
    head = text[:text.index(" JobName=")]
    out: Dict[str, int] = {}
    for key, field in (("ArrayJobId", "array_job_id"), ("ArrayTaskId", "array_task_id")):
        m = re.search(r" %s=(\d{1,19})(?= |$)" % key, head)
        if m and int(m.group(1)) < 2 ** 63:
            out[field] = int(m.group(1))
    return out if len(out) == 2 else {}


def parse_scontrol_job(text: str, job_id: str, user: str, uid: int) -> Dict[str, Any]:
    """`scontrol show job -o JOBID` -> the request fields the start-time scorer uses.

    Identity (user, uid) is slurmd's, passed in from the hook environment; only the part of the
    record that users cannot write is parsed (first occurrence of each key). Raises
    ScontrolOutputError when that part cannot be told apart from the user's text."""
    name, region = _trusted_region(text, job_id, user, uid)
    kv: Dict[str, str] = {}
    for key, value in _TOKEN.findall(region):
        kv.setdefault(key, value)
    out: Dict[str, Any] = {"name": name, "user": user, "uid": uid, **_array_ids(text)}
    m = re.match(r"^([^(]*)\((\d+)\)$", kv.get("GroupId", ""))
    if m:
        out["group"] = m.group(1)
    for key, field in (("Account", "account"), ("Partition", "partition"), ("QOS", "qos"),
                       ("NodeList", "node_list")):
        if kv.get(key) and kv[key] != "(null)":
            out[field] = kv[key]
    if "TimeLimit" in kv:
        out["timelimit_s"] = parse_duration(kv["TimeLimit"])
    for key, field in (("SubmitTime", "submit_time"), ("StartTime", "start_time")):
        out[field] = _epoch(kv.get(key, ""))
    out["cpus"] = _int(kv.get("NumCPUs"))
    out["nodes"] = _int(kv.get("NumNodes", "").split("-")[0])
    if "MinMemoryCPU" in kv:
        out["mem_mb"], out["mem_per_cpu"] = parse_mem_mb(kv["MinMemoryCPU"]), True
    elif "MinMemoryNode" in kv:
        out["mem_mb"], out["mem_per_cpu"] = parse_mem_mb(kv["MinMemoryNode"]), False
    gpus = re.search(r"gres/gpu(?::[^=,]+)?=(\d+)", kv.get("TRES", ""))
    out["gpus"] = int(gpus.group(1)) if gpus else 0
    missing = [f for f in REQUIRED_REQUEST if out.get(f) is None and not
               (f == "timelimit_s" and "TimeLimit" in kv)]
    if missing:
        raise ScontrolOutputError(f"scontrol output lacks {', '.join(missing)}")
    return out


# what the start-time scorer must know; a request without one of them is not scored
REQUIRED_REQUEST = ("partition", "cpus", "nodes", "submit_time", "timelimit_s")
