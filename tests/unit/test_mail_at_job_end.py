"""The end-of-job mail's report is built from what exists when the job ends (issue 12 item 3):
this one job's accounting (one bounded `sacct -j`, replayed here) and its hook records in the
spool, in a private scratch store that is removed afterwards; what is missing says so. Hostile
job names travel through it as data."""

import os

import pytest

from nomade.command import CommandResult
from nomade.config import load_config
from nomade.errors import SlurmCommandError
from nomade.hooks import mailprog
from nomade.hooks.spool import write_record
from nomade.ingest.sacct import LIVE_FIELDS

NAME = "sim|evil\nname;77"
SUBJECT = "Slurm Job_id=77 Name=x, Run time 00:00:01, COMPLETED, ExitCode 0 Ended, Run time 01:00:02, TIMEOUT, ExitCode 0"


@pytest.mark.parametrize("subject, state", [
    (SUBJECT, "TIMEOUT"),
    ("Slurm Job_id=77 Name=sim Ended, Run time 00:01:02, OUT_OF_MEMORY, ExitCode 0", "OUT_OF_MEMORY"),
    ("Slurm Job_id=77 Name=sim Began, Queued time 00:00:01", None),
    ("Slurm Job_id=77 Name=a, Run time 1:00, COMPLETED, ExitCode 0 Began, Queued time 00:00:01", None),
    ("Slurm Job_id=77 Name=sim Ended, Run time 00:01:02, NOT_A_STATE, ExitCode 0", None),
])
def test_subject_state_is_read_from_slurms_tail_only(subject, state):
    assert mailprog.subject_state(subject) == state


def sacct_rows(delim: str):
    base = {"JobID": "77", "JobIDRaw": "77", "Cluster": "lab", "User": "alice", "UID": "1001",
            "Group": "alice", "Account": "research", "Partition": "debug", "QOS": "normal",
            "State": "TIMEOUT", "ExitCode": "0:0", "DerivedExitCode": "0:0",
            "Submit": "2026-11-21T10:00:00", "Eligible": "2026-11-21T10:00:00",
            "Start": "2026-11-21T10:00:05", "End": "2026-11-21T11:00:07", "Elapsed": "01:00:02",
            "Timelimit": "01:00:00", "ReqMem": "4G", "ReqCPUS": "4", "ReqNodes": "1",
            "ReqTRES": "cpu=4,mem=4G,node=1", "AllocCPUS": "4", "NNodes": "1",
            "AllocTRES": "cpu=4,mem=4G,node=1", "NodeList": "node1", "MaxRSS": "", "TotalCPU": "02:00:00",
            "NTasks": "", "TRESUsageInTot": "", "TRESUsageInMax": "", "JobName": NAME,
            "WorkDir": "/home/alice", "SubmitLine": "sbatch x.sh"}
    batch = dict(base, JobID="77.batch", JobName="batch", MaxRSS="1024000K", NTasks="1",
                 TRESUsageInTot="cpu=02:00:00,mem=1000M", TRESUsageInMax="mem=1000M", State="CANCELLED")
    head = delim.join(LIVE_FIELDS)
    return "\n".join([head] + [delim.join(r[f] for f in LIVE_FIELDS) for r in (base, batch)]) + "\n"


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("NOMADE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NOMADE_CLUSTER", "lab")
    return load_config(environ=dict(os.environ))


def fake_sacct(calls, fail=False):
    def run(argv, timeout, **kw):
        calls.append((argv, timeout))
        if fail:
            raise SlurmCommandError(argv, 1, "sacct: error: Problem talking to the database")
        delim = next(a.split("=", 1)[1] for a in argv if a.startswith("--delimiter="))
        return CommandResult(argv, 0, sacct_rows(delim), "")
    return run


def test_report_from_this_jobs_accounting_and_its_start_record(cfg, monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr("nomade.ingest.sacct.run_command", fake_sacct(calls))
    write_record(cfg.spool_dir("hooks"), "start", "77",
                 {"job": {"job_id": "77", "user": "alice", "uid": 1001, "cluster": "lab", "node": "node1"},
                  "request": {}, "score": {"risk": 0.71, "level": "HIGH", "model_version": "v9",
                                           "threshold": 0.5, "alert": True, "reasons": ["time limit of 1h00m"]}})
    before = set(os.listdir(tempfile_dir()))
    text = mailprog.report_text(cfg, "77")
    assert "TIMEOUT" in text and "71%" in text, text
    assert "Built when the job ended" in text
    assert "sim|evil\\x0aname;77" in text and "\nname;77" not in text   # a newline in the name forges no line
    argv, timeout = calls[0]
    assert argv[argv.index("-j") + 1] == "77" and timeout <= cfg.get("hooks.timeout_s")
    assert set(os.listdir(tempfile_dir())) == before          # the scratch store is gone
    assert list(cfg.spool_dir("hooks").glob("*.json"))        # the spool is left for `ingest hooks`


def test_accounting_unavailable_still_reports_what_the_hooks_saw(cfg, monkeypatch):
    monkeypatch.setattr("nomade.ingest.sacct.run_command", fake_sacct([], fail=True))
    write_record(cfg.spool_dir("hooks"), "end", "77",
                 {"job": {"job_id": "77", "user": "alice", "uid": 1001, "cluster": "lab", "node": "node1",
                          "exit_code": 0}, "ended_at": 1.0})
    text = mailprog.report_text(cfg, "77", mailprog.subject_state(SUBJECT))
    assert "accounting not yet available" in text and "nomade report 77" in text, text
    assert "TIMEOUT" in text and "Outcome: timeout" in text      # slurmctld's state, not exit code 0's


def test_nothing_known_gives_the_note(cfg, monkeypatch):
    monkeypatch.setattr("nomade.ingest.sacct.run_command", fake_sacct([], fail=True))
    text = mailprog.report_text(cfg, "77")
    assert "not ready yet" in text and "nomade report 77" in text


def tempfile_dir():
    import tempfile
    return tempfile.gettempdir()
