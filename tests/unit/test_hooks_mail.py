"""MailProg wrapper: the report is appended and the mail reaches a real SMTP server (aiosmtpd)."""

import socket

import pytest

from nomade.hooks.mailprog import parse_args, run_mailprog
from nomade.jobrecord import JobRecord
from nomade.store.db import open_store
from nomade.store.jobs import upsert_jobs

aiosmtpd = pytest.importorskip("aiosmtpd.controller")


class Sink:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content.decode("utf-8", "replace")))
        return "250 OK"


@pytest.fixture
def smtp():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = Sink()
    ctl = aiosmtpd.Controller(sink, hostname="127.0.0.1", port=port)
    ctl.start()
    yield port, sink
    ctl.stop()


SUBJECT = "Slurm Job_id=77 Name=sim Ended, Run time 01:00:02, TIMEOUT, ExitCode 0"


def env(tmp_path, port, **kw):
    e = {"NOMADE_DATA_DIR": str(tmp_path), "NOMADE_MAIL_SMTP_HOST": "127.0.0.1",
         "NOMADE_MAIL_SMTP_PORT": str(port), "NOMADE_MAIL_FROM": "slurm@test",
         "NOMADE_HOOKS_LOG_FILE": str(tmp_path / "hooks.log"),
         # no accounting to ask at job end (the machine may run the test cluster, whose job 77 is another)
         "NOMADE_SLURM_SACCT": "/nonexistent/sacct"}
    e.update(kw)
    return e


def test_parse_args():
    assert parse_args(["-s", SUBJECT, "alice@x"]) == (SUBJECT, ["alice@x"])


def test_mail_with_report(tmp_path, smtp):
    port, sink = smtp
    with open_store(tmp_path / "nomade.db") as store:
        upsert_jobs(store, [JobRecord(cluster="lab", job_id="77", user="alice", uid=1001, state="TIMEOUT",
                                      is_final=1, elapsed_s=3602, timelimit_s=3600, alloc_cpus=1,
                                      total_cpu_s=3500.0, exit_code=0)], "t")
    assert run_mailprog(["-s", SUBJECT, "alice@example.org"], "original body\n", env(tmp_path, port)) == 0
    (rcpts, content), = sink.messages
    assert rcpts == ["alice@example.org"]
    assert "original body" in content and "-- nomade job report --" in content
    assert "State: TIMEOUT" in content and "--time=01:30:00" in content
    assert "with report" in (tmp_path / "hooks.log").read_text()


def test_mail_before_ingest_has_note(tmp_path, smtp):
    port, sink = smtp
    run_mailprog(["-s", SUBJECT, "alice"], "", env(tmp_path, port))
    assert "not ready yet" in sink.messages[0][1]


def test_began_mail_forwarded_untouched(tmp_path, smtp):
    port, sink = smtp
    run_mailprog(["-s", "Slurm Job_id=77 Name=sim Began, Queued time 00:00:01", "alice"], "", env(tmp_path, port))
    assert "nomade" not in sink.messages[0][1]


def test_broken_config_still_sends(tmp_path, smtp, monkeypatch):
    port, sink = smtp
    bad = tmp_path / "bad.toml"
    bad.write_text("[mail]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = %d\nbogus = 1\n" % port)
    monkeypatch.chdir(tmp_path)
    e = {"NOMADE_CONFIG": str(bad)}
    assert run_mailprog(["-s", SUBJECT, "alice"], "body", e) == 0
    # the typo is skipped (and logged); the good SMTP settings of the same file are used
    assert len(sink.messages) == 1 and "Job_id=77" in sink.messages[0][1]


def test_smtp_down_is_logged(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert run_mailprog(["-s", SUBJECT, "alice"], "", env(tmp_path, port)) == 0
    assert "NOT sent" in (tmp_path / "hooks.log").read_text()
