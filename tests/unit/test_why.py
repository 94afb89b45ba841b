"""nomade-why: explanation content, and privacy enforced by the service (SO_PEERCRED)."""

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from nomade.errors import AccessDenied
from nomade.jobrecord import JobRecord
from nomade.report import JobNotFound
from nomade.store.db import open_store
from nomade.store.jobs import upsert_jobs
from nomade.why import explain, format_why, parse_reasons
from nomade.whyservice.access import Caller, check_access
from nomade.whyservice.client import ask
from nomade.whyservice.server import WhyServer, answer

ME = os.getuid()


def rec(job_id, state, uid=ME, user="alice", name="sim", elapsed=600, limit=3600, submit=0.0, **kw):
    return JobRecord(cluster="lab", job_id=job_id, user=user, uid=uid, name=name, state=state,
                     is_final=1 if state not in ("PENDING", "RUNNING") else 0, elapsed_s=elapsed,
                     timelimit_s=limit, req_cpus=2, alloc_cpus=2, partition="debug", exit_code=0,
                     submit_time=submit, **kw)


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "nomade.db"
    with open_store(path) as store:
        upsert_jobs(store, [
            rec("1", "TIMEOUT", elapsed=3600, submit=1), rec("2", "TIMEOUT", elapsed=3600, submit=2),
            rec("3", "COMPLETED", elapsed=5000, limit=7200, submit=3),
            rec("4", "OUT_OF_MEMORY", submit=4, max_rss_mb=3000.0),
            rec("10", "PENDING", submit=10),
            rec("20", "COMPLETED", uid=ME + 12345, user="bob", submit=11),
        ], "test")
        with store.transaction() as conn:
            conn.execute("INSERT INTO scores VALUES ('lab','10','submit','m1',0.82,'HIGH',?,1.0)",
                         (json.dumps([{"feature": "timelimit_s", "value": 3600, "contribution": 1.2},
                                      {"feature": "user_fail_rate", "value": 0.6, "contribution": 0.7},
                                      {"feature": "req_cpus", "value": 2, "contribution": -0.1}]),))
    return path


def test_explain_pending_job(store_path):
    with open_store(store_path, readonly=True, migrate=False) as store:
        a = explain(store, "10")
    assert a.risk_submit["risk"] == 0.82 and a.risk_start is None
    assert [c.feature for c in a.contributions][:2] == ["timelimit_s", "user_fail_rate"]
    assert a.contributions[2].direction == "lowers risk"
    assert {s.job_id for s in a.similar} == {"1", "2", "3", "4"} and "20" not in {s.job_id for s in a.similar}
    assert a.similar_summary.startswith("3 of 4 similar past jobs failed (2 timeout, 1 oom)")
    assert any(r.startswith("--time=01:49:00") for r in a.recommendations)  # 5000 s * 1.3
    assert any(r.startswith("--mem=5G") for r in a.recommendations)
    text = format_why(a.as_dict())
    assert "Risk at submit: 82% CRITICAL" in text   # the scale's level of 0.82, whatever was stored
    # the contribution in points of this job's risk, never in log-odds (tests/unit/test_messages.py)
    assert "  time limit of 1h00m: raises the risk by about 24 points" in text


def test_explain_unknown_job(store_path):
    with open_store(store_path, readonly=True, migrate=False) as store:
        with pytest.raises(JobNotFound):
            explain(store, "999")


def test_parse_reasons_strings():
    (c,) = parse_reasons(json.dumps(["time limit shorter than similar jobs"]))
    assert c.feature.startswith("time limit") and c.weight is None


def test_access_rules():
    job = {"job_id": "1", "uid": 1001, "user": "alice"}
    check_access(Caller(1001, 1001), job, "nomade-admins")
    check_access(Caller(0, 0), job, "nomade-admins")
    with pytest.raises(AccessDenied):
        check_access(Caller(1002, 1002), job, "no-such-group-xyz")


def test_answer_refuses_other_users_job(store_path):
    me = Caller(ME, os.getgid())
    if ME == 0:
        pytest.skip("root sees every job")
    r = answer(store_path, me, {"job_id": "20"}, "no-such-group-xyz")
    assert r["ok"] is False and r["kind"] == "denied"


def test_answer_bad_requests(store_path):
    me = Caller(ME, os.getgid())
    assert answer(store_path, me, {}, "g")["kind"] == "bad_request"
    assert answer(store_path, me, {"job_id": "x" * 100}, "g")["kind"] == "bad_request"
    assert answer(store_path, me, {"job_id": "999"}, "g")["kind"] == "not_found"


@pytest.fixture
def service(store_path):
    sock_dir = Path(tempfile.mkdtemp(prefix="nomade-why-"))  # world-traversable, unlike tmp_path
    os.chmod(sock_dir, 0o755)
    sock = sock_dir / "why.sock"
    server = WhyServer(sock, store_path, "no-such-group-xyz")
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield sock
    server.shutdown()
    server.server_close()
    shutil.rmtree(sock_dir, ignore_errors=True)


