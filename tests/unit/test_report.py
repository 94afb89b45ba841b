"""The seff/jobstats-style report: numbers, outcome classes, prediction verdicts, sbatch notes."""

import json

import pytest

from nomade.jobrecord import JobRecord
from nomade.report import (JobNotFound, ScoreSeen, build_report, format_report, load_report,
                           mem_option, slurm_time)
from nomade.store.db import open_store
from nomade.store.jobs import upsert_jobs


def job(**kw):
    base = dict(cluster="lab", job_id="100", user="alice", uid=1001, name="sim", state="COMPLETED",
                is_final=1, exit_code=0, exit_signal=0, elapsed_s=600, timelimit_s=3600, alloc_cpus=4,
                req_cpus=4, alloc_nodes=1, req_nodes=1, req_mem_mb=8000, req_mem_per_cpu=0,
                total_cpu_s=2400, max_rss_mb=1000, node_list="n1", submit_time=1000.0)
    base.update(kw)
    return base


def test_efficiencies():
    r = build_report(job())
    assert r.failure_class == "success"
    assert r.cpu_efficiency == pytest.approx(2400 / (600 * 4))
    assert r.mem_efficiency == pytest.approx(1000 / 8000) and r.time_used == pytest.approx(600 / 3600)
    assert any(n.startswith("Memory efficiency 12%") and "--mem=2G" in n for n in r.notes)


def test_mem_per_cpu_request():
    r = build_report(job(req_mem_mb=2000, req_mem_per_cpu=1, max_rss_mb=400))
    assert r.mem_requested_mb == 8000
    assert any("--mem-per-cpu=200M" in n for n in r.notes)


def test_timeout_note_names_time_option():
    r = build_report(job(state="TIMEOUT", elapsed_s=3600, exit_code=0))
    assert r.failure_class == "timeout"
    assert any("--time=01:30:00" in n for n in r.notes)


def test_oom_note_names_mem_option():
    r = build_report(job(state="OUT_OF_MEMORY", max_rss_mb=7990, exit_code=0, exit_signal=9))
    assert r.failure_class == "oom" and any("--mem=12G" in n for n in r.notes)


def test_failed_and_system_and_cancelled():
    assert "exited with code 2" in build_report(job(state="FAILED", exit_code=2)).notes[0]
    assert "--requeue" in build_report(job(state="NODE_FAIL")).notes[0]
    r = build_report(job(state="CANCELLED", cancelled_by=1001))
    assert r.failure_class == "cancelled_owner" and r.notes[-1:] != ["--requeue"]


def test_low_cpu_efficiency_note():
    r = build_report(job(total_cpu_s=600))
    assert any("--cpus-per-task=1" in n for n in r.notes)


def test_prediction_verdicts():
    hi = [ScoreSeen("start", 0.9, "HIGH", "m1")]
    lo = [ScoreSeen("submit", 0.1, "LOW", "m1")]
    assert "warned, and it failed (timeout)" in build_report(job(state="TIMEOUT"), hi).prediction
    assert "false alarm" in build_report(job(), hi).prediction
    assert "missed" in build_report(job(state="FAILED", exit_code=1), lo).prediction
    assert build_report(job(), []).prediction == "no risk was recorded for this job"
    assert "not ended" in build_report(job(state="RUNNING", is_final=0), hi).prediction


def test_helpers():
    assert slurm_time(59) == "00:01:00" and slurm_time(90000) == "1-01:00:00"
    assert mem_option(300) == "300M" and mem_option(1500) == "2G"


