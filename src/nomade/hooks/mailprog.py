"""MailProg wrapper: Slurm runs ``MailProg -s SUBJECT RECIPIENT`` with the body on stdin. We
append the nomade job report (from the store when the job is ingested, else a short note) to
end-of-job mail and hand it to an SMTP server (mail.smtp_host) or sendmail. Nothing nomade-side
may lose the mail: if the report cannot be built, the original mail still goes out. Exit 0."""

import os
import re
import smtplib
import socket
import sys
from email.message import EmailMessage
from typing import List, Mapping, Optional, Sequence, Tuple

from .. import risk_scale
from ..command import run_command
from ..config import Config, default_data_dir, load_config
from ..errors import NomadeError, SlurmCommandError, StoreError
from ..settings import SETTINGS
from .harness import HookLog, HookTimeout, time_bound

_JOB_ID = re.compile(r"Job_id=(\d+(?:_\d+)?)")
_ENDED = re.compile(r"\b(Ended|Failed|Timeout|Time limit reached|OOM|Out of memory|Requeued)\b", re.I)
SEND_TIMEOUT_S = 20.0


def parse_args(argv: Sequence[str]) -> Tuple[str, List[str]]:
    """`-s SUBJECT RCPT...` (mail(1) style) -> (subject, recipients)."""
    subject, rcpts, i = "", [], 0
    args = list(argv)
    while i < len(args):
        if args[i] == "-s" and i + 1 < len(args):
            subject = args[i + 1]
            i += 2
        elif args[i].startswith("-"):
            i += 1
        else:
            rcpts.append(args[i])
            i += 1
    return subject, rcpts


def default_config() -> Config:
    values = {s.name: s.default for s in SETTINGS}
    values["data_dir"] = default_data_dir()
    return Config(values=values, sources={s.name: "default" for s in SETTINGS})


# the tail of Slurm's subject, after the (user-written) job name: "..., Run time 01:00:02, TIMEOUT, ExitCode 0"
_SUBJECT_TAIL = re.compile(r", Run time [0-9:-]+, ([A-Z_]{2,32}), ExitCode \[?(\d{1,3})\]?\s*$")


def subject_state(subject: str) -> Optional[str]:
    """The job's final state as slurmctld wrote it at the end of the mail subject (anchored at
    the end: a job name cannot put one there), None when the subject has none."""
    m = _SUBJECT_TAIL.search(subject)
    if m is None:
        return None
    from ..states import FINAL_STATES, parse_state
    try:
        state, _ = parse_state(m.group(1))
    except ValueError:
        return None
    return state if state in FINAL_STATES else None


def report_text(cfg: Config, job_id: str, slurm_state: Optional[str] = None) -> str:
    """The report for the mail: from the store when the job's accounting is there and final;
    else built now from what exists at job end (``report_at_end``); a note when neither works."""
    from ..jobid import BadJobId
    from ..report import JobNotFound, format_reports, load_reports
    from ..store.db import open_store, store_location
    try:
        with open_store(store_location(cfg), busy_timeout_ms=500, migrate=False, readonly=True) as store:
            reports = load_reports(store, job_id, cfg.get("cluster"), risk_scale.current_threshold(cfg))
        if all(r.state is not None and r.failure_class is not None for r in reports):
            return format_reports(reports, job_id)
    except BadJobId:
        return ""
    except (JobNotFound, StoreError):
        pass
    return report_at_end(cfg, job_id, slurm_state)


