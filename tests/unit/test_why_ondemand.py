"""nomade-why on demand: a job nothing scored is scored now with the current bundle (the shipped
default one here), a job the store does not hold yet is read from Slurm (a fake run_command
replaying captured squeue / `scontrol show job -o` output), and what sbatch told its user is
recomputed from the bundle's Lua model. Privacy: the owner Slurm prints is checked before
anything else is read."""

import json
from pathlib import Path

import pytest

from nomade import live_job, risk_scale
from nomade.errors import NomadeError, SlurmCommandError
from nomade.jobrecord import JobRecord
from nomade.live_job import SlurmJobs, parse_squeue_owner
from nomade.report import JobNotFound
from nomade.scoring.registry import default_bundle_dir
from nomade.store.db import open_store
from nomade.store.jobs import upsert_jobs
from nomade.why import explain, format_why, job_owner
from nomade.why_ondemand import BundleCache, OnDemand, request_of
from nomade.whyservice.access import Caller
from nomade.whyservice.server import answer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hooks"
PENDING = (FIXTURES / "scontrol_show_job_pending.txt").read_text()
RUNNING = (FIXTURES / "scontrol_show_job_running.txt").read_text()
ALICE, BOB = 1001, 1002
ADMINS = "no-such-group-xyz"

pytestmark = pytest.mark.skipif(not (default_bundle_dir() / "manifest.json").is_file(),
                                reason="no default bundle in this checkout")


def rec(job_id, state, name="long-sim", elapsed=3600, limit=3600, submit=1.79e9, uid=ALICE, user="alice"):
    return JobRecord(cluster="lab", job_id=job_id, user=user, uid=uid, name=name, state=state,
                     is_final=1 if state not in ("PENDING", "RUNNING") else 0, elapsed_s=elapsed,
                     timelimit_s=limit, req_cpus=2, req_nodes=1, alloc_cpus=2, partition="debug",
                     exit_code=0, submit_time=submit, end_time=submit + elapsed)


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "nomade.db"
    with open_store(path) as store:
        upsert_jobs(store, [rec("1", "TIMEOUT"), rec("2", "TIMEOUT", submit=1.79e9 + 10),
                            rec("3", "COMPLETED", name="other", elapsed=60, submit=1.79e9 + 20)], "test")
    return path


class FakeSlurm:
    """run_command for squeue and scontrol: ``jobs`` maps a job id to (squeue line, scontrol
    text); an unknown id fails as Slurm does. Every call is recorded."""

    def __init__(self, jobs):
        self.jobs, self.calls = jobs, []

    def __call__(self, argv, timeout, **kw):
        from nomade.command import CommandResult
        assert isinstance(argv, list) and timeout > 0
        self.calls.append(argv)
        job_id = argv[argv.index("-j") + 1] if argv[0] == "squeue" else argv[-1]
        if job_id not in self.jobs:
            raise SlurmCommandError(argv, 1, "slurm_load_jobs error: Invalid job id specified")
        if "--start" in argv:   # squeue --start -o "%S %r" of a pending job
            return CommandResult(argv, 0, "2026-12-04T08:30:00 Priority\n", "")
        out = self.jobs[job_id][0 if argv[0] == "squeue" else 1]
        return CommandResult(argv, 0, out, "")


@pytest.fixture
def slurm(monkeypatch):
    fake = FakeSlurm({"43": ("1001 alice PENDING\n", PENDING), "42": ("1001 alice RUNNING\n", RUNNING)})
    monkeypatch.setattr(live_job, "run_command", fake)
    return fake


def ondemand():
    return OnDemand(BundleCache(default_bundle_dir), SlurmJobs("squeue", "scontrol", cluster="lab"))


