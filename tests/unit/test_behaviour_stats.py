"""Statistics of the behaviour analysis on synthetic data with known answers: the permutation
test, hotspot ranges and intervals, matched comparisons, drift."""

import numpy as np
import pytest

from nomade.behaviour import drift, network, recommend, stats, vectors


def _clustered(seed=0, n=3000):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (4, 6))
    group = rng.integers(0, 4, n)
    X = centres[group] + rng.normal(0, 1, (n, 6))
    y = (rng.random(n) < np.where(group == 1, 0.6, 0.1)).astype(np.int8)
    return X, y, rng


def test_clustered_failures_have_a_small_p_value_and_random_labels_a_large_one():
    X, y, rng = _clustered()
    g = network.build_network(X, k=10, threshold=0.7)
    clustered = stats.permutation_test(g.u, g.v, y, permutations=99, seed=1)
    assert clustered.statistic > 0.2
    assert clustered.p_value == pytest.approx(0.01)
    shuffled = stats.permutation_test(g.u, g.v, rng.permutation(y), permutations=99, seed=1)
    assert shuffled.p_value > 0.05
    assert abs(shuffled.statistic) < 0.05


def test_assortativity_extremes_and_unlabelled_ends():
    u, v = np.array([0, 2]), np.array([1, 3])
    assert stats.assortativity(u, v, np.array([1, 1, 0, 0])) == pytest.approx(1.0)
    assert stats.assortativity(np.array([0, 1]), np.array([2, 3]), np.array([1, 0, 0, 1])) == pytest.approx(-1.0)
    assert np.isnan(stats.assortativity(u, v, np.array([-1, 1, -1, 0])))
    pur, fail_pur = stats.purity(u, v, np.array([1, 1, 0, 0]))
    assert pur == 1.0 and fail_pur == 1.0


def test_a_planted_hotspot_is_found_with_its_range_and_an_interval_covering_the_true_rate():
    rng = np.random.default_rng(3)
    n = 20000
    X = rng.uniform(0, 1, (n, 3))
    true_rate, base = 0.45, 0.05
    y = (rng.random(n) < np.where(X[:, 1] >= 0.7, true_rate, base)).astype(np.int8)
    found = stats.hotspots(X, ["a", "b", "c"], y, min_count=50)
    danger = [h for h in found if h.kind == "danger"]
    assert [h.feature for h in danger] == ["b"]
    h = danger[0]
    assert h.low == pytest.approx(0.7, abs=0.02) and h.high == pytest.approx(1.0, abs=0.001)
    assert h.ci_low <= true_rate <= h.ci_high
    assert h.n == pytest.approx(0.3 * n, rel=0.05)
    assert h.failures == int(((X[:, 1] >= h.low) & (y == 1)).sum())


def test_no_hotspot_in_pure_noise_and_none_below_min_count():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(5000, 4))
    y = (rng.random(5000) < 0.2).astype(np.int8)
    assert [h for h in stats.hotspots(X, list("abcd"), y) if h.kind == "danger"] == []
    assert stats.hotspots(X[:10], list("abcd"), y[:10], min_count=20) == []


def test_wilson_interval():
    lo, hi = stats.wilson(0, 10)
    assert lo == 0.0 and 0.2 < hi < 0.35
    lo, hi = stats.wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert stats.wilson(0, 0) == (0.0, 1.0)


def _practice_data(effect, n=6000, seed=5):
    """Jobs in 3 behaviour groups; writing to local scratch (nfs_share < 0.5) raises the success
    probability by ``effect`` in every group; groups differ in base success and in how often
    they use scratch (a confounder a naive comparison would mix in)."""
    rng = np.random.default_rng(seed)
    d = len(vectors.NAMES)
    group = rng.integers(0, 3, n)
    centres = rng.normal(0, 2, (3, d))
    X = centres[group] + rng.normal(0, 0.3, (n, d))
    scratch = rng.random(n) < np.array([0.2, 0.5, 0.8])[group]
    X[:, vectors.NAMES.index("nfs_share")] = np.where(scratch, 0.1, 0.9)
    p = np.array([0.3, 0.5, 0.6])[group] + effect * scratch
    y = (rng.random(n) >= p).astype(np.int8)      # y = 1 failed
    return vectors.from_arrays(X, y), scratch, group


def test_matched_comparison_recovers_a_known_effect_with_its_pairs():
    b, scratch, group = _practice_data(0.3)
    c = recommend.matched_comparison(b, recommend.PRACTICES[0], threshold=0.7, min_pairs=20)
    assert c.practice == "local_scratch" and c.enough
    assert c.result.pairs == int((~scratch).sum())
    assert "matched pairs" in c.sentence()
    # the 95 % interval covers the true effect in (nearly) every one of 10 data sets, and the
    # estimates centre on it while a naive comparison is confounded by the groups
    covered, estimates = 0, []
    for seed in range(10):
        b, scratch, group = _practice_data(0.3, seed=seed)
        r = recommend.matched_comparison(b, recommend.PRACTICES[0]).result
        covered += r.ci_low <= 0.3 <= r.ci_high
        estimates.append(r.difference)
    assert covered >= 8
    assert np.mean(estimates) == pytest.approx(0.3, abs=0.02)
    naive = np.mean(b.y[scratch] == 0) - np.mean(b.y[~scratch] == 0)
    assert naive > 0.35


def test_matched_comparison_without_effect_and_below_min_pairs():
    b, scratch, group = _practice_data(0.0)
    c = recommend.matched_comparison(b, recommend.PRACTICES[0])
    assert c.result.ci_low <= 0.0 <= c.result.ci_high
    mine = np.nonzero(~scratch)[0][:5]
    small = recommend.matched_comparison(b, recommend.PRACTICES[0], mine, min_pairs=20)
    assert small.result.pairs == 5 and not small.enough


def test_drift_found_for_a_shifted_feature_only():
    rng = np.random.default_rng(6)
    n = 4000
    X = rng.normal(size=(n, 3))
    end = np.linspace(0, 200 * drift.DAY, n)
    now = end[-1]
    recent = end > now - 30 * drift.DAY
    X[recent, 1] += 1.0
    res = {d.feature: d for d in drift.feature_drift(X, ["a", "b", "c"], end, now)}
    assert res["b"].drifted and res["b"].psi > 0.2 and res["b"].ks > 0.3
    assert not res["a"].drifted and res["a"].psi < 0.1
    assert not res["c"].drifted
    few = drift.feature_drift(X[:30], ["a", "b", "c"], end[:30], end[29])
    assert all(d.psi is None and not d.drifted for d in few)


def test_psi_of_a_constant_training_window():
    assert drift.psi(np.zeros(100), np.zeros(50)) < 0.01
    assert drift.psi(np.zeros(100), np.ones(50)) > 1.0
