"""How much memory and CPU a job asked for and used: one definition for the report, nomade-why's
suggestions, the history features and the Epilog mail (docs/features.md, "Efficiency").

Inputs are a ``jobs`` row and its ``job_steps`` rows as dicts (``store.job_queries.job_row`` /
``job_steps``); every number says which sacct field it came from.

Memory used (MiB)
  step      TRESUsageInTot ``mem=`` (summed over the step's tasks); without it MaxRSS x NTasks (an
            upper bound: MaxRSS is the largest single task); without NTasks, MaxRSS.
  job       the largest step (steps of a job usually run one after another); a job without step
            rows: its MaxRSS.
  per task  the largest TRESUsageInMax ``mem=`` (else MaxRSS) over the steps.
  per node  per-task peak x the step's tasks on one node (ceil(NTasks / the step's nodes, from
            its AllocTRES ``node=``, else the job's NNodes)); the floor of any ``--mem`` suggestion.

Memory requested (whole job, MiB), by what the row holds: ReqTRES ``mem=`` (the whole job's, every
version since 19.05) > ReqMem read by its form (below) > AllocTRES ``mem=`` (what was allocated):

  | ReqMem form | Slurm      | req_mem_per_cpu | whole job              |
  |-------------|------------|-----------------|------------------------|
  | ``4000Mn``  | <= 21.07   | 0 (per node)    | x nodes                |
  | ``2000Mc``  | <= 21.07   | 1 (per CPU)     | x CPUs                 |
  | ``4000M``   | >= 21.08   | 2 (whole job)   | as is (never x nodes)  |

CPU used (s): per step the largest of TotalCPU, TRESUsageInTot ``cpu=`` and TRESUsageInMax ``cpu=``
(TotalCPU, and on 22.05 TRESUsageInTot, miss the CPU of processes killed with the step: timeouts,
cancellations, OOM kills; the busiest task's TRESUsageInMax keeps it), summed over steps; the job
row's TotalCPU when there are no step rows. ``cpu_source`` says which field won.
CPU efficiency = CPU used / (Elapsed x AllocCPUS).
"""

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

from .jobrecord import REQ_MEM_CPU, REQ_MEM_JOB
from .slurm.sacct_fields import parse_duration

# TRESUsageInTot cpu= is whole seconds: it replaces TotalCPU only when larger by more than this
CPU_TRES_SLACK_S = 1.0

_MEM_UNITS = {"K": 1.0 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 ** 2, "P": 1024.0 ** 3}


@dataclass
class Usage:
    mem_used_mb: Optional[float] = None
    mem_used_source: str = ""            # 'TRESUsageInTot', 'MaxRSS x NTasks', 'MaxRSS', ''
    mem_task_peak_mb: Optional[float] = None
    mem_node_peak_mb: Optional[float] = None   # per-task peak x tasks on a node
    mem_requested_mb: Optional[float] = None
    mem_requested_source: str = ""       # 'AllocTRES', 'ReqTRES', 'ReqMem per node', ...
    mem_efficiency: Optional[float] = None
    cpu_used_s: Optional[float] = None
    cpu_source: str = ""                 # 'TotalCPU', 'TRESUsageInTot', 'TRESUsageInMax', ''
    cpu_efficiency: Optional[float] = None
    cpus: Optional[int] = None
    nodes: Optional[int] = None

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def tres_items(text: Optional[str]) -> Dict[str, str]:
    """``cpu=00:00:08,mem=1262400K,node=1`` -> {'cpu': '00:00:08', 'mem': '1262400K', 'node': '1'}."""
    out: Dict[str, str] = {}
    for part in (text or "").split(","):
        key, sep, val = part.partition("=")
        if sep and key.strip():
            out[key.strip()] = val.strip()
    return out


