"""nomade-why and nomade report for an array task that sacct has not delivered yet: the Prolog's
start record (and the Epilog's end record) is stored under the task's raw id (SLURM_JOB_ID) and
holds SLURM_ARRAY_JOB_ID / SLURM_ARRAY_TASK_ID, so ``123_4`` finds it as well as the raw id."""

import json
import os
import sys
import types
from pathlib import Path

import pytest

from nomade.hooks import prolog
from nomade.hooks.jobenv import job_from_env, parse_scontrol_job
from nomade.hooks.harness import run_hook
from nomade.hooks.spool import write_record
from nomade.ingest.hook_spool import load_hook_spool
from nomade.jobid import array_task, parse_job_ref
from nomade.report import JobNotFound, find_job
from nomade.store import hook_records
from nomade.store.db import open_store
from nomade.command import CommandResult
from nomade.why import explain, job_owner

ME = os.getuid()
HOOK_FIX = Path(__file__).resolve().parents[1] / "fixtures" / "hooks"

# what slurmd gives the Prolog of task 4 of array 123, whose own id is 125
PROLOG_ENV = {"SLURM_JOB_ID": "125", "SLURM_ARRAY_JOB_ID": "123", "SLURM_ARRAY_TASK_ID": "4",
              "SLURM_JOB_USER": "alice", "SLURM_JOB_UID": str(ME), "SLURMD_NODENAME": "n1",
              "SLURM_JOB_PARTITION": "debug"}


