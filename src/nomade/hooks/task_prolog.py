"""TaskProlog (runs as the job's user before each task): when the Prolog's start-time risk for
this job is at or above the alert threshold, prints one ``print nomade: ...`` line, which Slurm
writes into the job's output. Only the task with SLURM_PROCID 0 prints; nothing is printed for a
job submitted with ``--comment=nomade:quiet`` (the Prolog's note says so) or with NOMADE_QUIET set
in its environment, as job_submit.lua does at sbatch. Always exits 0."""

import os
import sys
from typing import Any, Dict, List, Mapping, Optional

from .. import risk_scale
from ..config import Config
from ..features.words import distinct, warning_reason
from .harness import HookLog, run_hook, runtime_dir
from .jobenv import quiet_env
from .riskfile import read_risk


def _reasons(items: List[Any]) -> List[str]:
    """The note's reasons in words, one per family, without those that point nowhere."""
    feats = [str(r.get("feature")) if isinstance(r, dict) else str(r) for r in items]
    out: List[str] = []
    for i in distinct(feats):
        r = items[i]
        text = warning_reason(feats[i], r.get("value")) if isinstance(r, dict) else str(r)
        if text and text not in out:
            out.append(text)
    return out


def risk_line(note: Dict[str, Any], job_id: str) -> Optional[str]:
    if not note.get("alert") or note.get("quiet"):
        return None
    reasons = "; ".join(_reasons(list(note.get("reasons") or [])[:3]))
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
    if quiet_env(environ):
        return "NOMADE_QUIET set; silent"
    note = read_risk(runtime_dir(cfg), job_id)
    if note is None:
        return "no start-time risk for this job"
    if note.get("quiet"):
        return "--comment=nomade:quiet; silent"
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
