"""The behaviour analysis' fast paths give the answers of the plain ones: the cell search against
the exact one and across thread counts, the bit-packed permutation test against shuffles one at a
time, the column-wise vectors against known values, and the --find-similar cache (reuse,
staleness, private files, privacy unchanged, fallback when it cannot be written)."""

import json
import os
import stat

import numpy as np
import pytest

from nomade.behaviour import cache, network, stats, vectors
from nomade.behaviour.similar import find_similar
from nomade.jobrecord import REQ_MEM_CPU, REQ_MEM_JOB, JobRecord
from nomade.store import behaviour as store_behaviour
from nomade.store import open_store
from nomade.store.jobs import upsert_jobs
from nomade.whyservice.access import Caller

from test_behaviour_store import HOSTILE_USER, _jobs, clean_env, data_dir  # noqa: F401 (fixtures)


@pytest.fixture
def store_dir(request):
    """test_behaviour_store's store: 240 ended jobs of alice, bob and a hostile user in c1."""
    return request.getfixturevalue("data_dir")


def _blobs(n=4000, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, (5, d))
    X = centres[rng.integers(0, 5, n)] + rng.normal(0, 1, (n, d))
    X[rng.random((n, d)) < 0.1] = np.nan
    return X


def test_cell_search_finds_nearly_all_exact_neighbours_and_threads_do_not_change_it():
    X = _blobs()
    Z = network.Scaled.of(X).Z
    exact_i, exact_s, how = network.knn(Z, 10, exact_limit=10 ** 9)
    assert how == "exact"
    one_i, one_s, how = network.knn(Z, 10, exact_limit=0, cell_size=400, threads=1)
    two_i, two_s, _ = network.knn(Z, 10, exact_limit=0, cell_size=400, threads=2)
    assert how == "cells"
    assert np.array_equal(one_i, two_i) and np.array_equal(one_s, two_s)
    hits = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(one_i.tolist(), exact_i.tolist())])
    assert hits > 0.95
    assert (one_i != np.arange(len(X))[:, None]).all()               # never its own neighbour
    assert np.all(one_s <= exact_s.max(axis=1, keepdims=True) + 1e-5)   # none above the best
    t1_i, _, _ = network.knn(Z, 10, exact_limit=10 ** 9, threads=1)
    assert np.array_equal(np.sort(t1_i, axis=1), np.sort(exact_i, axis=1))


def test_dense_cells_are_sampled_not_searched_whole():
    X = np.zeros((3000, 4))
    X[:, 0] = np.arange(3000) % 2                                    # two kinds of identical jobs
    idx, sims, how = network.knn(network.Scaled.of(X).Z, 5, exact_limit=0, cell_size=100, probes=2)
    assert how == "cells" and np.isfinite(sims).all()
    assert (X[idx, 0] == X[:, :1]).all()                             # neighbours of the same kind


def _one_at_a_time(u, v, lab, permutations, seed):
    """The test as first written: one shuffle, one assortativity at a time."""
    obs = stats.assortativity(u, v, lab)
    rng = np.random.default_rng(seed)
    labelled = np.nonzero(lab >= 0)[0]
    perm = lab.copy()
    ge, total = 0, 0.0
    for _ in range(permutations):
        perm[labelled] = rng.permutation(lab[labelled])
        r = stats.assortativity(u, v, perm)
        total += r
        ge += r >= obs - 1e-12
    return obs, (1 + ge) / (1 + permutations), total / permutations


@pytest.mark.parametrize("permutations", [1, 8, 19, 99])
def test_packed_permutation_test_equals_shuffling_one_at_a_time(permutations):
    rng = np.random.default_rng(7)
    n, m = 500, 3000
    u, v = rng.integers(0, n, m), rng.integers(0, n, m)
    lab = np.where(rng.random(n) < 0.15, -1, rng.random(n) < 0.3).astype(np.int8)
    lab[v[:800]] = np.where(lab[u[:800]] >= 0, lab[u[:800]], lab[v[:800]])     # some clustering
    got = stats.permutation_test(u, v, lab, permutations, seed=3)
    obs, p, null_mean = _one_at_a_time(u, v, lab, permutations, 3)
    assert got.statistic == obs and got.p_value == p and got.permutations == permutations
    assert got.null_mean == pytest.approx(null_mean, abs=1e-12)


def test_columnwise_vectors_match_known_values():
    cols = store_behaviour.ENDED_COLUMNS
    base = dict.fromkeys(cols)
    base.update(cluster="c", user="u", uid=5, state="COMPLETED", start_time=100.0, end_time=None,
                elapsed_s=1000, total_cpu_s=2000.0, alloc_cpus=0, req_cpus=4, req_nodes=2,
                max_rss_mb=300.0, s_peak_rss_mb=500.0, req_mem_mb=1000.0, timelimit_s=4000)
    rows = [dict(base, job_id="per-cpu", req_mem_per_cpu=REQ_MEM_CPU),
            dict(base, job_id="per-job", req_mem_per_cpu=REQ_MEM_JOB, s_write_bytes=10 * 2 ** 20,
                 s_write_network_bytes=2 ** 20, s_write_local_bytes=3 * 2 ** 20, s_write_tmpfs_bytes=0),
            dict(base, job_id="per-node", req_mem_per_cpu=0, state="CANCELLED", cancelled_by=5),
            dict(base, job_id="by-admin", state="CANCELLED", cancelled_by=0, submit_time=50.0, start_time=None)]
    b = vectors.build([tuple(r[c] for c in cols) for r in rows], cols)
    col = {n: j for j, n in enumerate(b.names)}
    assert b.X[:, col["cpu_eff"]] == pytest.approx([0.5] * 4)             # alloc 0 -> requested 4 cores
    assert b.X[0, col["mem_eff"]] == pytest.approx(500 / 4000)            # per CPU x 4
    assert b.X[1, col["mem_eff"]] == pytest.approx(500 / 1000)            # the whole job
    assert b.X[2, col["mem_eff"]] == pytest.approx(500 / 2000)            # per node x 2
    assert b.X[1, col["nfs_share"]] == pytest.approx(0.25)
    assert np.isnan(b.X[0, col["nfs_share"]])
    assert b.X[1, col["write_intensity"]] == pytest.approx(np.log1p(10 / 1000))
    assert list(b.outcome) == ["success", "success", "cancelled_owner", "cancelled_other"]
    assert list(b.y) == [0, 0, -1, 1]
    assert list(b.end_time) == [1100.0, 1100.0, 1100.0, 1050.0]
    assert b.extra["runtime_frac"] == pytest.approx([0.25] * 4)
    assert b.health[3] == pytest.approx(0.2)


