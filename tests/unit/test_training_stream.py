"""The training table read in batches (store.job_queries.training_batches ->
features.jobtable.load_jobs): the same table whatever the batch size, each job's peak memory
from its steps, repeated text kept once; on SQLite and on PostgreSQL (tests/pg_fixture.py)."""

import functools

import numpy as np
import pytest

from nomade.features import jobtable
from nomade.jobrecord import JobRecord, StepRecord
from nomade.store import job_queries, open_store
from nomade.store.jobs import upsert_jobs

T0 = 1714521600.0
NAMES = ["plain", "new\nline", "pipe|semi;colon", "ctl\x1f\x07bytes", "-1 2 3"]


def _jobs(n=23):
    out = []
    for i in range(n):
        steps = [StepRecord("batch", tres_usage_in_tot=f"cpu=00:01:00,mem={100 + i}M", ntasks=1),
                 StepRecord("0", max_rss_mb=50.0 + 2 * i, ntasks=2)] if i % 3 else []
        out.append(JobRecord("c1", str(1000 + i), job_id_raw=1000 + i, name=NAMES[i % len(NAMES)],
                             user=f"user{i % 3}", uid=100 + i % 3, partition="p", state="COMPLETED",
                             is_final=1, submit_time=T0 + 60 * (n - i), req_cpus=1 + i % 4,
                             max_rss_mb=7.0 if i % 3 == 0 else None, steps=steps))
    return out


@pytest.fixture
def store(store_target):
    s = open_store(store_target)
    upsert_jobs(s, _jobs(), "test")
    yield s
    s.close()


def test_batches_give_the_table_of_one_read(store, monkeypatch):
    whole = jobtable.load_jobs(store)
    monkeypatch.setattr(job_queries, "training_batches",
                        functools.partial(job_queries.training_batches, size=4))
    assert sum(len(b) for b in job_queries.training_batches(store, ("job_id",))) == 23
    small = jobtable.load_jobs(store)
    assert len(whole) == len(small) == 23
    for c in jobtable.TEXT_COLUMNS:
        assert list(whole[c]) == list(small[c]), c
    for c in jobtable.NUMERIC_COLUMNS:
        np.testing.assert_array_equal(whole[c], small[c], err_msg=c)
    assert list(whole["job_id"]) == [str(1000 + i) for i in range(22, -1, -1)]   # submit order


def test_peak_memory_from_steps_and_hostile_names(store):
    jt = jobtable.load_jobs(store)
    by_id = {j: k for k, j in enumerate(jt["job_id"])}
    for i in range(23):
        got = jt["max_rss_mb"][by_id[str(1000 + i)]]
        # largest step: TRESUsageInTot mem= (100+i MiB) vs MaxRSS x NTasks ((50+2i) x 2)
        want = 7.0 if i % 3 == 0 else max(100.0 + i, 2 * (50.0 + 2 * i))
        assert got == pytest.approx(want), i
    assert set(jt["name"]) == set(NAMES)


def test_repeated_text_is_kept_once(store):
    jt = jobtable.load_jobs(store)
    users = jt["user"]
    firsts = {}
    for u in users:
        assert firsts.setdefault(u, u) is u
    assert jt["user"].dtype == object and len(set(map(id, users))) == 3


def test_since_and_the_training_window_are_read_in_the_database(store):
    from nomade.train.pipeline import load_training_table
    newest = job_queries.newest_training_submit(store)
    assert newest == T0 + 60 * 23 and job_queries.newest_training_submit(store, "nope") is None
    part = jobtable.load_jobs(store, since=newest - 600)
    assert len(part) == 11 and np.all(part["submit_time"] >= newest - 600)

    class Cfg:
        values = {"train.window_days": 0, "model.owner_cancel_is_failure": False, "train.min_jobs": 1}

        def get(self, key):
            return self.values[key]

    cfg = Cfg()
    assert len(load_training_table(store, cfg, None)[0]) == 23
    cfg.values = dict(cfg.values, **{"train.window_days": 1})
    with store.transaction() as conn:   # two jobs three days older: outside a 1-day window
        conn.execute("UPDATE jobs SET submit_time = submit_time - 3 * 86400 WHERE job_id IN ('1000', '1001')")
    jt = load_training_table(store, cfg, None)[0]
    assert len(jt) == 21 and "1000" not in set(jt["job_id"])


def test_max_jobs_reads_only_the_newest(store, monkeypatch):
    """--max-jobs N: the store is asked for the jobs from the N-th newest submit time on, not for
    every job (which would then be cut in memory)."""
    read = []
    real = job_queries.training_batches

    def counting(*a, **kw):
        for batch in real(*a, **kw):
            read.append(len(batch))
            yield batch
    monkeypatch.setattr(job_queries, "training_batches", counting)
    jt = jobtable.load_jobs(store, max_jobs=5)
    assert list(jt["job_id"]) == [str(1000 + i) for i in range(4, -1, -1)]   # the 5 newest, in submit order
    assert sum(read) == 5
    assert job_queries.submit_time_cut(store, 5) == T0 + 60 * 19
    assert job_queries.submit_time_cut(store, 5, cluster="c1") == T0 + 60 * 19
    assert job_queries.submit_time_cut(store, 24) is None          # fewer jobs than asked: all of them
    assert job_queries.submit_time_cut(store, 5, cluster="other") is None
    assert len(jobtable.load_jobs(store, max_jobs=100)) == 23