def test_load_from_store_and_text(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        upsert_jobs(store, [JobRecord(**{k: v for k, v in job(state="TIMEOUT").items() if k != "is_final"},
                                      is_final=1)], "test")
        with store.transaction() as conn:
            conn.execute("INSERT INTO scores VALUES ('lab','100','start','m1',0.85,'HIGH','[]',1.0)")
        r = load_report(store, "100")
        assert r.scores[0].risk == 0.85
        text = format_report(r)
        assert "State: TIMEOUT" in text and "Outcome: timeout" in text and "--time=" in text
        assert "Prediction: risk 85% (CRITICAL) at start (model m1): warned, and it failed (timeout)" in text
        json.dumps(r.as_dict())
        with pytest.raises(JobNotFound):
            load_report(store, "999")


def test_early_warning_events_are_shown(tmp_path):
    """The recorder's memory projection (events table) appears in the report and in nomade-why."""
    from nomade.why import explain, format_why

    msg = "job 100 on n1: memory 900 of 1000 MiB, limit in about 12 min"
    with open_store(tmp_path / "s.db") as store:
        upsert_jobs(store, [JobRecord(**{k: v for k, v in job(state="OUT_OF_MEMORY").items()
                                         if k != "is_final"}, is_final=1)], "test")
        with store.transaction() as conn:
            conn.execute("INSERT INTO events (cluster, job_id, node, kind, created_at, detail) "
                         "VALUES ('lab', '100', 'n1', 'memory_projection', 5.0, ?)",
                         (json.dumps({"message": msg}),))
        r = load_report(store, "100")
        assert r.warnings == [f"memory_projection: {msg}"]
        assert f"Early warning: memory_projection: {msg}" in format_report(r)
        a = explain(store, "100").as_dict()
        assert a["warnings"] == r.warnings and "Early warning: memory_projection" in format_why(a)


def test_report_from_epilog_record_only(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        rec = {"job_id": "7", "kind": "end", "job": {"job_id": "7", "uid": 1, "exit_code": 3, "exit_signal": 0,
                                                     "node": "n1"}}
        with store.transaction() as conn:
            conn.execute("INSERT INTO hook_records VALUES ('', '7', 'end', 'n1', 1.0, ?, 1.0)", (json.dumps(rec),))
        r = load_report(store, "7")
        assert r.state == "FAILED" and r.exit_code == 3 and r.source == "epilog"


def test_report_cli_json(tmp_path):
    from click.testing import CliRunner

    from nomade.cli.main import cli
    with open_store(tmp_path / "nomade.db") as store:
        upsert_jobs(store, [JobRecord(**{k: v for k, v in job().items() if k != "is_final"}, is_final=1)], "t")
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "report", "100", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["failure_class"] == "success"


# ---------------------------------------------------------------- several clusters never mix
def _two_clusters(tmp_path):
    """Job 100 on cluster 'lab' (alice, TIMEOUT) and on cluster 'prod' (bob, COMPLETED)."""
    lab = job(state="TIMEOUT")
    prod = job(cluster="prod", user="bob", uid=1002, state="COMPLETED", node_list="p1")
    store = open_store(tmp_path / "s.db")
    upsert_jobs(store, [JobRecord(**{k: v for k, v in j.items() if k != "is_final"}, is_final=1)
                        for j in (lab, prod)], "test")
    with store.transaction() as conn:
        conn.execute("INSERT INTO scores VALUES ('lab','100','start','m1',0.85,'HIGH','[]',1.0)")
        conn.execute("INSERT INTO scores VALUES ('prod','100','start','m1',0.05,'LOW','[]',1.0)")
        conn.execute("INSERT INTO scores VALUES ('','100','submit','m0',0.99,'HIGH','[]',0.5)")
        conn.execute("INSERT INTO events (cluster, job_id, node, kind, created_at, detail) "
                     "VALUES ('lab', '100', 'n1', 'memory_projection', 5.0, '{\"message\": \"lab only\"}')")
        conn.execute("INSERT INTO job_summaries (cluster, job_id, peak_rss_mb, sample_count, nodes, updated_at) "
                     "VALUES ('prod', '100', 7777, 3, 1, 1.0)")
    return store


def test_same_job_id_on_two_clusters_never_mixes(tmp_path):
    from nomade.report import AmbiguousJob
    with _two_clusters(tmp_path) as store:
        lab = load_report(store, "100", "lab")
        prod = load_report(store, "100", "prod")
        assert (lab.cluster, lab.user, lab.state) == ("lab", "alice", "TIMEOUT")
        assert (prod.cluster, prod.user, prod.state) == ("prod", "bob", "COMPLETED")
        # each its own scores; the cluster-less one belongs to neither in a store of two clusters
        assert [(s.risk, s.model_version) for s in lab.scores] == [(0.85, "m1")]
        assert [(s.risk, s.model_version) for s in prod.scores] == [(0.05, "m1")]
        assert lab.warnings == ["memory_projection: lab only"] and prod.warnings == []
        assert prod.mem_peak_mb == 7777 and lab.mem_peak_mb == 1000
        with pytest.raises(AmbiguousJob, match=r"job 100 is in the store for several clusters \(lab, prod\)"):
            load_report(store, "100")
        with pytest.raises(JobNotFound):
            load_report(store, "100", "other")


def test_cluster_less_score_counts_in_a_single_cluster_store(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        upsert_jobs(store, [JobRecord(**{k: v for k, v in job().items() if k != "is_final"}, is_final=1)], "t")
        with store.transaction() as conn:
            conn.execute("INSERT INTO scores VALUES ('','100','submit','m0',0.4,'LOW','[]',0.5)")
        assert [s.risk for s in load_report(store, "100").scores] == [0.4]
        assert [s.risk for s in load_report(store, "100", "lab").scores] == [0.4]


def test_report_cli_asks_for_the_cluster_when_two_have_the_job(tmp_path, capsys):
    from nomade.cli.main import cli, run_cli
    _two_clusters(tmp_path).close()
    (tmp_path / "s.db").rename(tmp_path / "nomade.db")
    for suffix in ("-wal", "-shm"):
        if (tmp_path / ("s.db" + suffix)).exists():
            (tmp_path / ("s.db" + suffix)).rename(tmp_path / ("nomade.db" + suffix))
    assert run_cli(cli, ["--data-dir", str(tmp_path), "report", "100"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "several clusters (lab, prod)" in err and "--cluster" in err
    assert run_cli(cli, ["--data-dir", str(tmp_path), "report", "100", "--cluster", "prod"]) == 0
    out = capsys.readouterr().out
    assert "User: bob" in out and "risk 5%" in out and "99%" not in out


# ---------------------------------------------------------------- placeholders never reach users
UNKNOWN = dict(exit_code=None, exit_signal=None, elapsed_s=None, timelimit_s=None, total_cpu_s=None,
               max_rss_mb=None, req_mem_mb=None, alloc_cpus=None, req_cpus=None, node_list=None,
               user=None)


@pytest.mark.parametrize("state", ["FAILED", "OUT_OF_MEMORY", "TIMEOUT", "COMPLETED", "RUNNING", None])
def test_unknown_values_become_words(state):
    r = build_report(job(state=state, is_final=state not in (None, "RUNNING"), **UNKNOWN))
    text = format_report(r)
    for bad in ("None", "nan", "?", "0M"):
        assert bad not in text, (bad, text)
    if state == "FAILED":
        assert "its exit code is unknown" in text and "exit code unknown" in text
    if state == "OUT_OF_MEMORY":
        assert "Ask for more: a larger --mem." in text
    assert "Wall time: unknown" in text and "CPU efficiency: unknown" in text
    assert "Memory efficiency: unknown" in text and "User: unknown" in text


def test_nan_values_become_words():
    nan = float("nan")
    r = build_report(job(state="OUT_OF_MEMORY", elapsed_s=nan, max_rss_mb=nan, total_cpu_s=nan))
    text = format_report(r)
    assert "nan" not in text.lower() and "Wall time: unknown" in text
    assert "8000 MiB requested; the peak is unknown" in text or "7.81 GiB requested; the peak is unknown" in text


def test_failed_note_with_unknown_exit_code():
    note = build_report(job(state="FAILED", exit_code=None)).notes[0]
    assert note.startswith("The job's program failed; its exit code is unknown") and "None" not in note


# ---------------------------------------------------------------- the why-service's access rule
def _store_of_alice_and_bob(tmp_path):
    with open_store(tmp_path / "nomade.db") as store:
        upsert_jobs(store, [JobRecord(**{k: v for k, v in j.items() if k != "is_final"}, is_final=1)
                            for j in (job(), job(job_id="200", user="bob", uid=1002))], "t")


def _as(monkeypatch, uid, gid=None):
    from nomade.cli import report_cmd
    from nomade.whyservice.access import Caller
    monkeypatch.setattr(report_cmd, "current_caller", lambda: Caller(uid=uid, gid=uid if gid is None else gid))


def test_report_of_another_users_job_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    from nomade.cli.main import cli, run_cli
    monkeypatch.delenv("NOMADE_PRIVACY_ADMIN_GROUP", raising=False)
    _store_of_alice_and_bob(tmp_path)
    _as(monkeypatch, 1001)                                       # alice
    assert run_cli(cli, ["--data-dir", str(tmp_path), "report", "100"]) == 0
    assert "User: alice" in capsys.readouterr().out
    assert run_cli(cli, ["--data-dir", str(tmp_path), "report", "200", "--json"]) == 1
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1 and "job 200 belongs to another user" in out.err


def test_report_by_root_and_admin_group_member(tmp_path, monkeypatch, capsys):
    import grp
    import pwd

    from nomade.cli.main import cli, run_cli
    _store_of_alice_and_bob(tmp_path)
    _as(monkeypatch, 0)
    assert run_cli(cli, ["--data-dir", str(tmp_path), "report", "200"]) == 0
    nobody = pwd.getpwnam("nobody")
    monkeypatch.setenv("NOMADE_PRIVACY_ADMIN_GROUP", grp.getgrgid(nobody.pw_gid).gr_name)
    _as(monkeypatch, nobody.pw_uid, nobody.pw_gid)
    assert run_cli(cli, ["--data-dir", str(tmp_path), "report", "200"]) == 0
    assert "User: bob" in capsys.readouterr().out
    monkeypatch.setenv("NOMADE_PRIVACY_ADMIN_GROUP", "no-such-group-here")
    assert run_cli(cli, ["--data-dir", str(tmp_path), "report", "200"]) == 1
