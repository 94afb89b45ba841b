"""Epilog (slurmd, root): records the job's end as a ``end`` spool record (exit codes from the
hook environment) and removes the TaskProlog's risk note. Bounded; always exits 0 (a failing
Epilog drains the node)."""

import sys
import time
from typing import Mapping

from ..config import Config
from .harness import HookLog, run_hook, runtime_dir
from .jobenv import job_from_env
from .riskfile import remove_risk
from .spool import write_record


def epilog_body(cfg: Config, environ: Mapping[str, str], log: HookLog) -> str:
    job = job_from_env(environ)
    if "job_id" not in job:
        return "no SLURM_JOB_ID in the environment; nothing to do"
    remove_risk(runtime_dir(cfg), job["job_id"])
    write_record(cfg.spool_dir("hooks"), "end", job["job_id"], {"job": job, "ended_at": time.time()})
    return (f"end recorded (exit {job.get('exit_code', '?')}:{job.get('exit_signal', '?')}, "
            f"node {job.get('node', '?')})")


def main() -> int:
    return run_hook("epilog", epilog_body)


if __name__ == "__main__":
    sys.exit(main())