def tres_mem_mb(text: Optional[str]) -> Optional[float]:
    """The ``mem=`` of a TRES string in MiB (``1262400K``, ``2G``; a bare number is bytes, as
    sacct prints values under 1 KiB); None when absent or unreadable."""
    val = tres_items(text).get("mem")
    if not val:
        return None
    unit = val[-1].upper()
    try:
        num = float(val[:-1]) * _MEM_UNITS[unit] if unit in _MEM_UNITS else float(val) / 2.0 ** 20
    except ValueError:
        return None
    return num if 0 <= num < math.inf else None


def tres_cpu_s(text: Optional[str]) -> Optional[float]:
    """The ``cpu=`` of a TRES usage string in seconds (``00:01:05``, ``1-00:00:00``); None when
    absent or unreadable."""
    val = tres_items(text).get("cpu")
    if not val:
        return None
    try:
        return parse_duration(val)
    except ValueError:
        return None


def tres_count(text: Optional[str], key: str) -> Optional[int]:
    val = tres_items(text).get(key)
    try:
        return int(val) if val else None
    except ValueError:
        return None


# ------------------------------------------------------------------ memory used
def step_mem_used(step: Mapping[str, Any]) -> Tuple[Optional[float], str]:
    """(MiB, source) one step used, summed over its tasks."""
    tot = tres_mem_mb(step.get("tres_usage_in_tot"))
    if tot is not None:
        return tot, "TRESUsageInTot"
    rss, ntasks = step.get("max_rss_mb"), step.get("ntasks")
    if rss is None:
        return None, ""
    if ntasks and ntasks > 1:
        return rss * ntasks, "MaxRSS x NTasks"
    return rss, "MaxRSS"


def step_task_peak(step: Mapping[str, Any]) -> Optional[float]:
    """The largest single task's memory (TRESUsageInMax mem=, else MaxRSS), MiB."""
    peak = tres_mem_mb(step.get("tres_usage_in_max"))
    return peak if peak is not None else step.get("max_rss_mb")


def step_tasks_per_node(step: Mapping[str, Any], job_nodes_: int = 1) -> int:
    """ceil(NTasks / the step's nodes: its AllocTRES ``node=``, else the job's) (1 when unknown)."""
    ntasks = step.get("ntasks") or 1
    nodes = tres_count(step.get("alloc_tres"), "node") or job_nodes_ or 1
    return max(1, int(math.ceil(ntasks / nodes)))


def tasks_per_node(job: Mapping[str, Any], steps: Sequence[Mapping[str, Any]]) -> int:
    """The most tasks any step ran on one node (1 without steps)."""
    return max([step_tasks_per_node(st, job_nodes(job)) for st in steps] or [1])


def mem_used(job: Mapping[str, Any], steps: Sequence[Mapping[str, Any]]) -> Tuple[Optional[float], str]:
    """(MiB, source): the job's largest step; its MaxRSS when no step says."""
    best: Tuple[Optional[float], str] = (None, "")
    for st in steps:
        mb, src = step_mem_used(st)
        if mb is not None and (best[0] is None or mb > best[0]):
            best = (mb, src)
    if best[0] is None and job.get("max_rss_mb") is not None:
        return job["max_rss_mb"], "MaxRSS"
    return best


def task_and_node_peak(job: Mapping[str, Any],
                       steps: Sequence[Mapping[str, Any]]) -> Tuple[Optional[float], Optional[float]]:
    """(largest task, largest per-task peak x tasks on a node) over the steps, MiB."""
    task = node = None
    for st in steps:
        peak = step_task_peak(st)
        if peak is None:
            continue
        task = peak if task is None else max(task, peak)
        need = peak * step_tasks_per_node(st, job_nodes(job))
        node = need if node is None else max(node, need)
    if task is None and job.get("max_rss_mb") is not None:
        task = node = job["max_rss_mb"]
    return task, node