def test_pending_job_not_in_store_gets_a_submit_risk_through_explain(store_path, slurm):
    od = ondemand()
    with open_store(store_path, readonly=True, migrate=False) as store:
        owner = job_owner(store, "43", "lab", od.live)
        assert (owner["uid"], owner["user"], owner["state"], owner["source"]) == (ALICE, "alice", "PENDING", "slurm")
        assert slurm.calls == [["squeue", "-h", "-j", "43", "-o", "%U %u %T"]]   # owner first, nothing else
        a = explain(store, "43", "lab", job=owner, ondemand=od)
    assert slurm.calls[1] == ["scontrol", "show", "job", "-o", "43"]
    assert slurm.calls[2] == ["squeue", "-h", "-j", "43", "--start", "-o", "%S %r"] and len(slurm.calls) == 3
    assert a.waiting["reason"] == "Priority" and a.waiting["expected_start"] is not None
    assert "backfill" in a.waiting["advice"]
    r = a.risk_submit
    assert 0.0 < r["risk"] < 1.0 and r["level"] == risk_scale.level(r["risk"])
    assert r["scored"] == "now" and r["model_version"] == "default"
    assert r["as_of"] == owner_submit_time()
    assert a.risk_start is None and a.state == "PENDING" and a.name == "long-sim"
    assert a.contributions and all(c.text for c in a.contributions)
    assert any(c.text == "time limit of 48h00m" for c in a.contributions)
    # the sbatch option to change: the similar jobs of the same name timed out
    assert a.recommendations[0].startswith("--time=01:18:00")
    scorer, lua = od.bundles.get()
    req = request_of(od.live.job(owner))
    assert a.sbatch["risk"] == pytest.approx(float(scorer.lua_reference_risk([req])[0]), abs=1e-9)
    assert a.sbatch["warned"] == (a.sbatch["risk"] >= lua.threshold)
    text = format_why(a.as_dict())
    assert "Risk at submit: " in text and "scored now by nomade-why" in text
    assert "Risk at start:  not scored" in text
    assert "Waiting: Priority; Slurm expects it to start around 2026-12-04" in text
    if a.sbatch["warned"]:
        assert f"nomade: {risk_scale.level(a.sbatch['risk'])} failure risk" in text
    else:
        assert "At sbatch: no warning" in text


def owner_submit_time():
    from nomade.hooks.jobenv import parse_scontrol_job
    return parse_scontrol_job(PENDING, "43", "alice", ALICE)["submit_time"]


def test_pending_job_through_the_service_answer(store_path, slurm):
    res = answer(store_path, Caller(ALICE, ALICE), {"op": "why", "job_id": "43", "cluster": "lab"}, ADMINS,
                 ondemand=ondemand())
    assert res["ok"], res
    a = res["answer"]
    assert a["risk_submit"]["scored"] == "now" and a["sbatch"]["model_version"] == "default"
    assert a["contributions"] and a["recommendations"][0].startswith("--time=")
    json.dumps(res)   # what the service sends


def test_another_users_pending_job_is_refused_before_scontrol(store_path, slurm):
    res = answer(store_path, Caller(BOB, BOB), {"op": "why", "job_id": "43"}, ADMINS, ondemand=ondemand())
    assert res["ok"] is False and res["kind"] == "denied"
    assert [c[0] for c in slurm.calls] == ["squeue"]   # the job's request was never read


def test_job_unknown_to_slurm_and_the_store_is_not_found(store_path, slurm):
    for job_id in ("999", "-h", "43 44", "43_1", "1" * 20):
        res = answer(store_path, Caller(ALICE, ALICE), {"op": "why", "job_id": job_id}, ADMINS,
                     ondemand=ondemand())
        # an id Slurm cannot mean is refused (not a job id) or not found, never passed to Slurm
        assert res["ok"] is False and res["kind"] in ("not_found", "error"), (job_id, res)
        assert res["kind"] == "not_found" or job_id != "999"
    assert slurm.calls == [["squeue", "-h", "-j", "999", "-o", "%U %u %T"]]   # only the well-formed id
    with open_store(store_path, readonly=True, migrate=False) as store:
        with pytest.raises(JobNotFound):
            job_owner(store, "999", "lab")   # without Slurm: the store's answer


