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
from .jobenv import ScontrolOutputError, job_from_env, parse_scontrol_job, quiet_comment
from .riskfile import write_risk
from .spool import write_record
from .startscore import StartScore, alert_threshold, load_scorer, risk_level


def start_request(cfg: Config, job: Dict[str, Any], budget_s: float) -> Dict[str, Any]:
    """The request as the start-time scorer sees it: slurmd's environment (identity) + the part of
    scontrol's record users cannot write. A request that could not be read completely carries
    ``incomplete`` (the reason) and is not scored."""
    req = dict(job)
    req.setdefault("start_time", time.time())
    if job.get("uid") is None or not job.get("user"):
        req["incomplete"] = "no SLURM_JOB_UID/SLURM_JOB_USER in the Prolog environment"
        return req
    try:
        out = run_command([cfg.get("slurm.scontrol"), "show", "job", "-o", job["job_id"]],
                          timeout=max(0.2, budget_s))
        parsed = parse_scontrol_job(out.stdout, job["job_id"], job["user"], job["uid"])
    except SlurmCommandError as exc:
        req["scontrol_error"] = str(exc)
        req["incomplete"] = f"scontrol failed: {exc}"
        return req
    except ScontrolOutputError as exc:
        req["incomplete"] = str(exc)
        return req
    req.update({k: v for k, v in parsed.items() if v is not None and k not in ("user", "uid")})
    if quiet_comment(out.stdout):
        req["quiet"] = True   # --comment=nomade:quiet silences the start line as it does sbatch's
    return req


def score_note(cfg: Config, job: Dict[str, Any], score: StartScore) -> Dict[str, Any]:
    threshold = alert_threshold(cfg, score)
    return {"job_id": job["job_id"], "risk": score.risk, "level": risk_level(score.risk),
            "threshold": threshold, "alert": score.risk >= threshold, "reasons": score.reasons[:3],
            "suggestion": score.suggestion, "model_version": score.model_version,
            "quiet": bool(job.get("quiet"))}


def prolog_body(cfg: Config, environ: Mapping[str, str], log: HookLog) -> str:
    job = job_from_env(environ)
    if "job_id" not in job:
        return "no SLURM_JOB_ID in the environment; nothing to do"
    req = start_request(cfg, job, cfg.get("hooks.timeout_s") / 2)
    record: Dict[str, Any] = {"job": job, "request": req}
    note: Optional[Dict[str, Any]] = None
    if req.get("incomplete"):
        record["score_error"] = f"request incomplete: {req['incomplete']}"
    else:
        try:
            note = score_note(cfg, dict(job, quiet=req.get("quiet")), load_scorer(cfg)(req))
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