def report_at_end(cfg: Config, job_id: str, slurm_state: Optional[str] = None) -> str:
    """The report from what exists when the job ends: this one job's accounting (one `sacct -j`
    through the subprocess door, bounded by half of hooks.timeout_s) and its hook records in the
    spool, loaded into a private scratch store that is deleted afterwards. What is missing says
    so; the full report comes later (`nomade report JOBID`, through the why-service for users)."""
    import io
    import shutil
    import tempfile
    from pathlib import Path

    from ..ingest.hook_spool import load_job_records
    from ..ingest.sacct import ingest_text, live_delimiter, run_sacct
    from ..report import JobNotFound, format_reports, load_reports
    from ..store.db import open_store
    later = f"Run `nomade report {job_id}` in a few minutes for the full report."
    cluster = cfg.get("cluster") or ""
    scratch = Path(tempfile.mkdtemp(prefix="nomade-mail-"))   # 0700
    try:
        with open_store(scratch / "job.db", busy_timeout_ms=500) as store:
            missing = ""
            delimiter = live_delimiter()
            try:
                out, fields = run_sacct(cfg.get("slurm.sacct"), 0.0, max(0.2, cfg.get("hooks.timeout_s") / 2),
                                        delimiter, job_id=job_id)
                if out.strip():
                    ingest_text(store, io.StringIO(out, newline="\n"), qsource="mailprog", fields=fields,
                                delimiter=delimiter, cluster=cluster or None)
                else:
                    missing = "accounting not yet available"
            except (NomadeError, SlurmCommandError) as exc:
                missing = f"accounting not yet available ({str(exc).splitlines()[0][:160]})"
            load_job_records(store, cfg.spool_dir("hooks"), job_id, cluster)
            if missing and slurm_state:   # the Epilog's exit code cannot tell a timeout; slurmctld's subject can
                _state_from_subject(store, job_id, cluster, slurm_state)
            try:
                reports = load_reports(store, job_id, cluster, risk_scale.current_threshold(cfg))
            except JobNotFound:
                return f"The nomade report for job {job_id} is not ready yet (its accounting has not been loaded). {later}"
            text = format_reports(reports, job_id)
            if missing:
                return text + f"\n({missing}: the fields that need it are unknown. {later})"
            return text + (f"\n(Built when the job ended. `nomade report {job_id}` later adds what "
                           "nomade learns afterwards, such as similar past jobs.)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _state_from_subject(store, job_id: str, cluster: str, state: str) -> None:
    """Store the job as its Epilog record saw it (identity from slurmd) with slurmctld's final
    state, so the report's outcome is the real one while accounting is unavailable."""
    from ..jobrecord import JobRecord
    from ..report import JobNotFound, find_jobs
    from ..store.jobs import upsert_jobs
    try:
        rows = find_jobs(store, job_id, cluster)
    except (JobNotFound, NomadeError):
        return
    if len(rows) != 1 or rows[0].get("source") != "epilog":
        return
    j = rows[0]
    upsert_jobs(store, [JobRecord(cluster=j.get("cluster") or cluster, job_id=str(j["job_id"]), user=j.get("user"),
                                  uid=j.get("uid"), state=state, exit_code=j.get("exit_code"),
                                  exit_signal=j.get("exit_signal"), node_list=j.get("node_list"), is_final=1)],
                "mailprog-subject")


def compose(subject: str, body: str, extra: Optional[str], sender: str, rcpts: Sequence[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(rcpts)
    text = body.rstrip("\n")
    if extra:
        text = (text + "\n\n" if text else "") + "-- nomade job report --\n" + extra
    text += "\n"
    msg.set_content(text, cte="7bit" if text.isascii() else "8bit")  # readable, not quoted-printable
    return msg


def deliver(cfg: Config, msg: EmailMessage, rcpts: Sequence[str]) -> str:
    host = cfg.get("mail.smtp_host")
    if host:
        try:
            with smtplib.SMTP(host, cfg.get("mail.smtp_port"), timeout=SEND_TIMEOUT_S) as smtp:
                smtp.send_message(msg, to_addrs=list(rcpts))
        except (OSError, smtplib.SMTPException) as exc:
            raise NomadeError(f"SMTP {host}:{cfg.get('mail.smtp_port')} refused the mail: {exc}",
                              hint="check mail.smtp_host / mail.smtp_port") from None
        return f"sent via SMTP {host}:{cfg.get('mail.smtp_port')}"
    run_command([cfg.get("mail.sendmail"), "-i", "--", *rcpts], timeout=SEND_TIMEOUT_S,
                input_text=msg.as_string())
    return f"handed to {cfg.get('mail.sendmail')}"


def run_mailprog(argv: Sequence[str], body: str, environ: Optional[Mapping[str, str]] = None) -> int:
    environ = os.environ if environ is None else environ
    subject, rcpts = parse_args(argv)
    m = _JOB_ID.search(subject)
    job_id = m.group(1) if m else "?"
    log = HookLog("mailprog", job_id)
    problems = []
    try:
        cfg = load_config(environ=environ, lenient=True)
        log.path = cfg.get("hooks.log_file")
        problems.extend(f"config problem, default used: {p}" for p in cfg.problems)
    except NomadeError as exc:
        cfg = default_config()
        problems.append(f"config error, using defaults: {exc}")
    extra = None
    if m and _ENDED.search(subject):
        try:
            with time_bound(cfg.get("hooks.timeout_s")):
                extra = report_text(cfg, job_id, subject_state(subject))
        except HookTimeout:
            problems.append("report gave up after hooks.timeout_s")
        except NomadeError as exc:
            problems.append(f"no report: {exc}")
    sender = cfg.get("mail.from") or f"slurm@{socket.getfqdn()}"
    if not rcpts:
        log.line("no recipient given; nothing sent")
        return 0
    try:
        how = deliver(cfg, compose(subject, body, extra, sender, rcpts), rcpts)
        log.line(f"mail to {', '.join(rcpts)} {how}{' with report' if extra else ''}"
                 + (f"; {'; '.join(problems)}" if problems else ""))
    except (NomadeError, SlurmCommandError) as exc:
        log.line(f"mail to {', '.join(rcpts)} NOT sent: {exc}" + (f"; {'; '.join(problems)}" if problems else ""))
    return 0


def main() -> int:
    try:
        body = sys.stdin.read() if not sys.stdin.isatty() else ""
    except (OSError, UnicodeDecodeError):
        body = ""
    return run_mailprog(sys.argv[1:], body)


if __name__ == "__main__":
    sys.exit(main())
