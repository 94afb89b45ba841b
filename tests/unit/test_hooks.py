"""Prolog / Epilog / TaskProlog: bounded, fail-open, durable spool records, and the loader."""

import json
import re
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from nomade.command import CommandResult
from nomade.config import load_config
from nomade.errors import SlurmCommandError
from nomade.hooks import epilog, prolog, task_prolog
from nomade.hooks.harness import run_hook
from nomade.hooks.jobenv import ScontrolOutputError, job_from_env, parse_scontrol_job
from nomade.hooks.spool import SpoolError, iter_records, parse_record, write_record
from nomade.ingest.hook_spool import load_hook_spool
from nomade.store.db import open_store

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "hooks"


def hook_env(tmp_path, **extra):
    env = {
        "NOMADE_DATA_DIR": str(tmp_path / "data"),
        "NOMADE_HOOKS_RUNTIME_DIR": str(tmp_path / "run"),
        "NOMADE_HOOKS_LOG_FILE": str(tmp_path / "hooks.log"),
        "NOMADE_HOOKS_SCORER": "nomade_test_scorer:score",
        "SLURM_JOB_ID": "42", "SLURM_JOB_USER": "alice", "SLURM_JOB_UID": "1001",
        "SLURM_JOB_GID": str(os.getgid()), "SLURM_JOB_PARTITION": "debug", "SLURMD_NODENAME": "n1",
        "SLURM_JOB_CPUS_PER_NODE": "2",
    }
    env.update(extra)
    return env


@pytest.fixture
def stub_scorer(monkeypatch):
    mod = types.ModuleType("nomade_test_scorer")
    mod.calls = []

    def score(req):
        mod.calls.append(req)
        if req.get("name", "").startswith("risky"):
            return {"risk": 0.91, "reasons": ["time limit shorter than similar jobs ran"],
                    "model_version": "stub-1", "suggestion": "--time=00:10:00"}
        return (0.05, [], "stub-1")
    mod.score = score
    monkeypatch.setitem(sys.modules, "nomade_test_scorer", mod)
    return mod


@pytest.fixture
def scontrol(monkeypatch):
    text = (FIXTURES / "scontrol_show_job_running.txt").read_text()
    state = {"text": text, "fail": False}

    def fake(argv, timeout, **kw):
        if state["fail"]:
            raise SlurmCommandError(argv, 1, "slurm_load_jobs error: Invalid job id specified")
        return CommandResult(argv, 0, state["text"], "")
    monkeypatch.setattr(prolog, "run_command", fake)
    return state


def log_lines(tmp_path):
    return (tmp_path / "hooks.log").read_text().splitlines()


def test_parse_scontrol_fixture():
    req = parse_scontrol_job((FIXTURES / "scontrol_show_job_running.txt").read_text(), "42", "alice", 1001)
    assert req["name"] == "risky-sim" and req["user"] == "alice" and req["uid"] == 1001
    assert req["timelimit_s"] == 60 and req["cpus"] == 2 and req["nodes"] == 1
    assert req["mem_mb"] == 500 and req["mem_per_cpu"] is True and req["gpus"] == 0
    assert req["submit_time"] is not None
    assert req["node_list"] == "node1" and req["group"] == "alice"   # start-stage features


def test_job_from_epilog_env():
    job = job_from_env({"SLURM_JOB_ID": "7", "SLURM_JOB_EXIT_CODE2": "1:0", "SLURM_JOB_EXIT_CODE": "256",
                        "SLURM_JOB_UID": "1001", "SLURMD_NODENAME": "n1"})
    assert job == {"job_id": "7", "uid": 1001, "exit_status": 256, "exit_code": 1, "exit_signal": 0,
                   "node": "n1"}


