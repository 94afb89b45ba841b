"""The normalized job record every data path (sacct, sacct --json, SWF traces, hook spool)
produces, and that the store persists; ``record_rows`` turns one into the rows the store writes."""

import hashlib
import operator
from dataclasses import dataclass, field, fields
from typing import List, Optional, Tuple


# JobRecord.req_mem_per_cpu: what req_mem_mb is per (nomade.efficiency.requested_mem)
REQ_MEM_NODE = 0    # per node: ReqMem '4000Mn' (Slurm < 21.08), --mem in a request or sacct --json
REQ_MEM_CPU = 1     # per CPU: ReqMem '2000Mc' (Slurm < 21.08), --mem-per-cpu, SWF
REQ_MEM_JOB = 2     # the whole job: ReqMem without a suffix (Slurm >= 21.08 prints the job's total)


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
    ntasks: Optional[int] = None
    tres_usage_in_tot: Optional[str] = None   # TRESUsageInTot as printed (summed over tasks)
    tres_usage_in_max: Optional[str] = None   # TRESUsageInMax as printed (the largest task)


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
    req_mem_per_cpu: Optional[int] = None    # REQ_MEM_NODE, REQ_MEM_CPU or REQ_MEM_JOB
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


_job_values = operator.attrgetter(*JOB_COLUMNS)  # JobRecord -> tuple of its column values
_step_values = operator.attrgetter(*STEP_COLUMNS)


def hash_values(values: tuple) -> str:
    """The record hash of a JobRecord's values (steps last, as a list of tuples): the text of their
    repr (astuple's deep copies made the SWF import of 121k jobs 5x slower)."""
    return hashlib.blake2b(repr(values).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def nulls_as(row: tuple, null: object) -> tuple:
    """``row`` with its Nones as ``null`` (what the store binds for NULL; None: unchanged)."""
    if null is None:
        return row
    return tuple(null if v is None else v for v in row)


def record_rows(rec: JobRecord, source: str, record_hash: Optional[str], now: float,
                null: object = None) -> Tuple[tuple, List[tuple]]:
    """``rec`` as a jobs row (JOB_COLUMNS + source, record_hash, ingested_at, updated_at) and its
    job_steps rows ((cluster, job_id) + STEP_COLUMNS), unknown values as ``null`` (the store's
    ``store.jobs.row_null``). ``record_hash`` None: the hash of the record's values (sources
    without raw rows: SWF, sacct --json)."""
    values = _job_values(rec)
    steps = [_step_values(st) for st in rec.steps]
    h = hash_values(values + (steps,)) if record_hash is None else record_hash
    key = (rec.cluster, rec.job_id)
    return nulls_as(values + (source, h, now, now), null), [nulls_as(key + st, null) for st in steps]
