"""Prolog (slurmd, root, on the job's first node) - why this and not PrologSlurmctld is in
docs/slurm.md. Scores the starting job, leaves the risk note for the TaskProlog on this node and
writes a ``start`` spool record. Bounded by hooks.timeout_s; always exits 0."""

import sys
import time
from typing import Any, Dict, Mapping, Optional

from ..command import run_command
from ..config import Config
from ..errors import ModelError, SlurmCommandError
from .harness import HookLog, run_hook, runtime_dir
from .jobenv import job_from_env, parse_scontrol_job
from .riskfile import write_risk
from .spool import write_record
from .startscore import StartScore, alert_threshold, load_scorer, risk_level


def start_request(cfg: Config, job: Dict[str, Any], budget_s: float) -> Dict[str, Any]:
    """The request as the start-time scorer sees it: hook environment + scontrol's view."""
    req = dict(job)
    try:
        out = run_command([cfg.get("slurm.scontrol"), "show", "job", "-o", job["job_id"]],
                          timeout=max(0.2, budget_s))
        req.update({k: v for k, v in parse_scontrol_job(out.stdout).items() if v is not None})
    except SlurmCommandError as exc:
        req["scontrol_error"] = str(exc)
    req.setdefault("start_time", time.time())
    return req


def score_note(cfg: Config, job: Dict[str, Any], score: StartScore) -> Dict[str, Any]:
    threshold = alert_threshold(cfg, score)
    return {"job_id": job["job_id"], "risk": score.risk, "level": risk_level(score.risk),
            "threshold": threshold, "alert": score.risk >= threshold, "reasons": score.reasons[:3],
            "suggestion": score.suggestion, "model_version": score.model_version}


def prolog_body(cfg: Config, environ: Mapping[str, str], log: HookLog) -> str:
    job = job_from_env(environ)
    if "job_id" not in job:
        return "no SLURM_JOB_ID in the environment; nothing to do"
    req = start_request(cfg, job, cfg.get("hooks.timeout_s") / 2)
    record: Dict[str, Any] = {"job": job, "request": req}
    note: Optional[Dict[str, Any]] = None
    try:
        score = load_scorer(cfg)(req)
        note = score_note(cfg, job, score)
        record["score"] = note
    except ModelError as exc:
        record["score_error"] = str(exc) + (f" ({exc.hint})" if exc.hint else "")
    if note is not None:
        write_risk(runtime_dir(cfg), job["job_id"], job.get("uid"), note)
    write_record(cfg.spool_dir("hooks"), "start", job["job_id"], record)
    if note is None:
        return f"start recorded, not scored: {record['score_error']}"
    return (f"start recorded, risk {note['risk']:.2f} {note['level']} "
            f"(model {note['model_version']}{', alert' if note['alert'] else ''})")


def main() -> int:
    return run_hook("prolog", prolog_body)


if __name__ == "__main__":
    sys.exit(main())