def test_leading_zeros_are_slurms_job_id(store_path, slurm):
    res = answer(store_path, Caller(ALICE, ALICE), {"op": "why", "job_id": "0043"}, ADMINS, ondemand=ondemand())
    assert res["ok"] and res["answer"]["job_id"] == "43", res
    assert [c[3] if c[0] == "squeue" else c[-1] for c in slurm.calls] == ["43", "43", "43"]


def test_slurm_without_the_job_is_not_found(store_path, monkeypatch):
    monkeypatch.setattr(live_job, "run_command", FakeSlurm({"44": ("", "")}))
    res = answer(store_path, Caller(ALICE, ALICE), {"op": "why", "job_id": "44"}, ADMINS, ondemand=ondemand())
    assert res["kind"] == "not_found"


def test_running_job_from_slurm(store_path, slurm):
    res = answer(store_path, Caller(ALICE, ALICE), {"op": "why", "job_id": "42"}, ADMINS, ondemand=ondemand())
    assert res["ok"], res
    a = res["answer"]
    assert a["state"] == "RUNNING" and a["risk_submit"]["scored"] == "now"
    # the default bundle has no start stage: nothing to score at start
    assert a["risk_start"] is None


@pytest.mark.parametrize("squeue_out", [
    "1001 alice PENDING extra\n", "1001 alice\n", "alice 1001 PENDING\n", "1001 alice PENDING\n1002 bob PENDING\n",
    "4294967296 alice PENDING\n", "1001 al ice PENDING\n", "1001 alice(0) PENDING\n"])
def test_squeue_output_not_in_slurms_form_is_refused(squeue_out):
    with pytest.raises(NomadeError) as exc:
        parse_squeue_owner(squeue_out, "43")
    assert not isinstance(exc.value, JobNotFound)


def test_squeue_array_lines_of_one_owner():
    assert parse_squeue_owner("1001 alice PENDING\n1001 alice RUNNING\n", "43") == (ALICE, "alice", "PENDING")


def test_hostile_job_name_and_comment_do_not_change_the_owner(store_path, monkeypatch):
    """The job's name and comment are the user's: a fake UserId there neither changes whose job
    it is (squeue's) nor its request; a repeated owner anchor is refused, not guessed."""
    named = PENDING.replace("JobName=long-sim ", "JobName=x UserId=bob(1002) GroupId=bob(1002) TimeLimit=00:00:01 ")
    twice = PENDING.replace("JobId=43 JobName=long-sim ",
                            "JobId=46 JobName=y UserId=alice(1001) GroupId=alice(1001) TimeLimit=1:00 ")
    fake = FakeSlurm({"43": ("1001 alice PENDING\n", named), "46": ("1001 alice PENDING\n", twice)})
    monkeypatch.setattr(live_job, "run_command", fake)
    ok = answer(store_path, Caller(ALICE, ALICE), {"op": "why", "job_id": "43"}, ADMINS, ondemand=ondemand())
    assert ok["ok"] and ok["answer"]["uid"] == ALICE
    assert ok["answer"]["name"] == "x UserId=bob(1002) GroupId=bob(1002) TimeLimit=00:00:01"
    assert "time limit of 48h00m" in [c["text"] for c in ok["answer"]["contributions"]]   # not the name's
    bob = answer(store_path, Caller(BOB, BOB), {"op": "why", "job_id": "43"}, ADMINS, ondemand=ondemand())
    assert bob["kind"] == "denied"
    bad = answer(store_path, Caller(ALICE, ALICE), {"op": "why", "job_id": "46"}, ADMINS, ondemand=ondemand())
    assert bad["ok"] is False and bad["kind"] == "error" and "ambiguous" in bad["error"]


