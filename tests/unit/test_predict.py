"""`nomade predict` (issue 13 item 9): the queue from squeue's fixed-position fields, each job read
like nomade-why reads one (captured scontrol output), scored now; a user sees only their own jobs
(Slurm is asked for the caller's uid only)."""

import json
from pathlib import Path

import pytest

from nomade import live_job, predict
from nomade.cli import predict_cmd
from nomade.cli.main import cli, run_cli
from nomade.command import CommandResult
from nomade.errors import NomadeError, SlurmCommandError
from nomade.predict import parse_squeue_queue
from nomade.scoring.registry import default_bundle_dir
from nomade.whyservice.access import Caller

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hooks"
PENDING = (FIXTURES / "scontrol_show_job_pending.txt").read_text()
RUNNING = (FIXTURES / "scontrol_show_job_running.txt").read_text()


def test_parse_queue_fixed_fields():
    jobs = parse_squeue_queue("43 1001 alice PENDING\n42 1001 alice RUNNING\n43 1001 alice PENDING\n\n")
    assert [(j.job_id, j.uid, j.user, j.state) for j in jobs] == [("43", 1001, "alice", "PENDING"),
                                                                  ("42", 1001, "alice", "RUNNING")]


@pytest.mark.parametrize("text", ["43 1001 alice PENDING extra\n", "43 1001 al ice PENDING\n",
                                  "43 abc alice PENDING\n", "4\n3 1001 alice PENDING\n",
                                  "43 1001 alice\x00 PENDING\n", "43 99999999999 alice PENDING\n",
                                  "43 1001 alice|bob PENDING\n"])
def test_parse_queue_refuses_what_is_not_slurms_form(text):
    with pytest.raises(NomadeError, match="squeue line"):
        parse_squeue_queue(text)


class FakeSlurm:
    def __init__(self):
        self.calls = []

    def __call__(self, argv, timeout, **kw):
        self.calls.append(argv)
        if argv[0] == "squeue":
            if "-u" in argv and argv[argv.index("-u") + 1] != "1001":
                return CommandResult(argv, 0, "", "")
            return CommandResult(argv, 0, "43 1001 alice PENDING\n42 1001 alice RUNNING\n", "")
        text = {"43": PENDING, "42": RUNNING}.get(argv[-1])
        if text is None:
            raise SlurmCommandError(argv, 1, "Invalid job id specified")
        return CommandResult(argv, 0, text, "")


@pytest.fixture
def slurm(monkeypatch, tmp_path):
    fake = FakeSlurm()
    monkeypatch.setattr(live_job, "run_command", fake)
    monkeypatch.setattr(predict, "run_command", fake)
    monkeypatch.setenv("NOMADE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NOMADE_PRIVACY_ADMIN_GROUP", "no-such-group-xyz")
    monkeypatch.setenv("NOMADE_DEFAULT_BUNDLE", str(default_bundle_dir()))
    return fake


@pytest.mark.skipif(not (default_bundle_dir() / "manifest.json").is_file(), reason="no default bundle")
def test_user_scores_own_queue(slurm, monkeypatch, capsys):
    monkeypatch.setattr(predict_cmd, "current_caller", lambda: Caller(uid=1001, gid=1001, pid=1))
    assert run_cli(cli, ["predict", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["job_id"] for r in rows] == ["43", "42"]
    assert all(0.0 <= r["risk"] <= 1.0 and r["level"] for r in rows)
    assert {r["stage"] for r in rows} <= {"submit", "start"} and [r["state"] for r in rows] == ["PENDING", "RUNNING"]
    assert all(isinstance(r["warned"], bool) for r in rows)   # what sbatch did, recomputed
    squeue = slurm.calls[0]
    assert squeue[squeue.index("-u") + 1] == "1001"      # Slurm filters by the caller's uid


def test_user_cannot_ask_for_others(slurm, monkeypatch, capsys):
    monkeypatch.setattr(predict_cmd, "current_caller", lambda: Caller(uid=1002, gid=1002, pid=1))
    assert run_cli(cli, ["predict", "--all-users"]) == 1
    assert "only root and admins" in capsys.readouterr().err
    assert slurm.calls == []


def test_squeue_failure_is_one_line(monkeypatch, tmp_path, capsys):
    def broken(argv, timeout, **kw):
        raise SlurmCommandError(argv, 1, "slurm_load_jobs error: Unable to contact slurm controller")
    monkeypatch.setattr(predict, "run_command", broken)
    monkeypatch.setenv("NOMADE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(predict_cmd, "current_caller", lambda: Caller(uid=1001, gid=1001, pid=1))
    assert run_cli(cli, ["predict"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot list the queue" in err


@pytest.mark.skipif(not (default_bundle_dir() / "manifest.json").is_file(), reason="no default bundle")
def test_ml_status_without_site_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NOMADE_DATA_DIR", str(tmp_path))
    from nomade.store.db import open_store
    open_store(tmp_path / "nomade.db").close()
    assert run_cli(cli, ["ml", "status"]) == 0
    assert "none published yet" in capsys.readouterr().out
    assert run_cli(cli, ["ml", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["current"]["version"] is None