def _lookup(store_dir, now=None):
    with open_store(store_dir / "nomade.db") as store:
        return cache.similarity_lookup(store, store_dir / "cache", "c1", now=now)


def test_cache_is_reused_private_and_answers_as_a_fresh_index(store_dir):
    b0, i0, how = _lookup(store_dir)
    assert how == "built"
    b1, i1, how = _lookup(store_dir)
    assert how == "cache"
    d = store_dir / "cache"
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in d.iterdir())
    for viewer in (None, Caller(uid=1000, gid=1000)):
        fresh = find_similar(b0, i0, "103", viewer=viewer, cluster="c1", min_count=10)
        cached = find_similar(b1, i1, "103", viewer=viewer, cluster="c1", min_count=10)
        assert json.dumps(fresh, sort_keys=True) == json.dumps(cached, sort_keys=True)
    mine = find_similar(b1, i1, "103", viewer=Caller(uid=1000, gid=1000), cluster="c1", min_count=10)
    assert mine["similar"] and all(s["user"] is None for s in mine["similar"])
    assert b1.user[b1.index_of("111")] == HOSTILE_USER                  # hostile names survive
    with pytest.raises(Exception, match="belongs to another user"):
        find_similar(b1, i1, "101", viewer=Caller(uid=1000, gid=1000), cluster="c1")


def test_cache_is_rebuilt_when_jobs_arrive_or_it_is_old(store_dir):
    _lookup(store_dir)
    with open_store(store_dir / "nomade.db") as store:
        upsert_jobs(store, [JobRecord("c1", "5000", user="alice", uid=1000, state="COMPLETED", is_final=1,
                                      start_time=1e9, end_time=1e9 + 60, elapsed_s=60)], "test")
    b, _, how = _lookup(store_dir)
    assert how == "built" and b.index_of("5000") is not None
    assert _lookup(store_dir)[2] == "cache"
    assert _lookup(store_dir, now=os.path.getmtime(store_dir / "nomade.db") + 10 * cache.MAX_AGE_S)[2] == "built"
    assert len([p for p in (store_dir / "cache").iterdir() if p.name.endswith("-X.npy")]) == 1   # old ones gone


def test_cache_that_cannot_be_written_or_read_falls_back_to_memory(store_dir):
    (store_dir / "cache").write_text("not a directory")
    b, index, how = _lookup(store_dir)
    assert how == "built" and len(b) == 240
    assert _lookup(store_dir)[2] == "built"
    (store_dir / "cache").unlink()
    _lookup(store_dir)
    meta = next((store_dir / "cache").glob("*.json"))
    meta.write_text("{broken")
    assert _lookup(store_dir)[2] == "built"


def test_cli_find_similar_twice_uses_the_cache(monkeypatch, store_dir):
    from test_behaviour_store import _run
    first = _run(monkeypatch, store_dir, ["similarity", "--find-similar", "103", "--json"], 1000)
    second = _run(monkeypatch, store_dir, ["similarity", "--find-similar", "103", "--json"], 1000)
    assert first.exit_code == 0 and first.output == second.output
    assert list((store_dir / "cache").glob("*.json"))
    other = _run(monkeypatch, store_dir, ["similarity", "--find-similar", "101", "--json"], 1000)
    assert other.exit_code != 0 and "belongs to another user" in str(other.exception or other.output)


def test_batches_and_content_mark_on_both_engines(store_target):
    store = open_store(store_target)
    empty = store_behaviour.content_mark(store)
    jobs = _jobs(30)
    upsert_jobs(store, jobs, "test")
    whole = store_behaviour.ended_jobs(store, "c1")
    batches = list(store_behaviour.ended_job_batches(store, "c1", size=7))
    assert [len(b) for b in batches] == [7, 7, 7, 7, 2]
    assert [tuple(r) for b in batches for r in b] == [tuple(r) for r in whole]
    assert list(store_behaviour.ended_job_batches(store, "no-such")) == []
    mark = store_behaviour.content_mark(store)
    assert mark != empty and store_behaviour.content_mark(store) == mark
    b = vectors.load(store, "c1")
    assert len(b) == 30 and b.user[b.index_of("101")] == "bob"
    upsert_jobs(store, [JobRecord("c1", "777", user="bob", uid=1001, state="FAILED", is_final=1)], "test")
    assert store_behaviour.content_mark(store) != mark
