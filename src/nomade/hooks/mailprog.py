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


def report_text(cfg: Config, job_id: str) -> str:
    """The report for the mail, or a note saying why there is none yet."""
    from ..jobid import BadJobId
    from ..report import JobNotFound, format_reports, load_reports
    from ..store.db import open_store
    try:
        with open_store(cfg.store_path, busy_timeout_ms=500, migrate=False, readonly=True) as store:
            reports = load_reports(store, job_id, cfg.get("cluster"), risk_scale.current_threshold(cfg))
    except BadJobId:
        return ""
    except (JobNotFound, StoreError):
        return (f"The nomade report for job {job_id} is not ready yet (its accounting has not been "
                f"loaded). Run `nomade report {job_id}` in a few minutes.")
    if any(r.state is None or r.failure_class is None for r in reports):
        return (f"Job {job_id} has not finished in nomade's store yet. "
                f"Run `nomade report {job_id}` in a few minutes.")
    return format_reports(reports, job_id)


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
        cfg = load_config(environ=environ)
        log.path = cfg.get("hooks.log_file")
    except NomadeError as exc:
        cfg = default_config()
        problems.append(f"config error, using defaults: {exc}")
    extra = None
    if m and _ENDED.search(subject):
        try:
            with time_bound(cfg.get("hooks.timeout_s")):
                extra = report_text(cfg, job_id)
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
