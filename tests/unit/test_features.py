"""Feature builder: schema, labels, history semantics, JSON round trip, runtime == batch."""

import json

import numpy as np
import pytest

from nomade.features.build import build_matrix
from nomade.features.history import HistoryState
from nomade.features.jobtable import load_jobs, table_from_rows
from nomade.features.labels import make_labels
from nomade.features.schema import feature_names, schema_hash
from nomade.features.start import expand_nodes
from nomade.features.submit import request_from_table
from nomade.jobrecord import JobRecord
from nomade.store.db import open_store
from nomade.store.jobs import upsert_jobs

from test_leakage import synthetic_rows


def job(i, user="u1", state="COMPLETED", submit=0.0, run=100.0, wait=10.0, **kw):
    d = dict(cluster="c", job_id=str(i), job_id_raw=i, user=user, uid=1, name="sim",
             submit_time=1e9 + submit, start_time=1e9 + submit + wait,
             end_time=1e9 + submit + wait + run, elapsed_s=int(run), state=state, is_final=1,
             req_cpus=4, req_nodes=1, timelimit_s=3600)
    d.update(kw)
    return JobRecord(**d).__dict__


def test_schema_names_and_hash_are_stable():
    sub, st = feature_names("submit"), feature_names("start")
    assert st[:len(sub)] == sub and len(set(st)) == len(st)
    assert schema_hash(sub) == schema_hash(list(sub)) != schema_hash(st)
    with pytest.raises(ValueError):
        feature_names("running")


def test_labels_follow_the_owner_cancel_setting():
    rows = [job(0), job(1, state="FAILED"), job(2, state="CANCELLED"),
            job(3, state="CANCELLED", cancelled_by=0), job(4, state="RUNNING", is_final=0,
                                                            end_time=None),
            job(5, state="TIMEOUT"), job(6, state="NODE_FAIL")]
    jt = table_from_rows(rows)
    y, cls = make_labels(jt)
    assert list(y) == [0, 1, -1, 1, -1, 1, 1]
    assert list(cls) == ["success", "failed", "cancelled_owner", "cancelled_other", None, "timeout",
                         "system"]
    y2, _ = make_labels(jt, owner_cancel_is_failure=True)
    assert y2[2] == 1


def test_history_counts_only_jobs_ended_strictly_before():
    # job 0 ends at 1e9+110; job 1 is submitted exactly then, job 2 just after
    rows = [job(0, state="FAILED"), job(1, submit=110.0), job(2, submit=110.5)]
    fm = build_matrix(table_from_rows(rows))
    col = fm.names.index("u_ended_log")
    assert fm.X[1, col] == 0.0 and fm.X[2, col] == pytest.approx(np.log1p(1))
    assert fm.X[2, fm.names.index("u_last_fail")] == 1.0
    assert np.isnan(fm.X[1, fm.names.index("u_last_fail")])
    assert list(fm.history_idx[2][:2]) == [0, -1]
    # submissions are known at submit: job 1 sees job 0's submission, job 0 sees none
    sub = fm.names.index("u_subs_1h")
    assert list(fm.X[:, sub]) == [0.0, 1.0, 2.0]


def test_traces_without_wait_times_use_the_assumed_wait():
    rows = [job(0, state="FAILED", start_time=None, end_time=None, run=100.0),
            job(1, submit=200.0, start_time=None, end_time=None),
            job(2, submit=86400 + 101.0, start_time=None, end_time=None)]
    fm = build_matrix(table_from_rows(rows), cfg={"assumed_wait_s": 86400.0})
    col = fm.names.index("u_ended_log")
    assert list(fm.X[:, col]) == [0.0, 0.0, pytest.approx(np.log1p(1))]


def test_runtime_features_for_equals_batch_row_after_json_round_trip():
    """The state shipped in a bundle (built from the jobs before j, events before t_j, through
    JSON) gives the runtime scorer exactly the batch features of job j."""
    rows = synthetic_rows(n=300)
    full = build_matrix(table_from_rows(rows))
    for j in (120, 231, 299):
        t = rows[j]["submit_time"]
        part = build_matrix(table_from_rows(rows[:j]), until=t)
        text = part.meta["history"].to_json()
        json.loads(text)  # strict JSON: no NaN
        state = HistoryState.from_json(text)
        jt = table_from_rows(rows)
        i = list(jt["job_id"]).index(rows[j]["job_id"])
        got = np.array(state.features_for(request_from_table(jt, i), t), dtype=np.float32)
        np.testing.assert_array_equal(got, full.X[i])