def test_stored_job_without_a_score_is_scored_now(store_path, slurm):
    with open_store(store_path, readonly=True, migrate=False) as store:
        a = explain(store, "1", "lab", ondemand=ondemand())
    assert a.risk_submit["scored"] == "now" and a.outcome == "timeout"
    assert slurm.calls == []   # in the store: Slurm is not asked
    with open_store(store_path, readonly=True, migrate=False) as store:
        assert explain(store, "1", "lab").risk_submit is None   # without on-demand: as before


def test_lua_verdict_matches_the_lua_chunk():
    """The Python recomputation of sbatch's message against submit_model.lua itself."""
    lupa = pytest.importorskip("lupa")
    from nomade.scoring.bundle import load_bundle
    from nomade.scoring.lua_verdict import LuaModel

    bundle = load_bundle(default_bundle_dir())
    model = LuaModel.from_bundle(bundle)
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    M = lua.execute((default_bundle_dir() / bundle.manifest["lua"]["file"]).read_text())
    for cpus, tl, mem in ((2, 172800, 32000.0), (1, 60, 500.0), (64, 600, 4000.0), (8, 86400 * 3, None)):
        req = {"user": "alice", "name": "sim", "cpus": cpus, "nodes": 1, "gpus": 0, "mem_mb": mem,
               "mem_per_cpu": True, "timelimit_s": tl, "submit_time": 1.79e9, "recent_submits": 0}
        t = lua.table()
        for k, v in req.items():
            if v is not None:
                t[k] = v
        risk, reasons, suggestion = M.predict(t)
        v = model.verdict(req)
        assert v.risk == pytest.approx(risk, abs=1e-6)
        assert v.reasons == [reasons[i + 1] for i in range(len(reasons))]
        assert v.suggestion == suggestion
        assert v.warned == (risk >= M.threshold)


@pytest.mark.train
def test_lua_verdict_matches_a_chunk_with_history():
    """With history tables: the reasons from past outcomes and the --time suggestion too."""
    import sys

    import numpy as np
    lupa = pytest.importorskip("lupa")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_lua_parity import _build, _lua_table, _requests

    from nomade.scoring.lua_verdict import LuaModel
    from nomade.scoring.trees import TreeEnsemble

    jobs, hist, trees, cal, text = _build(True, n=1500)
    model = LuaModel(TreeEnsemble(trees), cal, hist, True, 0.3, "v-test")
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    M = lua.execute(text)
    warned = suggested = 0
    for r in _requests(jobs, np.random.default_rng(3), 400):
        risk, reasons, suggestion = M.predict(_lua_table(lua, r))
        v = model.verdict(r)
        assert v.risk == pytest.approx(risk, abs=1e-6)
        assert v.reasons == [reasons[i + 1] for i in range(len(reasons))], r
        assert v.suggestion == suggestion, r
        warned += v.warned
        suggested += suggestion is not None
    assert warned and suggested   # both paths were exercised


@pytest.mark.parametrize("text, want", [
    ("2026-12-04T08:30:00 Priority\n", ("Priority", True, "")),
    ("N/A Resources\n", ("Resources", False, "")),
    ("N/A ReqNodeNotAvail(UnavailableNodes:node[1-2])\n", ("ReqNodeNotAvail", False, "UnavailableNodes:node[1-2]")),
    ("N/A Priority\nN/A Priority\n", None),                 # one job, one line
    ("N/A Prio rity\n", None), ("2026-12-04 Priority\n", None), ("\n", None),
    ("N/A Priority\x1b[2J\n", None), ("N/A JobHeldUser; rm -rf /\n", None),
])
def test_squeue_start_parser_takes_only_slurms_form(text, want):
    from nomade.live_job import parse_squeue_start
    got = parse_squeue_start(text)
    if want is None:
        assert got is None
    else:
        assert (got["reason"], got["expected_start"] is not None, got["nodes"]) == want
