"""The normalized job record every data path (sacct, sacct --json, SWF traces, hook spool)
produces, and that the store persists."""

from dataclasses import dataclass, field, fields
from typing import List, Optional


@dataclass
class StepRecord:
    step_id: str
    name: Optional[str] = None
    state: Optional[str] = None
    state_raw: Optional[str] = None
    exit_code: Optional[int] = None
    exit_signal: Optional[int] = None
    start_time: Optional[float] = None
    end_time: Optional[float] = None
    elapsed_s: Optional[int] = None
    alloc_cpus: Optional[int] = None
    alloc_tres: Optional[str] = None
    node_list: Optional[str] = None
    max_rss_mb: Optional[float] = None
    total_cpu_s: Optional[float] = None


@dataclass
class JobRecord:
    cluster: str
    job_id: str
    job_id_raw: Optional[int] = None
    array_job_id: Optional[int] = None
    array_task_id: Optional[str] = None
    het_job_id: Optional[int] = None
    het_offset: Optional[int] = None
    name: Optional[str] = None
    user: Optional[str] = None
    uid: Optional[int] = None
    grp: Optional[str] = None
    account: Optional[str] = None
    partition: Optional[str] = None
    qos: Optional[str] = None
    submit_time: Optional[float] = None
    eligible_time: Optional[float] = None
    req_cpus: Optional[int] = None
    req_nodes: Optional[int] = None
    req_mem_mb: Optional[float] = None
    req_mem_per_cpu: Optional[int] = None
    timelimit_s: Optional[int] = None
    timelimit_raw: Optional[str] = None
    req_gpus: Optional[int] = None
    req_tres: Optional[str] = None
    work_dir: Optional[str] = None
    submit_line: Optional[str] = None
    state: Optional[str] = None
    state_raw: Optional[str] = None
    cancelled_by: Optional[int] = None
    is_final: int = 0
    exit_code: Optional[int] = None
    exit_signal: Optional[int] = None
    derived_exit_code: Optional[int] = None
    derived_exit_signal: Optional[int] = None
    start_time: Optional[float] = None
    end_time: Optional[float] = None
    elapsed_s: Optional[int] = None
    alloc_cpus: Optional[int] = None
    alloc_nodes: Optional[int] = None
    node_list: Optional[str] = None
    alloc_tres: Optional[str] = None
    total_cpu_s: Optional[float] = None
    max_rss_mb: Optional[float] = None
    steps: List[StepRecord] = field(default_factory=list)


# column order of the jobs table's data columns (bookkeeping columns are added by the store)
JOB_COLUMNS = tuple(f.name for f in fields(JobRecord) if f.name != "steps")
STEP_COLUMNS = tuple(f.name for f in fields(StepRecord))
