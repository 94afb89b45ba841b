"""The job as Slurm's hook environments describe it, and as `scontrol show job -o` adds to it.

Prolog/Epilog (slurmd, root) get SLURM_JOB_ID, SLURM_JOB_USER, SLURM_JOB_UID, SLURM_JOB_GID,
SLURM_JOB_ACCOUNT, SLURM_JOB_PARTITION, SLURM_JOB_WORK_DIR, SLURM_JOB_CPUS_PER_NODE,
SLURMD_NODENAME; the Epilog also SLURM_JOB_EXIT_CODE, SLURM_JOB_EXIT_CODE2, SLURM_JOB_DERIVED_EC.
No SLURM_JOB_NAME: the name and request come from scontrol when wanted."""

import re
import time
from typing import Any, Dict, Mapping, Optional

_ENV_FIELDS = {
    "SLURM_JOB_ID": "job_id", "SLURM_JOB_USER": "user", "SLURM_JOB_ACCOUNT": "account",
    "SLURM_JOB_PARTITION": "partition", "SLURM_JOB_WORK_DIR": "work_dir",
    "SLURMD_NODENAME": "node", "SLURM_CLUSTER_NAME": "cluster", "SLURM_JOB_NAME": "name",
    "SLURM_JOB_CPUS_PER_NODE": "cpus_per_node",
}
_ENV_INTS = {"SLURM_JOB_UID": "uid", "SLURM_JOB_GID": "gid", "SLURM_JOB_EXIT_CODE": "exit_status",
             "SLURM_JOB_EXIT_CODE2": None, "SLURM_JOB_DERIVED_EC": "derived_exit_status"}
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


def parse_scontrol_job(text: str) -> Dict[str, Any]:
    """`scontrol show job -o JOBID` -> the request fields the start-time scorer uses."""
    kv = dict(_TOKEN.findall(text))
    out: Dict[str, Any] = {}
    if "JobName" in kv:
        out["name"] = kv["JobName"]
    if "UserId" in kv:
        m = re.match(r"^([^(]*)\((\d+)\)$", kv["UserId"])
        if m:
            out["user"], out["uid"] = m.group(1), int(m.group(2))
    if "GroupId" in kv:
        m = re.match(r"^([^(]*)\((\d+)\)$", kv["GroupId"])
        if m:
            out["group"] = m.group(1)
    for key, name in (("Account", "account"), ("Partition", "partition"), ("QOS", "qos"),
                      ("NodeList", "node_list")):
        if kv.get(key) and kv[key] != "(null)":
            out[name] = kv[key]
    out["timelimit_s"] = parse_duration(kv.get("TimeLimit", ""))
    for key, name in (("SubmitTime", "submit_time"), ("StartTime", "start_time")):
        out[name] = _epoch(kv.get(key, ""))
    out["cpus"] = _int(kv.get("NumCPUs"))
    out["nodes"] = _int(kv.get("NumNodes", "").split("-")[0])
    if "MinMemoryCPU" in kv:
        out["mem_mb"], out["mem_per_cpu"] = parse_mem_mb(kv["MinMemoryCPU"]), True
    elif "MinMemoryNode" in kv:
        out["mem_mb"], out["mem_per_cpu"] = parse_mem_mb(kv["MinMemoryNode"]), False
    gpus = re.search(r"gres/gpu(?::[^=,]+)?=(\d+)", kv.get("TRES", ""))
    out["gpus"] = int(gpus.group(1)) if gpus else 0
    if kv.get("WorkDir"):
        out["work_dir"] = kv["WorkDir"]
    return out