def test_prolog_scores_and_spools(tmp_path, stub_scorer, scontrol):
    env = hook_env(tmp_path)
    assert run_hook("prolog", prolog.prolog_body, env) == 0
    recs = [parse_record(raw) for _, raw in iter_records(tmp_path / "data" / "spool" / "hooks")]
    assert len(recs) == 1 and recs[0]["kind"] == "start" and recs[0]["job_id"] == "42"
    assert recs[0]["score"]["risk"] == 0.91 and recs[0]["score"]["alert"] is True
    assert stub_scorer.calls[0]["timelimit_s"] == 60
    (line,) = log_lines(tmp_path)
    assert "nomade-prolog job=42: start recorded, risk 0.91 CRITICAL (model stub-1, alert)" in line
    risk = json.loads((tmp_path / "run" / "42.json").read_text())
    assert risk["alert"] and oct((tmp_path / "run" / "42.json").stat().st_mode)[-3:] == "400"


def test_task_prolog_prints_risk_line(tmp_path, stub_scorer, scontrol, capsys):
    env = hook_env(tmp_path)
    run_hook("prolog", prolog.prolog_body, env)
    capsys.readouterr()
    assert run_hook("task-prolog", task_prolog.task_prolog_body, env) == 0
    out = capsys.readouterr().out
    assert out.startswith("print nomade: CRITICAL failure risk (91%) at start: time limit shorter")
    assert "Suggestion: --time=00:10:00" in out and "nomade-why 42" in out
    run_hook("task-prolog", task_prolog.task_prolog_body, dict(env, SLURM_PROCID="3"))
    assert capsys.readouterr().out == ""


def test_task_prolog_silent_for_safe_job(tmp_path, stub_scorer, scontrol, capsys):
    scontrol["text"] = scontrol["text"].replace("JobName=risky-sim", "JobName=plain")
    env = hook_env(tmp_path)
    run_hook("prolog", prolog.prolog_body, env)
    run_hook("task-prolog", task_prolog.task_prolog_body, env)
    assert capsys.readouterr().out == ""


def test_prolog_without_scontrol_still_records(tmp_path, stub_scorer, scontrol):
    """A failing (or slow) scontrol is no reason for an alarm: the job is recorded as not scored
    with the reason; nothing is scored from a half-empty request, no risk file, no risk line.
    (It used to score the bare environment as 100 % HIGH and print that into the job's output.)"""
    scontrol["fail"] = True
    run_hook("prolog", prolog.prolog_body, hook_env(tmp_path))
    (rec,) = [parse_record(raw) for _, raw in iter_records(tmp_path / "data" / "spool" / "hooks")]
    assert "scontrol exited with 1" in rec["request"]["scontrol_error"]
    assert stub_scorer.calls == [] and "score" not in rec
    assert rec["score_error"].startswith("request incomplete: scontrol failed")
    assert not (tmp_path / "run" / "42.json").exists()
    (line,) = log_lines(tmp_path)
    assert "start recorded, not scored: request incomplete: scontrol failed" in line


def test_prolog_missing_bundle_is_one_clear_line(tmp_path, scontrol):
    env = hook_env(tmp_path, NOMADE_HOOKS_SCORER="", NOMADE_MODEL_BUNDLE=str(tmp_path / "no-bundle"))
    assert run_hook("prolog", prolog.prolog_body, env) == 0
    (line,) = log_lines(tmp_path)
    assert "not scored: no model bundle at" in line and "nomade train --publish" in line


def test_prolog_corrupt_bundle(tmp_path, scontrol):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text('{"format_version": 1, "mod')
    env = hook_env(tmp_path, NOMADE_HOOKS_SCORER="", NOMADE_MODEL_BUNDLE=str(bundle))
    assert run_hook("prolog", prolog.prolog_body, env) == 0
    assert "not scored:" in log_lines(tmp_path)[0] and "manifest.json" in log_lines(tmp_path)[0]


def test_prolog_bad_site_scorer(tmp_path, scontrol):
    run_hook("prolog", prolog.prolog_body, hook_env(tmp_path, NOMADE_HOOKS_SCORER="no_such_mod:x"))
    assert "hooks.scorer = 'no_such_mod:x' cannot be loaded" in log_lines(tmp_path)[0]


def test_prolog_gives_up_after_timeout(tmp_path, stub_scorer, scontrol):
    stub_scorer.score = lambda req: time.sleep(10)
    env = hook_env(tmp_path, NOMADE_HOOKS_TIMEOUT_S="0.3")
    t0 = time.monotonic()
    assert run_hook("prolog", prolog.prolog_body, env) == 0
    assert time.monotonic() - t0 < 2
    assert "gave up after hooks.timeout_s = 0.3 s" in log_lines(tmp_path)[0]


