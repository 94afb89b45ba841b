"""TaskProlog (runs as the job's user before each task): when the Prolog's start-time risk for
this job is at or above the alert threshold, prints one ``print nomade: ...`` line, which Slurm
writes into the job's output. Only the task with SLURM_PROCID 0 prints. Always exits 0."""

import os
import sys
from typing import Any, Dict, Mapping, Optional

from .. import risk_scale
from ..config import Config
from ..features.words import reason_text
from .harness import HookLog, run_hook, runtime_dir
from .riskfile import read_risk


def _reason_text(r: Any) -> str:
    if isinstance(r, dict):
        return reason_text(str(r.get("feature")), r.get("value"))
    return str(r)


def risk_line(note: Dict[str, Any], job_id: str) -> Optional[str]:
    if not note.get("alert"):
        return None
    reasons = "; ".join(_reason_text(r) for r in (note.get("reasons") or [])[:3])
    risk = float(note["risk"])
    line = f"nomade: {risk_scale.level(risk)} failure risk ({round(risk * 100)}%) at start"
    if reasons:
        line += f": {reasons}"
    if note.get("suggestion"):
        line += f". Suggestion: {note['suggestion']}"
    return line + f". Details: nomade-why {job_id}"


def task_prolog_body(cfg: Config, environ: Mapping[str, str], log: HookLog) -> str:
    job_id = environ.get("SLURM_JOB_ID")
    if not job_id:
        return "no SLURM_JOB_ID; nothing to do"
    if environ.get("SLURM_PROCID", "0") != "0":
        return "not task 0; silent"
    note = read_risk(runtime_dir(cfg), job_id)
    if note is None:
        return "no start-time risk for this job"
    line = risk_line(note, job_id)
    if line is None:
        return f"risk {float(note.get('risk', 0)):.2f} below threshold; silent"
    sys.stdout.write("print " + line.replace("\n", " ") + "\n")
    sys.stdout.flush()
    return "printed risk line"


def main() -> int:
    if os.environ.get("SLURM_PROCID", "0") != "0":
        return 0          # only task 0 prints: the others load no configuration at all
    return run_hook("task-prolog", task_prolog_body)


if __name__ == "__main__":
    sys.exit(main())
