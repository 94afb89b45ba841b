"""Epilog (slurmd, root): records the job's end as a ``end`` spool record (exit codes from the
hook environment) and removes the TaskProlog's risk note. With ``[collectors.scratch]
epilog_paths`` set, the record also says what the job's user still owns in node-local scratch
(``scratch``: files, bytes, truncated, hung; within ``epilog_budget_s``). Bounded; always exits 0
(a failing Epilog drains the node)."""

import sys
import time
from typing import Any, Dict, Mapping, Optional

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
    record: Dict[str, Any] = {"job": job, "ended_at": time.time()}
    scratch = _scratch_check(cfg, job)
    if scratch is not None:
        record["scratch"] = scratch
    write_record(cfg.spool_dir("hooks"), "end", job["job_id"], record)
    return (f"end recorded (exit {job.get('exit_code', '?')}:{job.get('exit_signal', '?')}, "
            f"node {job.get('node', '?')})" + _scratch_words(scratch))


def _scratch_check(cfg: Config, job: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The leftover-files check of the job's uid (slurmd's SLURM_JOB_UID, never the user's own
    text); None when it is off or the uid is unknown. Its budget is at most a third of
    hooks.timeout_s, so the end record is always written."""
    settings = cfg.section("collectors.scratch")
    if not settings.get("epilog_paths") or not isinstance(job.get("uid"), int):
        return None
    settings["epilog_budget_s"] = min(float(settings["epilog_budget_s"]), cfg.get("hooks.timeout_s") / 3.0)
    from ..collectors.scratch import leftover_check
    return leftover_check(settings, job["uid"], str(job["job_id"]))


def _scratch_words(scratch: Optional[Mapping[str, Any]]) -> str:
    if not scratch or not (scratch["files"] or scratch["truncated"]):
        return ""
    more = " or more" if scratch["truncated"] else ""
    hung = ", a scratch path hung" if scratch["hung"] else ""
    from ..analysis.words import human_bytes
    return f"; {scratch['files']}{more} files ({human_bytes(scratch['bytes'])}) left in scratch{hung}"


def main() -> int:
    return run_hook("epilog", epilog_body)


if __name__ == "__main__":
    sys.exit(main())
