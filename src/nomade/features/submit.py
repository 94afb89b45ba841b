"""Submit-time request features: what `sbatch` tells the scheduler about a job, nothing more.
The request is the dict of the Lua contract (docs/architecture.md): user, name, partition,
account, qos, cpus, nodes, gpus, mem_mb, mem_per_cpu, timelimit_s, submit_time (+ optional
group). Runtime-safe."""

import math
import re
import time
from typing import Dict, List, Optional

from ..jobrecord import REQ_MEM_CPU, REQ_MEM_JOB

NAN = float("nan")
_SHELL_NAMES = frozenset({"bash", "sh", "zsh", "tcsh", "csh", "interactive", "srun", "salloc",
                          "jupyter", "sys/dashboard"})
_DIGIT = re.compile(r"\d")


def _num(v) -> float:
    if v is None:
        return NAN
    f = float(v)
    return NAN if f != f else f


def _log1p(v: float) -> float:
    return math.log1p(v) if v == v and v >= 0 else NAN


class Vocabulary:
    """Integer codes for categorical values, in order of first submission. A value first seen
    at the job being scored has no code yet (NaN): codes only cover what was known before."""

    FIELDS = ("partition", "qos", "account", "group", "user", "name")

    def __init__(self, tables: Optional[Dict[str, Dict[str, int]]] = None):
        self.tables: Dict[str, Dict[str, int]] = {f: {} for f in self.FIELDS}
        if tables:
            for f, t in tables.items():
                self.tables[f] = dict(t)

    def code(self, field: str, value) -> float:
        if value is None or value == "":
            return NAN
        c = self.tables[field].get(str(value))
        return NAN if c is None else float(c)

    def register(self, req: Dict[str, object]) -> None:
        for f in self.FIELDS:
            v = req.get(f)
            if v is not None and v != "":
                t = self.tables[f]
                t.setdefault(str(v), len(t))


def mem_per_node_and_cpu(req: Dict[str, object]):
    mem, cpus, nodes = _num(req.get("mem_mb")), _num(req.get("cpus")), _num(req.get("nodes"))
    if mem != mem or mem <= 0:
        return NAN, NAN
    if req.get("mem_per_cpu"):
        per_cpu = mem
        per_node = mem * cpus / nodes if cpus == cpus and nodes == nodes and nodes > 0 else NAN
    elif req.get("mem_per_job"):    # sacct >= 21.08: ReqMem is the whole job's (nomade.efficiency)
        n = nodes if nodes == nodes and nodes > 0 else 1.0
        per_node = mem / n
        per_cpu = mem / cpus if cpus == cpus and cpus > 0 else NAN
    else:
        per_node = mem
        per_cpu = mem * nodes / cpus if cpus == cpus and cpus > 0 and nodes == nodes else NAN
    return per_node, per_cpu


def request_features(req: Dict[str, object], vocab: Vocabulary) -> List[float]:
    """Values in schema.REQUEST_NAMES order."""
    cpus, nodes, gpus = _num(req.get("cpus")), _num(req.get("nodes")), _num(req.get("gpus"))
    per_node, per_cpu = mem_per_node_and_cpu(req)
    tl = _num(req.get("timelimit_s"))
    name = req.get("name") or ""
    t = _num(req.get("submit_time"))
    if t == t:
        tm = time.gmtime(t)
        hour, wday = float(tm.tm_hour), float(tm.tm_wday)
    else:
        hour = wday = NAN
    return [
        cpus, nodes, cpus / nodes if nodes == nodes and nodes > 0 else NAN, gpus,
        _log1p(per_node), _log1p(per_cpu), 1.0 if per_node != per_node and per_cpu != per_cpu else 0.0,
        _log1p(tl), 1.0 if tl != tl else 0.0,
        vocab.code("partition", req.get("partition")), vocab.code("qos", req.get("qos")),
        vocab.code("account", req.get("account")), vocab.code("group", req.get("group")),
        vocab.code("user", req.get("user")), vocab.code("name", name or None),
        float(len(name)), float(len(_DIGIT.findall(name))),
        1.0 if name.lower() in _SHELL_NAMES else 0.0,
        hour, wday,
    ]


def request_from_table(jt, i: int) -> Dict[str, object]:
    """The submit-time request of row ``i`` of a JobTable (only request columns are read)."""
    c = jt.cols
    mpc = c["req_mem_per_cpu"][i]
    return {
        "user": c["user"][i], "name": c["name"][i], "partition": c["partition"][i],
        "account": c["account"][i], "qos": c["qos"][i], "group": c["grp"][i],
        "cpus": c["req_cpus"][i], "nodes": c["req_nodes"][i], "gpus": c["req_gpus"][i],
        "mem_mb": c["req_mem_mb"][i], "mem_per_cpu": bool(mpc == REQ_MEM_CPU),
        "mem_per_job": bool(mpc == REQ_MEM_JOB),
        "timelimit_s": c["timelimit_s"][i], "submit_time": c["submit_time"][i],
    }