# ------------------------------------------------------------------ memory requested
def requested_mem(job: Mapping[str, Any]) -> Tuple[Optional[float], str]:
    """(MiB for the whole job, source): see the table in the module docstring."""
    mb = tres_mem_mb(job.get("req_tres"))
    if mb is not None and mb > 0:
        return mb, "ReqTRES"
    mem = job.get("req_mem_mb")
    if mem is None:
        mb = tres_mem_mb(job.get("alloc_tres"))
        return (mb, "AllocTRES") if mb is not None and mb > 0 else (None, "")
    kind = job.get("req_mem_per_cpu")
    if kind == REQ_MEM_JOB:
        return mem, "ReqMem (whole job)"
    if kind == REQ_MEM_CPU:
        return mem * (job.get("alloc_cpus") or job.get("req_cpus") or 1), "ReqMem per CPU x CPUs"
    return mem * job_nodes(job), "ReqMem per node x nodes"


def job_nodes(job: Mapping[str, Any]) -> int:
    return int(job.get("alloc_nodes") or job.get("req_nodes") or tres_count(job.get("alloc_tres"), "node") or 1)


def mem_option(job: Mapping[str, Any]) -> Tuple[str, int]:
    """(sbatch option, divisor) to turn a whole-job amount into the job's own request form:
    ('--mem-per-cpu', CPUs) for a per-CPU request, else ('--mem', nodes)."""
    if job.get("req_mem_per_cpu") == REQ_MEM_CPU:
        return "--mem-per-cpu", int(job.get("alloc_cpus") or job.get("req_cpus") or 1)
    return "--mem", job_nodes(job)


# ------------------------------------------------------------------ CPU
def step_cpu(step: Mapping[str, Any]) -> Tuple[Optional[float], str]:
    """(CPU s, source) of one step: TotalCPU, unless TRESUsageInTot ``cpu=`` or TRESUsageInMax
    ``cpu=`` (the busiest task's, a lower bound of the step's) is larger by more than
    CPU_TRES_SLACK_S: TotalCPU and, on Slurm 22.05, TRESUsageInTot miss the CPU of processes
    killed with the step (time limit, scancel, OOM kill), TRESUsageInMax keeps it."""
    best, src = step.get("total_cpu_s"), "TotalCPU"
    for col, name in (("tres_usage_in_tot", "TRESUsageInTot"), ("tres_usage_in_max", "TRESUsageInMax")):
        tr = tres_cpu_s(step.get(col))
        if tr is not None and (best is None or tr > best + CPU_TRES_SLACK_S):
            best, src = tr, name
    return best, src if best is not None else ""


def cpu_used(job: Mapping[str, Any], steps: Sequence[Mapping[str, Any]]) -> Tuple[Optional[float], str]:
    """(CPU seconds, source): ``step_cpu`` summed over the steps (the source: the TRES field when
    one replaced TotalCPU in some step); the job row's TotalCPU without step rows."""
    total, tres_src = None, ""
    for st in steps:
        val, src = step_cpu(st)
        if val is not None:
            total = val if total is None else total + val
            if src != "TotalCPU":
                tres_src = src
    own = job.get("total_cpu_s")
    if total is None or (own is not None and not tres_src and own > total):
        return own, "TotalCPU" if own is not None else ""
    return total, tres_src or "TotalCPU"


# ------------------------------------------------------------------ all of it
def usage(job: Mapping[str, Any], steps: Iterable[Mapping[str, Any]] = ()) -> Usage:
    steps = [s for s in steps]
    u = Usage()
    u.mem_used_mb, u.mem_used_source = mem_used(job, steps)
    u.mem_task_peak_mb, u.mem_node_peak_mb = task_and_node_peak(job, steps)
    u.mem_requested_mb, u.mem_requested_source = requested_mem(job)
    u.mem_efficiency = ratio(u.mem_used_mb, u.mem_requested_mb)
    u.cpu_used_s, u.cpu_source = cpu_used(job, steps)
    u.cpus = job.get("alloc_cpus") or job.get("req_cpus")
    u.nodes = job_nodes(job)
    u.cpu_efficiency = ratio(u.cpu_used_s, (job.get("elapsed_s") or 0) * (u.cpus or 0))
    return u


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or not math.isfinite(a) or not math.isfinite(b) or b <= 0:
        return None
    return a / b