def test_scorer_that_raises(tmp_path, stub_scorer, scontrol):
    def boom(req):
        raise RuntimeError("onnx session exploded")
    stub_scorer.score = boom
    assert run_hook("prolog", prolog.prolog_body, hook_env(tmp_path)) == 0
    assert "internal error, skipped: RuntimeError: onnx session exploded" in log_lines(tmp_path)[0]


def test_broken_config_is_logged_and_exit_0(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[hooks\ntimeout_s = ")
    assert run_hook("epilog", epilog.epilog_body, hook_env(tmp_path, NOMADE_CONFIG=str(bad))) == 0
    err = capsys.readouterr().err
    assert "nomade-epilog job=42: config error, hook skipped:" in err and "not valid TOML" in err


def test_spool_dir_unwritable(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data dir should be")
    assert run_hook("epilog", epilog.epilog_body, hook_env(tmp_path)) == 0
    assert "cannot write spool record" in log_lines(tmp_path)[0]


def test_spool_write_is_atomic_and_named(tmp_path):
    p = write_record(tmp_path / "s", "end", "12_3", {"job": {"job_id": "12_3"}})
    assert p.name.endswith("-12_3-end-%d.json" % os.getpid())
    assert [q.name for q in (tmp_path / "s").iterdir()] == [p.name]
    with pytest.raises(SpoolError):
        write_record(tmp_path / "s" / p.name / "x", "end", "1", {})


def test_epilog_records_outcome_and_removes_risk(tmp_path, stub_scorer, scontrol):
    env = hook_env(tmp_path)
    run_hook("prolog", prolog.prolog_body, env)
    env.update(SLURM_JOB_EXIT_CODE="256", SLURM_JOB_EXIT_CODE2="1:0", SLURM_JOB_DERIVED_EC="0")
    assert run_hook("epilog", epilog.epilog_body, env) == 0
    assert not (tmp_path / "run" / "42.json").exists()
    kinds = [parse_record(raw)["kind"] for _, raw in iter_records(tmp_path / "data" / "spool" / "hooks")]
    assert sorted(kinds) == ["end", "start"]
    assert "end recorded (exit 1:0, node n1)" in log_lines(tmp_path)[-1]


def test_loader_is_idempotent_and_quarantines(tmp_path, stub_scorer, scontrol):
    env = hook_env(tmp_path)
    run_hook("prolog", prolog.prolog_body, env)
    run_hook("epilog", epilog.epilog_body, dict(env, SLURM_JOB_EXIT_CODE2="0:0"))
    spool = tmp_path / "data" / "spool" / "hooks"
    saved = {p.name: p.read_bytes() for p, _ in iter_records(spool)}
    (spool / "0000000000000-9-end-1.json").write_text("{truncated")
    (spool / ".0000000000001-9-end-1.json.tmp").write_text("in progress")
    with open_store(tmp_path / "s.db") as store:
        c = load_hook_spool(store, spool, cluster="lab")
        assert (c.loaded, c.unchanged, c.quarantined) == (2, 0, 1)
        for name, raw in saved.items():
            (spool / name).write_bytes(raw)
        c = load_hook_spool(store, spool, cluster="lab")
        assert (c.loaded, c.unchanged, c.quarantined) == (0, 2, 0)
        row = store.conn.execute("SELECT stage, risk, model_version FROM scores").fetchone()
        assert tuple(row) == ("start", 0.91, "stub-1")
        assert store.conn.execute("SELECT count(*) FROM hook_records").fetchone()[0] == 2
        assert store.conn.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 1
    assert [p.name for p in spool.iterdir()] == [".0000000000001-9-end-1.json.tmp"]


@pytest.mark.parametrize("hook", ["prolog", "epilog", "task_prolog"])
def test_entry_scripts_exit_0_even_when_python_is_broken(tmp_path, hook):
    script = tmp_path / hook
    text = (ROOT / "slurm_plugins" / hook).read_text()
    text = text.replace("NOMADE_PYTHON=/usr/bin/python3", "NOMADE_PYTHON=/nonexistent/python")
    text = text.replace("NOMADE_HOOK_LOG=/var/log/nomade/hooks.log", f"NOMADE_HOOK_LOG={tmp_path}/h.log")
    script.write_text(text)
    script.chmod(0o755)
    r = subprocess.run([str(script)], env={"PATH": os.environ["PATH"], "SLURM_JOB_ID": "5"},
                       capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout == b""
    if hook != "task_prolog":
        assert "python exited 127" in (tmp_path / "h.log").read_text()


def test_entry_script_runs_real_hook(tmp_path):
    """The Epilog entry with this Python: a record lands in the spool, exit 0."""
    script = tmp_path / "epilog"
    text = (ROOT / "slurm_plugins" / "epilog").read_text()
    text = text.replace("NOMADE_PYTHON=/usr/bin/python3", f"NOMADE_PYTHON={sys.executable}")
    text = text.replace("NOMADE_HOOK_LOG=/var/log/nomade/hooks.log", f"NOMADE_HOOK_LOG={tmp_path}/h.log")
    script.write_text(text)
    script.chmod(0o755)
    env = dict(hook_env(tmp_path), PATH=os.environ["PATH"], SLURM_JOB_EXIT_CODE2="0:0")
    r = subprocess.run([str(script)], env=env, capture_output=True, timeout=60)
    assert r.returncode == 0
    assert len(list(iter_records(tmp_path / "data" / "spool" / "hooks"))) == 1


def test_the_prolog_alerts_at_its_own_stages_threshold(tmp_path, monkeypatch):
    """The start-time score is compared with the start-stage model's alert threshold, not the
    bundle's submit-stage one."""
    from nomade.hooks import startscore
    from nomade.scoring import bundle, registry
    from nomade.scoring import score as score_mod

    class FakeScorer:
        primary = {"submit": "ensemble_submit", "start": "ensemble_start"}
        thresholds = {"alert": 0.9, "high": 0.95}                  # the submit stage's
        stage_thresholds = {"submit": thresholds, "start": {"alert": 0.2, "high": 0.6}}

        def __init__(self, _bundle):
            pass

        thresholds_for = score_mod.Scorer.thresholds_for

        def score(self, reqs, stage):
            assert stage == "start"
            return [types.SimpleNamespace(risk=0.5, reasons=[], model_version="v1")]

    (tmp_path / "bundle").mkdir()
    monkeypatch.setattr(registry, "resolve_bundle_path", lambda cfg: tmp_path / "bundle")
    monkeypatch.setattr(bundle, "load_bundle", lambda path: None)
    monkeypatch.setattr(score_mod, "Scorer", FakeScorer)
    cfg = load_config(None, {"data_dir": str(tmp_path / "data")})
    got = startscore.load_scorer(cfg)({"job_id": "1"})
    assert got.threshold == 0.2 and got.risk == 0.5


# ---------------------------------------------------------------- identity and hostile scontrol text
FIXTURE_TEXT = (FIXTURES / "scontrol_show_job_running.txt").read_text()


def test_job_name_claiming_another_user_keeps_slurmds_identity():
    """The job name comes before UserId= and users write it: `-J 'x UserId=bob(1002) GroupId=...'`
    used to make the Prolog record the job as bob's (the last UserId= won)."""
    text = FIXTURE_TEXT.replace("JobName=risky-sim", "JobName=x UserId=bob(1002) GroupId=bob(1002)")
    req = parse_scontrol_job(text, "42", "alice", 1001)
    assert (req["user"], req["uid"], req["group"]) == ("alice", 1001, "alice")
    assert req["name"] == "x UserId=bob(1002) GroupId=bob(1002)"


@pytest.mark.parametrize("field", ["Comment", "WorkDir", "StdOut", "Command"])
def test_free_text_after_the_request_never_overrides_it(field):
    """Comment, WorkDir, StdOut and Command follow the request fields; a user's text there
    (another UserId, a bigger TimeLimit, MinMemoryNode, TRES with GPUs, a partition) is ignored."""
    forged = "x UserId=bob(1002) TimeLimit=9-00:00:00 MinMemoryNode=999G Partition=gpu TRES=gres/gpu=8"
    text = re.sub(rf" {field}=\S*", f" {field}={forged}", FIXTURE_TEXT)
    req = parse_scontrol_job(text, "42", "alice", 1001)
    assert (req["user"], req["uid"], req["timelimit_s"], req["partition"]) == ("alice", 1001, 60, "debug")
    assert req["mem_per_cpu"] is True and req["mem_mb"] == 500 and req["gpus"] == 0


def test_a_name_repeating_the_real_identity_is_refused_not_guessed():
    """A name holding the job's own real `UserId=alice(1001) GroupId=` followed by forged request
    fields cannot be told apart from the real record: not scored, with the reason."""
    fake = ("x UserId=alice(1001) GroupId=alice(1001) MCS_label=N/A Account=other Partition=gpu "
            "TimeLimit=9-00:00:00 NumNodes=9 NumCPUs=999 SubmitTime=2020-01-01T00:00:00 Features=(null)")
    text = FIXTURE_TEXT.replace("JobName=risky-sim", "JobName=" + fake)
    with pytest.raises(ScontrolOutputError, match="ambiguous"):
        parse_scontrol_job(text, "42", "alice", 1001)


@pytest.mark.parametrize("text,why", [
    ("", "not the record of job 42"),
    (FIXTURE_TEXT.replace("JobId=42 ", "JobId=43 "), "not the record of job 42"),
    (FIXTURE_TEXT.replace("UserId=alice(1001)", "UserId=bob(1002)"), "does not name the job's owner"),
    (FIXTURE_TEXT.replace(" NumCPUs=2", ""), "lacks cpus"),
    (FIXTURE_TEXT.replace(" TimeLimit=00:01:00", ""), "lacks timelimit_s"),
    (FIXTURE_TEXT.split(" Partition=")[0], "lacks partition"),
])
def test_incomplete_or_foreign_scontrol_output_is_refused(text, why):
    with pytest.raises(ScontrolOutputError, match=why):
        parse_scontrol_job(text, "42", "alice", 1001)


def test_unlimited_time_limit_is_complete():
    req = parse_scontrol_job(FIXTURE_TEXT.replace("TimeLimit=00:01:00", "TimeLimit=UNLIMITED"),
                             "42", "alice", 1001)
    assert req["timelimit_s"] is None


def test_control_bytes_and_newlines_in_user_fields(tmp_path):
    """Newlines and control bytes in the name and comment: the identity and the request stand."""
    text = FIXTURE_TEXT.replace("JobName=risky-sim", "JobName=a\nJobId=1 UserId=root(0)\x1b[2J\x00")
    text = text.replace("WorkDir=/home/alice", "WorkDir=/tmp/\nUserId=root(0) NumCPUs=64")
    req = parse_scontrol_job(text, "42", "alice", 1001)
    assert (req["user"], req["uid"], req["cpus"]) == ("alice", 1001, 2)


def test_prolog_identity_comes_from_slurmd_not_scontrol(tmp_path, stub_scorer, scontrol):
    """The spooled start record (what nomade-why uses to find the owner of a running job) holds
    slurmd's user and uid even when the job's name claims bob."""
    scontrol["text"] = FIXTURE_TEXT.replace("JobName=risky-sim", "JobName=risky UserId=bob(1002) GroupId=bob(1002)")
    run_hook("prolog", prolog.prolog_body, hook_env(tmp_path))
    (rec,) = [parse_record(raw) for _, raw in iter_records(tmp_path / "data" / "spool" / "hooks")]
    assert (rec["request"]["user"], rec["request"]["uid"]) == ("alice", 1001)
    assert (rec["job"]["user"], rec["job"]["uid"]) == ("alice", 1001)
    assert stub_scorer.calls[0]["user"] == "alice"


def test_prolog_refuses_to_score_an_ambiguous_record(tmp_path, stub_scorer, scontrol):
    scontrol["text"] = FIXTURE_TEXT.replace("JobName=risky-sim",
                                            "JobName=risky UserId=alice(1001) GroupId=alice(1001)")
    run_hook("prolog", prolog.prolog_body, hook_env(tmp_path))
    assert stub_scorer.calls == []
    assert "not scored: request incomplete: scontrol output is ambiguous" in log_lines(tmp_path)[0]


def test_ingest_hooks_ages_out_old_records_and_abandoned_tmp_files(tmp_path):
    """Hook records older than hooks.keep_days leave the store (scores stay); a `.tmp` left by a
    hook killed mid-write is removed after a day, a fresh one is left alone."""
    spool = tmp_path / "spool"
    now = 1_000_000_000.0
    with open_store(tmp_path / "nomade.db") as store:
        for job_id, written in (("1", now - 200 * 86400), ("2", now - 10 * 86400)):
            path = write_record(spool, "start", job_id, {"job": {"job_id": job_id},
                                                         "score": {"risk": 0.3, "model_version": "m"}})
            rec = json.loads(path.read_text())
            rec["written_at"] = written
            path.write_text(json.dumps(rec))
        (spool / ".old.json.tmp").write_text("{")
        os.utime(spool / ".old.json.tmp", (now - 2 * 86400, now - 2 * 86400))
        (spool / ".new.json.tmp").write_text("{")
        os.utime(spool / ".new.json.tmp", (now - 60, now - 60))
        c = load_hook_spool(store, spool, cluster="lab", now=now, keep_days=180)
        assert (c.loaded, c.aged_out) == (2, 1) and "1 aged out" in c.summary()
        left = [r[0] for r in store.conn.execute("SELECT job_id FROM hook_records")]
        assert left == ["2"]
        assert store.conn.execute("SELECT count(*) FROM scores").fetchone()[0] == 2
    assert sorted(p.name for p in spool.iterdir()) == [".new.json.tmp"]


def test_an_ingest_hooks_timer_ships():
    unit = (ROOT / "slurm_plugins" / "systemd" / "nomade-ingest-hooks.timer").read_text()
    assert "Unit=nomade-ingest-hooks.service" in unit
    service = (ROOT / "slurm_plugins" / "systemd" / "nomade-ingest-hooks.service").read_text()
    assert "ExecStart=/usr/bin/env nomade ingest hooks" in service


def test_risk_file_is_never_readable_by_others(tmp_path, monkeypatch):
    """The note is created with mode 0400 (os.open's mode), not written 0644 and chmod-ed after:
    a reader racing the Prolog never finds it open to everyone; a directory nomade makes is 0711,
    one the admin made keeps its mode."""
    from nomade.hooks import riskfile

    modes = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *a, **kw):
        if str(path).endswith(".tmp"):
            modes.append(mode)
        return real_open(path, flags, mode, *a, **kw)
    monkeypatch.setattr(riskfile.os, "open", spy)
    path = riskfile.write_risk(tmp_path / "run", "42", None, {"risk": 0.5})
    assert modes == [0o400] and oct(path.stat().st_mode)[-3:] == "400"
    assert oct((tmp_path / "run").stat().st_mode)[-3:] == "711"
    mine = tmp_path / "admins"
    mine.mkdir(mode=0o755)
    os.chmod(mine, 0o755)
    riskfile.write_risk(mine, "43", None, {"risk": 0.5})
    assert oct(mine.stat().st_mode)[-3:] == "755"


def test_task_prolog_main_loads_nothing_for_other_tasks(monkeypatch):
    from nomade.hooks import task_prolog as tp

    monkeypatch.setenv("SLURM_PROCID", "7")
    monkeypatch.setattr(tp, "run_hook", lambda *a, **k: pytest.fail("task 7 ran the hook"))
    assert tp.main() == 0


def test_hook_spool_is_private(tmp_path):
    """A spool directory the hooks create is 0700 and every record 0600 (record contents and the
    job ids in their names are nobody else's business)."""
    path = write_record(tmp_path / "var" / "spool" / "hooks", "end", "9", {"job": {"job_id": "9"}})
    assert oct(path.stat().st_mode)[-3:] == "600"
    for d in (tmp_path / "var", tmp_path / "var" / "spool", tmp_path / "var" / "spool" / "hooks"):
        assert oct(d.stat().st_mode)[-3:] == "700", d