def test_service_roundtrip_own_job(service):
    a = ask(service, "10")
    assert a["job_id"] == "10" and a["risk_submit"]["risk"] == 0.82
    assert oct(service.stat().st_mode)[-3:] == "666"
    with pytest.raises(JobNotFound):
        ask(service, "999")


def test_service_not_running(tmp_path):
    from nomade.errors import NomadeError
    with pytest.raises(NomadeError, match="not running"):
        ask(tmp_path / "nope.sock", "1")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
@pytest.mark.skipif(not os.access("/usr/bin/python3", os.X_OK), reason="needs a system python3")
def test_service_identifies_caller_by_peercred(service):
    """A process running as `nobody` asks about root's job (refused) - identity from the kernel."""
    nobody = pwd.getpwnam("nobody")
    code = ("import sys; from nomade.whyservice.client import ask\n"
            "try:\n  ask(sys.argv[1], '10'); print('ALLOWED')\n"
            "except Exception as e:\n  print(type(e).__name__, e)\n")
    src = str(Path(__file__).resolve().parents[2] / "src")
    out = subprocess.run(["/usr/bin/python3", "-c", code, str(service)], capture_output=True, text=True,
                         timeout=60, env={"PYTHONPATH": src, "PATH": os.environ["PATH"]},
                         preexec_fn=lambda: (os.setgid(nobody.pw_gid), os.setuid(nobody.pw_uid)))
    assert out.stdout.startswith("AccessDenied job 10 belongs to another user"), out.stdout + out.stderr


def test_why_cli_direct(tmp_path, store_path):
    from click.testing import CliRunner

    from nomade.cli.main import cli
    res = CliRunner().invoke(cli, ["--data-dir", str(store_path.parent), "why", "10", "--direct", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["risk_submit"]["level"] == "CRITICAL"


def test_similar_jobs_are_the_owners_by_uid_and_cluster(tmp_path):
    """Similar jobs are selected by the job's uid on the job's cluster: a row that carries the
    user *name* alice under another uid (a forged or renamed account), and alice's jobs on another
    cluster, are never shown as hers."""
    path = tmp_path / "nomade.db"
    with open_store(path) as store:
        upsert_jobs(store, [rec("1", "TIMEOUT", submit=1), rec("10", "PENDING", submit=10),
                            rec("66", "COMPLETED", uid=ME + 999, user="alice", submit=5),
                            JobRecord(cluster="other", job_id="77", user="alice", uid=ME, name="sim",
                                      state="FAILED", is_final=1, partition="debug", req_cpus=2,
                                      submit_time=6.0)], "test")
    with open_store(path, readonly=True, migrate=False) as store:
        a = explain(store, "10", "lab")
    assert {s.job_id for s in a.similar} == {"1"}


def test_running_job_owner_is_slurmds_not_the_requests(tmp_path):
    """A job known only from its Prolog record: its owner is the record's slurmd identity."""
    from nomade.hooks.spool import write_record
    from nomade.ingest.hook_spool import load_hook_spool
    from nomade.why import job_owner

    spool = tmp_path / "spool"
    write_record(spool, "start", "55", {"job": {"job_id": "55", "user": "alice", "uid": ME},
                                        "request": {"user": "bob", "uid": ME + 1, "name": "x"}})
    with open_store(tmp_path / "nomade.db") as store:
        load_hook_spool(store, spool, cluster="lab")
        owner = job_owner(store, "55", "lab")
        assert (owner["user"], owner["uid"], owner["cluster"]) == ("alice", ME, "lab")
        with pytest.raises(JobNotFound):
            job_owner(store, "55", "othercluster")


def test_why_text_has_words_not_placeholders():
    """Unknown user, state, run time and limit read as words; no '?' or 'None' reaches users."""
    a = {"job_id": "5", "name": None, "user": None, "state": None, "risk_submit": None, "risk_start": None,
         "similar_summary": "1 of 1 similar past jobs failed",
         "similar": [{"job_id": "4", "name": "sim", "state": None, "elapsed_s": None,
                      "timelimit_s": None, "why_similar": "same name"}]}
    text = format_why(a)
    assert "?" not in text and "None" not in text and "nan" not in text
    assert "of an unknown user: state unknown" in text and "run time unknown, no time limit known" in text


def test_one_rule_picks_the_store_or_the_service(tmp_path, monkeypatch):
    """nomade-why, report and similarity --find-similar read the store themselves for root and for
    a caller who can read it; everyone else asks the service; --direct/--service decide when given."""
    import types

    from nomade.whyservice.client import reads_store
    cfg = types.SimpleNamespace(store_path=tmp_path / "nomade.db")
    readable = set()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) in readable)
    assert not reads_store(cfg)
    assert reads_store(cfg, direct=True)
    readable.add(cfg.store_path)
    assert reads_store(cfg) and not reads_store(cfg, direct=False)
    readable.clear()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert reads_store(cfg)
