"""Job profiles (diagonal Gaussian mixture, EM, BIC) and the similarity network's machinery."""

import numpy as np
import pytest

from nomade.behaviour import network, profiles, vectors


def _planted(n=3000, seed=0, missing=0.0):
    rng = np.random.default_rng(seed)
    names = list(vectors.NAMES)
    d = len(names)
    centres = np.zeros((3, d))
    centres[0, names.index("local_write")] = 4.0
    centres[0, names.index("cpu_eff")] = -3.0
    centres[1, names.index("cpu_eff")] = 3.0
    centres[2, names.index("tmpfs_write")] = 4.0
    group = rng.integers(0, 3, n)
    X = centres[group] + rng.normal(0, 0.5, (n, d))
    if missing:
        X[rng.random((n, d)) < missing] = np.nan
    return X, group, names


@pytest.mark.parametrize("missing", [0.0, 0.2])
def test_planted_profiles_are_recovered_and_named(missing):
    X, group, names = _planted(missing=missing)
    m = profiles.fit_profiles(X, names, max_k=6, seed=0)
    assert m.mixture.k == 3
    got, ll = m.assign(X)
    # each planted group maps to one profile (purity >= 98 %)
    for g in range(3):
        counts = np.bincount(got[group == g], minlength=3)
        # with 20 % of values missing, a job may lack the one feature that tells its group apart
        assert counts.max() / counts.sum() >= (0.98 if not missing else 0.9)
    assert any("high local write" in name and "low CPU" in name for name in m.labels)
    assert any(name == "high tmpfs write" for name in m.labels)
    assert np.isfinite(ll).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kinds_told_apart_by_one_feature_among_noise_are_found(seed):
    """Five kinds of 10 jobs as on the real cluster (tests/slurm/test_behaviour_real.py): CPU-bound,
    local writes, tmpfs writes, memory to OOM, idle; OOM and idle differ in memory use alone, and
    three node statistics are noise. Random starts alone ended in a local optimum that kept OOM and
    idle together (BIC worse than the planted split); the split starts find the planted one."""
    rng = np.random.default_rng(seed)
    kind = np.repeat(np.arange(5), 10)
    X = np.zeros((50, 7))
    X[:, 0] = np.where(kind == 0, 0.9, 0.02) + rng.normal(0, 0.03, 50)
    X[:, 1] = np.select([kind == 1, kind == 2], [3.3, 2.7], 0.0) + rng.normal(0, 0.05, 50)
    X[:, 2] = np.where(kind == 2, 2.7 + rng.normal(0, 0.05, 50), 0.0)
    X[:, 3] = np.select([kind == 3, kind == 4], [1.0, 0.02], 0.1) + rng.normal(0, 0.02, 50)
    X[:, 4:] = rng.normal(0, 1, (50, 3))
    m = profiles.fit_profiles(X, [f"f{j}" for j in range(7)], max_k=8, seed=0)
    got, _ = m.assign(X)
    assert m.mixture.k == 5
    assert sorted(len(set(got[kind == k].tolist())) for k in range(5)) == [1] * 5
    assert len({int(got[kind == k][0]) for k in range(5)}) == 5


def test_fit_is_seeded_and_assigns_a_new_job():
    X, group, names = _planted(seed=1)
    a = profiles.fit_profiles(X, names, max_k=5, seed=7)
    b = profiles.fit_profiles(X, names, max_k=5, seed=7)
    assert np.array_equal(a.mixture.means, b.mixture.means)
    new = np.full((1, len(names)), np.nan)
    new[0, names.index("tmpfs_write")] = 4.2           # only one feature known
    c, _ = a.assign(new)
    assert a.labels[int(c[0])].startswith("high tmpfs write")


def test_anomalies_are_the_jobs_far_from_every_profile():
    X, group, names = _planted(seed=2)
    m = profiles.fit_profiles(X, names, max_k=5, seed=0, anomaly_percentile=1.0)
    far = np.full((1, len(names)), 0.0)
    far[0, 0] = 40.0
    _, ll = m.assign(np.vstack([X[:5], far]))
    assert ll[-1] < m.anomaly_threshold < ll[:5].min()


def test_summary_counts_classes_and_failure_rate():
    X, group, names = _planted(n=600, seed=3)
    y = np.where(group == 2, 1, 0).astype(np.int8)
    m = profiles.fit_profiles(X, names, max_k=4, seed=0)
    assigned, _ = m.assign(X)
    outcome = np.where(y == 1, "oom", "success")
    rows = profiles.summarize(m, assigned, y, list(outcome))
    assert sum(p.size for p in rows) == 600
    bad = [p for p in rows if p.name == "high tmpfs write"][0]
    assert bad.failure_rate == 1.0 and set(bad.by_class) == {"oom"}


def test_cell_search_agrees_with_the_exact_search():
    rng = np.random.default_rng(4)
    X = rng.normal(0, 1, (6000, 8)) + rng.integers(0, 5, 6000)[:, None] * 2.0
    Z = network.Scaled.of(X).Z
    exact_i, exact_s, m1 = network.knn(Z, 10)
    cell_i, cell_s, m2 = network.knn(Z, 10, exact_limit=1000, cell_size=800, probes=3)
    assert (m1, m2) == ("exact", "cells")
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact_i, cell_i)])
    assert recall > 0.9
    assert not (exact_i == np.arange(6000)[:, None]).any()     # never its own neighbour


def test_edges_components_and_the_similarity_index():
    X = np.array([[1, 0], [1, 0.01], [0, 1], [0.01, 1], [-1, -1]], dtype=float)
    g = network.build_network(X, k=2, threshold=0.9)
    pairs = set(zip(g.u.tolist(), g.v.tolist()))
    assert pairs == {(0, 1), (2, 3)}
    assert g.region.tolist() == [0, 0, 2, 2, 4]
    assert network.components(6, np.array([0, 2, 4]), np.array([5, 3, 0])).tolist() == [0, 1, 2, 2, 0, 0]
    idx = network.SimilarityIndex(X)
    near, sims = idx.query(0, 2)
    assert near[0] == 1 and sims[0] > 0.99


def test_simpson_index_on_presence_absence():
    P = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 0]], dtype=np.float32)
    i, s, _ = network.knn(P, 1, metric="simpson")
    assert i[0, 0] == 1 and s[0, 0] == pytest.approx(1.0)   # {a,b} inside {a,b,c}: Simpson 1
    assert s[3, 0] == 0.0
    with pytest.raises(ValueError):
        network.knn(P, 1, metric="jaccard")


def test_node_statistics_do_not_make_profiles():
    """Jobs that only shared a moment of the node's statistics (high I/O wait, blocked processes)
    are not a profile: the node statistics are left out of the mixture (profiles.CONTEXT)."""
    X, group, names = _planted(seed=2)
    X = X.copy()
    X[group == 0, names.index("io_wait")] = 9.0
    X[group == 0, names.index("blocked")] = 9.0
    m = profiles.fit_profiles(X, names, max_k=6, seed=0)
    assert not set(m.names) & profiles.CONTEXT
    assert not any("I/O wait" in label or "blocked" in label for label in m.labels)
