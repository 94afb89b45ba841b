"""Recorder coverage: the store query on SQLite and PostgreSQL (window, short jobs, array tasks
recorded under their raw id, other clusters), the collector's metrics and threshold, its alert
rule, and syscheck without a store."""

import pytest

from nomade.collectors import coverage
from nomade.collectors.base import CollectContext
from nomade.ingest.spool import rebuild_summaries
from nomade.jobrecord import JobRecord
from nomade.recorder.sample import SAMPLE_COLUMNS
from nomade.store import recorder as recorder_store
from nomade.store.db import open_store
from nomade.store.jobs import upsert_jobs

NOW = 1_750_000_000.0
H = 3600.0


@pytest.fixture
def store(store_target):
    s = open_store(store_target)      # SQLite, then PostgreSQL (tests/pg_fixture.py)
    yield s
    s.close()


def _job(job_id, end, run=600.0, cluster="lab", raw=None, final=1, **kw):
    return JobRecord(cluster=cluster, job_id=job_id, job_id_raw=raw if raw is not None else int(job_id.split("_")[0]),
                     user="alice", uid=1001, submit_time=end - run - 60, start_time=end - run, end_time=end,
                     elapsed_s=int(run), state="COMPLETED", is_final=final, **kw)


def _sampled(store, cluster, *job_ids):
    rows = [(cluster, j, "n1", NOW - 5 * H + i) + tuple(None for _ in SAMPLE_COLUMNS) + ("{}",)
            for j in job_ids for i in range(2)]
    recorder_store.add_samples(store, rows)
    rebuild_summaries(store, {(cluster, j) for j in job_ids}, now=NOW)


def _fill(store):
    jobs = [_job(str(100 + i), NOW - (i + 1) * H) for i in range(10)]          # 10 ended in 24 h
    jobs += [_job("200", NOW - 30 * H),                                          # before the window
             _job("201", NOW - H, run=10.0),                                     # too short
             _job("202", NOW - H, final=0, state_raw="RUNNING"),                 # not ended
             _job("300_1", NOW - 2 * H, raw=301, array_job_id=300, array_task_id="1"),
             _job("100", NOW - H, cluster="other")]
    upsert_jobs(store, jobs, "test")
    _sampled(store, "lab", "100", "101", "102", "103", "104", "105", "200", "201", "301")
    _sampled(store, "other", "100")


def test_coverage_query_counts_ended_jobs_with_samples(store):
    _fill(store)
    ended, recorded = recorder_store.recorder_coverage(store, "lab", NOW - 24 * H, NOW, 60.0)
    assert (ended, recorded) == (11, 7)          # 100..109 and 300_1; 100..105 and 301 (raw id)
    assert recorder_store.recorder_coverage(store, "other", NOW - 24 * H, NOW, 60.0) == (1, 1)
    assert recorder_store.recorder_coverage(store, "nowhere", NOW - 24 * H, NOW, 60.0) == (0, 0)
    assert recorder_store.recorder_coverage(store, "lab", NOW - 24 * H, NOW, 0.0) == (12, 8)


def test_collector_gives_the_ratio_only_with_enough_jobs(store):
    _fill(store)
    ctx = CollectContext(settings={"window_h": 24.0, "min_jobs": 10, "min_runtime_s": 60.0}, run=None,
                         now=lambda: NOW, cluster="lab", store=store)
    got = {m.metric: m for m in coverage.CoverageCollector().collect(ctx)}
    assert got["recorder.coverage_jobs_ended"].value == 11
    assert got["recorder.coverage_jobs_recorded"].value == 7
    assert got["recorder.coverage_ratio"].value == pytest.approx(7 / 11)
    assert all(m.host == "" and m.labels == () for m in got.values())
    ctx.settings = {"min_jobs": 20}
    assert "recorder.coverage_ratio" not in {m.metric for m in coverage.CoverageCollector().collect(ctx)}


def test_coverage_metrics_edges():
    assert [m.metric for m in coverage.coverage_metrics(0, 0, 0)] == [
        "recorder.coverage_jobs_ended", "recorder.coverage_jobs_recorded"]          # no 0/0
    assert coverage.coverage_metrics(20, 20, 20)[-1].value == 1.0


def test_without_a_store_it_gives_nothing_and_syscheck_lists_it():
    from nomade.collectors.registry import registry
    from nomade.config import load_config
    from nomade.monitor import syscheck
    assert coverage.CoverageCollector().collect(CollectContext(settings={}, run=None)) == []
    lines = {c.name: c for c in syscheck(load_config(environ={}), registry(), only=["coverage", "scratch"])}
    assert lines["coverage"].state == "ok" and "ingest spool" in lines["coverage"].needs
    assert lines["scratch"].state == "skipped" and "no scratch paths configured" in lines["scratch"].message


def test_coverage_rule_warns_below_the_setting():
    from nomade.alerts.defaults import default_rules
    from nomade.config import load_config
    rule = {r.name: r for r in default_rules(load_config(environ={}))}["recorder_coverage_low"]
    assert (rule.metric, rule.op, rule.levels, rule.scale) == ("recorder.coverage_ratio", "<", (("warning", 80.0),), 100.0)