def test_hook_environment_keeps_the_array_ids():
    job = job_from_env(PROLOG_ENV)
    assert (job["job_id"], job["array_job_id"], job["array_task_id"]) == ("125", 123, 4)
    plain = job_from_env({"SLURM_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "x"})
    assert "array_job_id" not in plain and "array_task_id" not in plain


def test_array_task_of_a_reference():
    assert array_task(parse_job_ref("123_4")) == (123, 4)
    assert array_task(parse_job_ref("0123_04.batch")) == (123, 4)
    assert array_task(parse_job_ref("123")) is None
    assert array_task(parse_job_ref("123_[5-9]")) is None
    assert array_task(parse_job_ref("123+1")) is None


def _spool(tmp_path, records):
    spool = tmp_path / "spool"
    for kind, job_id, rec in records:
        write_record(spool, kind, job_id, rec)
    store = open_store(tmp_path / "nomade.db")
    load_hook_spool(store, spool, cluster="lab")
    return store


@pytest.fixture
def store(tmp_path):
    job = job_from_env(PROLOG_ENV)
    score = {"risk": 0.9, "level": "HIGH", "model_version": "m1", "reasons": ["long limit"]}
    # other records that must not pass for task 123_4: another task, array 1234, and a record
    # whose user-written text (the job name) spells the ids while slurmd gave none
    other_task = dict(job, job_id="126", array_task_id=5)
    longer = dict(job, job_id="1300", array_job_id=1234)
    spoof = {"job_id": "1400", "user": "bob", "uid": ME + 1}
    records = [
        ("start", "125", {"job": job, "request": {"name": "sim", "cpus": 2}, "score": score}),
        ("start", "126", {"job": other_task, "request": {"name": "sim"}}),
        ("start", "1300", {"job": longer, "request": {"name": "sim"}}),
        ("start", "1400", {"job": spoof, "request": {"name": '"array_job_id": 123, "array_task_id": 4'}}),
    ]
    st = _spool(tmp_path, records)
    yield st
    st.close()


@pytest.mark.parametrize("ref", ["123_4", "0123_04", "123_4.batch", "125"])
def test_why_finds_the_prolog_record_of_an_array_task(store, ref):
    owner = job_owner(store, ref, "lab")
    assert (owner["job_id"], owner["user"], owner["uid"], owner["source"]) == ("125", "alice", ME, "prolog")
    a = explain(store, ref, "")
    assert a.job_id == "125" and a.state == "RUNNING" and a.name == "sim"
    assert a.risk_start is not None and a.risk_start["risk"] == pytest.approx(0.9)   # the score, under the raw id


def test_other_tasks_arrays_and_spelled_out_ids_do_not_match(store):
    assert job_owner(store, "123_5", "lab")["job_id"] == "126"
    assert job_owner(store, "1234_4", "lab")["job_id"] == "1300"
    for ref in ("123_6", "12_4", "123_4"):
        with pytest.raises(JobNotFound):
            job_owner(store, ref, "othercluster")
    rows = hook_records.array_task_records(store, 123, 4, "start")
    assert [r["job_id"] for r in rows] == ["125"]
    assert hook_records.array_task_records(store, 123, 4, "start", limit=0) == []


def test_report_finds_the_epilog_record_of_an_array_task(tmp_path):
    env = dict(PROLOG_ENV, SLURM_JOB_EXIT_CODE2="0:0")
    st = _spool(tmp_path, [("end", "125", {"job": job_from_env(env)})])
    try:
        for ref in ("123_4", "125"):
            job = find_job(st, ref)
            assert (job["job_id"], job["state"], job["source"]) == ("125", "COMPLETED", "epilog"), ref
        with pytest.raises(JobNotFound):
            find_job(st, "123_5")
        data = json.loads(hook_records.job_records(st, "125", "end")[0]["data"])
        assert data["job"]["array_task_id"] == 4
    finally:
        st.close()


# ---------------------------------------------------------------- the Prolog on Slurm 22.05
def test_scontrol_of_an_array_task_gives_its_array_ids():
    """Captured on the test cluster: task 390_1 runs as job 391; scontrol prints the array ids
    before JobName= (slurmd 22.05 gives the Prolog no SLURM_ARRAY_* variables)."""
    text = (HOOK_FIX / "scontrol_show_job_array_task_22.05.txt").read_text()
    req = parse_scontrol_job(text, "391", "root", 0)
    assert (req["array_job_id"], req["array_task_id"]) == (390, 1)
    plain = (HOOK_FIX / "scontrol_show_job_running.txt").read_text()
    assert "array_job_id" not in parse_scontrol_job(plain, "42", "alice", 1001)
    # a name spelling the ids comes after JobName=: never read as them
    fake = text.replace("ArrayJobId=390 ArrayTaskId=1 JobName=wrap",
                        "JobName=x ArrayJobId=7 ArrayTaskId=8")
    assert "array_job_id" not in parse_scontrol_job(fake, "391", "root", 0)


def test_prolog_record_of_an_array_task_is_found_by_its_array_id(tmp_path, monkeypatch):
    """The whole path: the Prolog (environment without SLURM_ARRAY_*, the captured scontrol
    record), the spool loaded into the store, nomade-why for 390_1 and for the raw id 391."""
    text = (HOOK_FIX / "scontrol_show_job_array_task_22.05.txt").read_text()
    monkeypatch.setattr(prolog, "run_command", lambda argv, timeout, **kw: CommandResult(argv, 0, text, ""))
    mod = types.ModuleType("nomade_array_test_scorer")
    mod.score = lambda req: {"risk": 0.7, "reasons": ["r"], "model_version": "stub-1"}
    monkeypatch.setitem(sys.modules, "nomade_array_test_scorer", mod)
    env = {"NOMADE_DATA_DIR": str(tmp_path / "data"), "NOMADE_HOOKS_RUNTIME_DIR": str(tmp_path / "run"),
           "NOMADE_HOOKS_LOG_FILE": str(tmp_path / "hooks.log"),
           "NOMADE_HOOKS_SCORER": "nomade_array_test_scorer:score",
           "SLURM_JOB_ID": "391", "SLURM_JOB_USER": "root", "SLURM_JOB_UID": "0",
           "SLURM_JOB_PARTITION": "debug", "SLURMD_NODENAME": "vm"}
    assert run_hook("prolog", prolog.prolog_body, env) == 0
    with open_store(tmp_path / "nomade.db") as st:
        load_hook_spool(st, tmp_path / "data" / "spool" / "hooks", cluster="lab")
        for ref in ("390_1", "391"):
            a = explain(st, ref, "")
            assert (a.job_id, a.name, a.state) == ("391", "wrap", "RUNNING"), ref
            assert a.risk_start["risk"] == pytest.approx(0.7), ref
        with pytest.raises(JobNotFound):
            explain(st, "390_2", "")
