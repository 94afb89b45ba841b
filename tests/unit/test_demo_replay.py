"""`nomade demo --serve`'s live replay (nomade.demo_replay) over a tiny synthetic trace and a fake
clock: jobs move PENDING -> RUNNING -> ended, are scored at submit (and start), a high-risk job
fires the prediction alert, each state is written once, and the thread stops promptly."""

import json
import os
import threading
import time

import pytest

from nomade import config as config_mod
from nomade import demo_replay as dr
from nomade.alerts.channels.base import Channel
from nomade.config import load_config
from nomade.errors import ConfigError
from nomade.ingest.swf import import_swf
from nomade.jobrecord import JobRecord
from nomade.store import alerts as store_alerts
from nomade.store import jobs as store_jobs
from nomade.store import scores as store_scores
from nomade.store.db import open_store
from nomade.store.job_queries import job_row

CLUSTER = "tiny"
SOURCE = "swf:tiny"
T = 1_000_000.0


class FakeClock:
    def __init__(self, t=1_800_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


class Fake(Channel):
    name = "fake"

    def __init__(self):
        self.got = []

    def send(self, group, timeout_s):
        self.got.append(group)


def rec(job_id, submit, run, state="COMPLETED", uid=7, wait=None):
    start = None if wait is None else submit + wait
    return JobRecord(cluster=CLUSTER, job_id=str(job_id), job_id_raw=job_id, user=f"u{uid}", uid=uid,
                     name=f"app{job_id}", partition="p1", submit_time=submit, req_cpus=4,
                     timelimit_s=3600, state=state, state_raw=state, is_final=1, elapsed_s=run,
                     start_time=start, end_time=None if start is None else start + run,
                     alloc_cpus=4, total_cpu_s=run * 3.0)


def trace():
    """Three history jobs (one still running at the cut) and three replayed ones: one with a
    recorded wait, one without (SWF wait -1: starts when submitted), one that fails."""
    return [rec(1, T, 100), rec(2, T + 100, 100), rec(3, T + 200, 5000),
            rec(4, T + 1000, 600, wait=300), rec(5, T + 1200, 60), rec(6, T + 1500, 900, state="FAILED", uid=8)]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("NOMADE_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(config_mod, "SYSTEM_CONFIG", tmp_path / "no-such-system.toml")


@pytest.fixture
def store(tmp_path):
    st = open_store(tmp_path / "nomade.db")
    yield st
    st.close()


def fixed_scores(risky=("6",)):
    calls = []

    def score(job, stage):
        calls.append((job.record.job_id, stage))
        risk = 0.9 if job.record.job_id in risky else 0.1
        return risk, "HIGH" if risk > 0.5 else "LOW", "v1", json.dumps([{"feature": "timelimit_s"}])
    score.calls = calls
    return score


def test_plan_holds_back_the_last_jobs_and_those_running_at_the_cut():
    plan = dr.plan_from_records(trace(), CLUSTER, SOURCE, max_jobs=3)
    assert plan.cut == T + 1000
    assert [j.record.job_id for j in plan.jobs] == ["3", "4", "5", "6"]     # job 3 runs past the cut
    assert [plan.imported(r) for r in trace()] == [True, True, False, False, False, False]
    assert plan.jobs[2].start == T + 1200 and plan.jobs[2].end == T + 1260    # no wait recorded
    assert plan.jobs[1].start == T + 1300 and plan.jobs[1].end == T + 1900
    with pytest.raises(ConfigError):
        dr.plan_from_records(trace(), CLUSTER, SOURCE, max_jobs=0)


def test_recent_submits_count_the_owners_hour_before():
    plan = dr.plan_from_records(trace(), CLUSTER, SOURCE, max_jobs=3)
    assert {j.record.job_id: j.recent for j in plan.jobs} == {"3": 2, "4": 3, "5": 4, "6": 0}


def test_states_move_pending_running_ended_each_written_once(store, monkeypatch):
    plan = dr.plan_from_records(trace(), CLUSTER, SOURCE, max_jobs=3)
    written = []
    real = store_jobs.upsert_jobs

    def spy(st, records, source, now=None):
        records = list(records)
        written.extend((r.job_id, r.state) for r in records)
        counts = real(st, records, source, now=now)
        assert counts.unchanged == 0                 # every write changes the job
        return counts
    monkeypatch.setattr(store_jobs, "upsert_jobs", spy)
    clock, score = FakeClock(), fixed_scores()
    replay = dr.Replay(store, plan, speed=100.0, score=score, clock=clock)
    seen = {}
    for _ in range(200):
        replay.step()
        for j in plan.jobs:
            row = job_row(store, CLUSTER, j.record.job_id)
            if row is not None and seen.get(j.record.job_id, [None])[-1] != row["state"]:
                seen.setdefault(j.record.job_id, []).append(row["state"])
        if replay.done:
            break
        clock.t += 1.0
    assert replay.done
    assert seen == {"3": ["PENDING", "RUNNING", "COMPLETED"], "4": ["PENDING", "RUNNING", "COMPLETED"],
                    "5": ["PENDING", "RUNNING", "COMPLETED"], "6": ["PENDING", "RUNNING", "FAILED"]}
    assert len(written) == len(set(written)) == 12             # nothing written twice
    assert sorted(score.calls) == sorted(set(score.calls))     # each stage scored once
    assert {s for _, s in score.calls} == {"submit", "start"}
    final = job_row(store, CLUSTER, "4")
    assert final["is_final"] == 1 and final["elapsed_s"] == 600          # the trace's outcome
    # times on the demo clock: trace moment t -> wall0 + (t - cut) / speed
    assert final["submit_time"] == pytest.approx(replay.wall0)
    assert final["start_time"] == pytest.approx(replay.wall0 + 3.0)
    assert final["end_time"] == pytest.approx(replay.wall0 + 9.0)
    running = job_row(store, CLUSTER, "6")
    assert running["state"] == "FAILED" and running["uid"] == 8
    scores = store_scores.job_scores(store, "6", [CLUSTER])
    assert sorted(s["stage"] for s in scores) == ["start", "submit"] and {s["risk"] for s in scores} == {0.9}
    assert replay.totals.jobs_written == 12 and replay.totals.scores_written == 8


def test_a_pending_record_carries_no_outcome(store):
    plan = dr.plan_from_records(trace(), CLUSTER, SOURCE, max_jobs=3)
    replay = dr.Replay(store, plan, speed=100.0, clock=FakeClock())
    replay.step()
    row = job_row(store, CLUSTER, "4")
    assert row["state"] == "PENDING" and row["is_final"] == 0
    assert row["start_time"] is None and row["end_time"] is None and row["elapsed_s"] is None
    assert row["total_cpu_s"] is None and job_row(store, CLUSTER, "5") is None   # not submitted yet


def test_one_long_pause_still_shows_every_state(store):
    plan = dr.plan_from_records(trace(), CLUSTER, SOURCE, max_jobs=3)
    clock = FakeClock()
    replay = dr.Replay(store, plan, speed=100.0, clock=clock)
    replay.step()
    clock.t += 10_000          # the whole trace is past: still one state per step
    states = []
    while not replay.done:
        replay.step()
        states.append(job_row(store, CLUSTER, "5")["state"])
    assert states[:3] == ["PENDING", "RUNNING", "COMPLETED"]


def test_speed_must_be_positive(store):
    plan = dr.plan_from_records(trace(), CLUSTER, SOURCE, max_jobs=3)
    for bad in (0.0, -5.0, float("inf"), float("nan")):
        with pytest.raises(ConfigError):
            dr.Replay(store, plan, speed=bad)


def test_high_risk_job_fires_the_prediction_alert(tmp_path):
    cfg = load_config(None, {"data_dir": str(tmp_path), "ml.alerts.high_risk_threshold": 0.5})
    plan = dr.plan_from_records(trace(), CLUSTER, SOURCE, max_jobs=3)
    clock, channel = FakeClock(), Fake()
    demo = dr.LiveDemo(cfg, plan, speed=100.0, clock=clock, score=fixed_scores(), found={},
                       channels=[channel]).open()
    try:
        while not demo.replay.done:
            demo.tick()
            clock.t += 2.0
        alerts = [a for a in store_alerts.list_alerts(demo.store) if a["rule"] == "high_risk_job"]
    finally:
        demo.close()
    assert [a["labels"]["job_id"] for a in alerts] == ["6"]
    assert alerts[0]["state"] == "firing"
    assert any("job 6 of u8" in n.summary for g in channel.got for n in g.notifications)


def test_collectors_run_and_only_those_that_work_go_on(tmp_path):
    from nomade.collectors.base import Collector, CollectorSkipped, Metric

    class Works(Collector):
        name, interval_s = "works", 60.0

        def collect(self, ctx):
            return [Metric.of("demo.value_count", 1.0)]

    class Absent(Collector):
        name, interval_s = "absent", 60.0

        def collect(self, ctx):
            raise CollectorSkipped("not on this machine")

    cfg = load_config(None, {"data_dir": str(tmp_path)})
    plan = dr.plan_from_records(trace(), CLUSTER, SOURCE, max_jobs=3)
    clock = FakeClock()
    demo = dr.LiveDemo(cfg, plan, clock=clock, score=fixed_scores(), found={"works": Works, "absent": Absent},
                       channels=[], collect_every_s=5.0).open()
    try:
        demo.tick()
        assert demo.monitor.names == ["works"]
        clock.t += 5.0
        assert [r.name for r in demo.monitor.cycle()] == ["works"]
    finally:
        demo.close()


def test_stop_returns_promptly(tmp_path):
    cfg = load_config(None, {"data_dir": str(tmp_path)})
    plan = dr.plan_from_records(trace(), CLUSTER, SOURCE, max_jobs=3)
    demo = dr.LiveDemo(cfg, plan, score=fixed_scores(), found={}, channels=[], tick_s=60.0).start()
    time.sleep(0.3)
    started = time.monotonic()
    assert demo.stop(timeout_s=5.0)
    assert time.monotonic() - started < 2.0
    assert not any(t.name == "nomade-demo-replay" for t in threading.enumerate())


def test_swf_file_import_and_replay_cover_every_job_once(tmp_path, store):
    """The plan read from an SWF file (a malformed, hostile line among the jobs) and the demo's
    import with ``keep=plan.imported``: each job is either imported or replayed."""
    lines = ["; UnixStartTime: 1000000", "; MaxProcs: 64"]
    for n in range(1, 11):
        lines.append(f"{n} {n * 100} -1 50 4 -1 -1 4 3600 -1 1 {n % 3} -1 {n} -1 1 -1 -1")
    lines.insert(5, "7\x1b[31m 700 -1 50 4 u1;rm -rf / \n 1 2")          # malformed: quarantined
    path = tmp_path / "tiny.swf"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    plan = dr.plan_replay(path, max_jobs=4)
    assert plan.cluster == "tiny" and plan.source == "swf:tiny"
    assert [j.record.job_id for j in plan.jobs] == ["7", "8", "9", "10"]
    res = import_swf(store, path, keep=plan.imported)
    assert res.counts.new == 6 and res.counts.quarantined == 2      # the newline made two lines
    clock = FakeClock()
    replay = dr.Replay(store, plan, speed=1000.0, clock=clock)
    while not replay.done:
        replay.step()
        clock.t += 1.0
    ids = [str(n) for n in range(1, 11)]
    assert all(job_row(store, "tiny", i)["state"] == "COMPLETED" for i in ids)


def test_cli_refuses_a_bad_speed(tmp_path):
    from click.testing import CliRunner

    from nomade.cli.main import cli
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "demo", "--serve", "--speed", "0"])
    assert res.exit_code == 2 and "--speed" in res.output
    assert not (tmp_path / "nomade.db").exists()


def test_runtime_safe_imports():
    import subprocess
    import sys
    probe = ("import sys, nomade.demo_replay\n"
             "heavy = [m for m in ('torch', 'sklearn', 'lightgbm', 'matplotlib', 'pandas', 'starlette')"
             " if m in sys.modules]\n"
             "assert not heavy, heavy\n")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