def test_start_stage_adds_wait_and_load():
    rows = [job(0, submit=0.0, wait=10.0, run=1000.0, alloc_cpus=8),
            job(1, submit=5.0, wait=100.0, run=50.0, node_list="n[01-02]")]
    fm = build_matrix(table_from_rows(rows), "start")
    assert fm.column("queue_wait_log")[1] == pytest.approx(np.log1p(100.0))
    assert fm.column("running_jobs")[1] == 1.0          # job 0 runs from 10 to 1010
    assert fm.column("node_recent_failures")[1] == 0.0
    assert np.isnan(fm.column("node_recent_failures")[0])
    assert expand_nodes("n[01-03,7],gpu2") == ["n01", "n02", "n03", "n7", "gpu2"]


def test_load_jobs_from_a_store(tmp_path):
    store = open_store(tmp_path / "s.db")
    upsert_jobs(store, [JobRecord(**{k: v for k, v in job(i, submit=100.0 - i).items()})
                        for i in range(5)], "test")
    jt = load_jobs(store)
    assert list(jt["job_id"]) == ["4", "3", "2", "1", "0"]
    assert len(load_jobs(store, max_jobs=2)) == 2
    store.close()


def test_load_jobs_takes_the_recorders_peak_memory_when_accounting_has_none(tmp_path):
    """job_summaries (the node recorder) fill in peak memory: higher than sacct's, or instead of
    a missing MaxRSS; a summary without any memory figure changes nothing."""
    with open_store(tmp_path / "s.db") as store:
        upsert_jobs(store, [JobRecord(**job(1, max_rss_mb=None)), JobRecord(**job(2, max_rss_mb=800.0)),
                            JobRecord(**job(3, max_rss_mb=900.0)), JobRecord(**job(4, max_rss_mb=None))],
                    "test")
        with store.transaction() as c:
            c.executemany("INSERT INTO job_summaries (cluster, job_id, sample_count, nodes, peak_rss_mb, "
                          "peak_cg_mem_mb, updated_at) VALUES ('c', ?, 3, 1, ?, ?, 0)",
                          [("1", 1500.0, None), ("2", 700.0, 1200.0), ("3", 100.0, None), ("4", None, None)])
        jt = load_jobs(store)
    got = dict(zip(jt["job_id"], jt["max_rss_mb"]))
    assert got["1"] == 1500.0 and got["2"] == 1200.0 and got["3"] == 900.0 and np.isnan(got["4"])


def test_start_context_snapshot_matches_the_batch_start_features():
    """At scoring time the start stage's extras come from the bundle's StartContext: queue wait
    from the request, node failures of the last week, the load at the snapshot."""
    from nomade.features.start import NODE_WINDOW_S, StartContext, start_features

    rows = [job(1, state="NODE_FAIL", submit=0, run=50, node_list="n[1-2]"),
            job(2, state="COMPLETED", submit=10, run=5000, node_list="n3", alloc_cpus=8),
            job(3, state="NODE_FAIL", submit=20, run=50, node_list="n1"),
            job(4, state="COMPLETED", submit=3000, run=100, node_list="n1", wait=30)]
    jt = table_from_rows(rows)
    _, cls = make_labels(jt)
    batch = start_features(jt, cls)
    start4 = jt["start_time"][3]
    ctx = StartContext.from_json(json.loads(json.dumps(StartContext.from_table(jt, cls, now=start4).to_json())))
    req = {"submit_time": jt["submit_time"][3], "node_list": "n1"}
    got = ctx.extras(req, start4)
    np.testing.assert_allclose(got, batch[3], rtol=1e-6)      # same four values as training saw
    assert got[3] == 2 and ctx.running_jobs == 1               # two failures on n1; job 2 running
    assert np.isnan(ctx.extras({"submit_time": 0.0}, start4)[3])   # no node list: unknown
    later = ctx.extras(req, start4 + NODE_WINDOW_S)
    assert later[3] == 0                                       # a week later they have aged out
