"""The store's table-family operations (scores, hook records, models, recorder): what callers
outside nomade.store use instead of SQL. Each test runs on SQLite and on PostgreSQL."""

import json

from nomade.store import hook_records, models, recorder, scores
from nomade.store.db import open_store
from nomade.store.recorder import SAMPLE_COLS


def test_hook_record_and_start_score_in_one_write(store_target):
    store = open_store(store_target)
    rec = hook_records.HookRecord("c", "7", "start", "n1", 100.0, json.dumps({"a": 1}), 101.0)
    score = scores.Score("c", "7", "start", "m1", 0.8, "HIGH", "[]", 100.0)
    assert hook_records.put_record(store, rec, score) is True
    assert hook_records.put_record(store, rec, score) is False           # same data: unchanged
    assert [r["stage"] for r in scores.job_scores(store, "7", ["c"])] == ["start"]
    assert scores.job_scores(store, "7", ["other"]) == []
    assert hook_records.job_records(store, "7", "start") == [{"cluster": "c", "data": '{"a": 1}'}]
    assert hook_records.job_records(store, "7", "start", "x") == []
    assert hook_records.job_records(store, "7", "end") == []
    assert hook_records.cluster_of_job_id(store, "7") == ""              # no jobs row
    assert hook_records.delete_written_before(store, 50.0) == 0
    assert hook_records.delete_written_before(store, 150.0) == 1


def test_reads_of_a_table_an_old_schema_lacks_give_no_rows(store_target):
    store = open_store(store_target)
    store.conn.execute("DROP TABLE hook_records")
    store.conn.execute("DROP TABLE events")
    store.conn.execute("DROP TABLE job_summaries")
    assert hook_records.job_records(store, "7", "end") == []
    assert recorder.job_events(store, "7", ["c"]) == []
    assert recorder.job_summary(store, "c", "7") is None


def test_model_rows(store_target):
    store = open_store(store_target)
    for i, v in enumerate(("v1", "v1.h1", "v1.h2")):
        models.add_model(store, v, f"/r/{v}", "candidate", 10.0 + i, {"version": v})
    assert [m.version for m in models.all_models(store)] == ["v1", "v1.h1", "v1.h2"]
    assert models.get_model(store, "v1.h1").manifest == {"version": "v1.h1"}
    assert models.get_model(store, "nope") is None
    assert models.current_version(store) is None
    models.make_current(store, "v1", 20.0)
    models.make_current(store, "v1.h1", 21.0)
    assert models.current_version(store) == "v1.h1"
    assert models.last_promoted_retired(store, "v1.h1") == "v1"
    models.unpromote(store, "v1")
    assert models.last_promoted_retired(store, "v1.h1") is None
    assert models.versions_with_prefix(store, "v1.h") == [("v1.h1", "current"), ("v1.h2", "candidate")]
    models.delete_model(store, "v1.h2")
    assert [m.version for m in models.all_models(store)] == ["v1", "v1.h1"]


def test_recorder_rows_and_summaries(store_target):
    store = open_store(store_target)
    rows = [tuple({"cluster": "c", "job_id": "7", "node": "n1", "ts": float(t), "rss_mb": 10.0 * t}.get(k)
                  for k in SAMPLE_COLS) for t in range(1, 4)]
    assert recorder.add_samples(store, rows) == 3
    assert recorder.add_samples(store, rows) == 0
    ev = ("c", "7", "n1", "memory_projection", 2.0, "{}", 0)
    assert recorder.add_events(store, [ev, ev]) == 1
    assert [e["kind"] for e in recorder.job_events(store, "7", ["c"])] == ["memory_projection"]

    def summarize(samples):
        assert all(s["node"] == s[0] == "n1" for s in samples)   # rows by name and position
        return (len(samples),) + (1,) + (None,) * 15
    assert recorder.rebuild_summaries(store, {("c", "7"), ("c", "8")}, summarize, 99.0) == 1
    assert recorder.job_summary(store, "c", "7")["sample_count"] == 3
    assert list(recorder.ended_job_samples(store)) == []                  # no ended jobs row
