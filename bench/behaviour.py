"""Benchmark (not a test): the behaviour analysis (nomade.behaviour) on synthetic jobs.

Network (k-NN search, edges, regions, permutation test, hotspots) and profiles (mixture fit by
BIC + assignment of every job) for --jobs synthetic behaviour vectors (6 planted behaviours, 17
features, 20 % of the recorder/node features missing); then the warm --find-similar look-up
(SimilarityIndex.query) and the recall of the cell search against an exact search for sampled
jobs. Prints wall times, peak RSS and one Markdown table row.

    python bench/behaviour.py [--jobs 1000000] [--permutations 19] [--queries 200]
"""

import argparse
import resource
import time

import numpy as np


def synthetic(n: int, seed: int = 0):
    from nomade.behaviour.vectors import NAMES
    rng = np.random.default_rng(seed)
    d = len(NAMES)
    centres = rng.normal(0, 2.0, (6, d))
    fail_p = np.array([0.05, 0.1, 0.1, 0.2, 0.4, 0.6])
    group = rng.integers(0, 6, n)
    X = (centres[group] + rng.normal(0, 1.0, (n, d))).astype(np.float64)
    X[:, 4:] = np.where(rng.random((n, d - 4)) < 0.2, np.nan, X[:, 4:])
    y = (rng.random(n) < fail_p[group]).astype(np.int8)
    return X, y


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--permutations", type=int, default=19)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    from nomade.behaviour import network, profiles, stats
    from nomade.behaviour.vectors import NAMES

    X, y = synthetic(a.jobs, a.seed)
    print(f"{a.jobs} jobs, {X.shape[1]} features; RSS after data {rss_mb():.0f} MB", flush=True)
    t0 = time.perf_counter()
    g = network.build_network(X, k=10, threshold=0.7)
    t_net = time.perf_counter() - t0
    perm = stats.permutation_test(g.u, g.v, y, a.permutations)
    t_perm = time.perf_counter() - t0 - t_net
    hs = stats.hotspots(X, NAMES, y, safe=True)
    t_all_net = time.perf_counter() - t0
    print(f"network: {t_net:.1f} s ({g.method}, {g.u.size} edges), permutation test x{a.permutations} "
          f"{t_perm:.1f} s (r = {perm.statistic:.3f}, p = {perm.p_value:.3f}), hotspots "
          f"{t_all_net - t_net - t_perm:.1f} s ({len(hs)} found); RSS {rss_mb():.0f} MB", flush=True)
    t1 = time.perf_counter()
    model = profiles.fit_profiles(X, NAMES, max_k=8)
    assigned, _ = model.assign(X)
    t_prof = time.perf_counter() - t1
    print(f"profiles: {t_prof:.1f} s, k = {model.mixture.k} (BIC), RSS {rss_mb():.0f} MB", flush=True)
    total = time.perf_counter() - t0

    t2 = time.perf_counter()
    index = network.SimilarityIndex(X)
    t_index = time.perf_counter() - t2
    rng = np.random.default_rng(a.seed + 1)
    qs = rng.choice(a.jobs, a.queries, replace=False)
    index.query(int(qs[0]), 10)
    lat, hits, ratio = [], 0.0, 0.0
    for q in qs:
        s = time.perf_counter()
        near, sims = index.query(int(q), 10)
        lat.append(1000 * (time.perf_counter() - s))
        hits += len(set(near.tolist()) & set(g.idx[q].tolist())) / 10.0
        found = g.sims[q][np.isfinite(g.sims[q])]
        ratio += float(found.sum()) / float(sims.sum()) if sims.sum() > 0 else 1.0
    lat_a = np.array(lat)
    print(f"find-similar: index build {t_index:.1f} s; warm query median {np.median(lat_a):.1f} ms, "
          f"p95 {np.percentile(lat_a, 95):.1f} ms; recall@10 of the network's search "
          f"{hits / len(qs):.3f}, similarity found / exact {ratio / len(qs):.4f}", flush=True)
    print("\n| jobs | network (s) | permutation test (s) | hotspots (s) | profiles (s) | total (s) | "
          "peak RSS (MB) | find-similar median / p95 (ms) | recall@10 | similarity found / exact |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {a.jobs:,} | {t_net:.1f} | {t_perm:.1f} (x{a.permutations}) | "
          f"{t_all_net - t_net - t_perm:.1f} | {t_prof:.1f} | {total:.1f} | {rss_mb():.0f} | "
          f"{np.median(lat_a):.1f} / {np.percentile(lat_a, 95):.1f} | {hits / len(qs):.3f} | "
          f"{ratio / len(qs):.4f} |")


if __name__ == "__main__":
    main()
