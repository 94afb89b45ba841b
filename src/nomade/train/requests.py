"""The Lua model's submit requests (nomade.scoring.lite_features) built from a job table, with
their outcomes, for training and evaluating the lite model."""

from typing import Any, Dict, List, Optional

import numpy as np

from ..features.jobtable import JobTable
from ..jobrecord import REQ_MEM_JOB


def lite_requests(jt: JobTable, y: np.ndarray, assumed_wait_s: Optional[float] = None) -> List[Dict[str, Any]]:
    """One request dict per job of ``jt`` (what job_submit.lua sends) plus its runtime, end time
    and label ``y``; ``assumed_wait_s``: model.assumed_wait_s (None: the default)."""
    from ..features.build import ASSUMED_WAIT_S, outcome_times

    c = jt.cols
    # end time, or submit + runtime + assumed wait (SWF without waits)
    known = outcome_times(jt, ASSUMED_WAIT_S if assumed_wait_s is None else assumed_wait_s)
    runtime = np.where(np.isnan(c["end_time"] - c["start_time"]), c["elapsed_s"],
                       c["end_time"] - c["start_time"])

    def opt(v):
        return None if v != v else float(v)
    out = []
    for i in range(len(jt)):
        out.append({"user": c["user"][i] or "", "name": c["name"][i] or "",
                    "cpus": opt(c["req_cpus"][i]), "nodes": opt(c["req_nodes"][i]),
                    "gpus": opt(c["req_gpus"][i]), "mem_mb": opt(_mem_per_node_or_cpu(c, i)),
                    "mem_per_cpu": c["req_mem_per_cpu"][i] == 1.0,
                    "timelimit_s": opt(c["timelimit_s"][i]), "submit_time": float(c["submit_time"][i]),
                    "runtime": opt(runtime[i]), "end_time": opt(known[i]),
                    "y": int(y[i])})
    return out


def _mem_per_node_or_cpu(c, i: int) -> float:
    """ReqMem as a request gives it (per node, or per CPU): a whole-job value (sacct >= 21.08,
    REQ_MEM_JOB) divided by the nodes."""
    mem = c["req_mem_mb"][i]
    if c["req_mem_per_cpu"][i] == REQ_MEM_JOB:
        nodes = c["req_nodes"][i]
        return mem / nodes if nodes == nodes and nodes > 0 else mem
    return mem
