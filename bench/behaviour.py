"""Benchmark (not a test): the behaviour analysis (nomade.behaviour) on synthetic jobs.

Vectors (with --store: read from a store made by bench/behaviour_store.py and built, timed;
without: --jobs synthetic vectors, 6 planted behaviours, 17 features, 20 % of the recorder/node
features missing), then the network (k-NN search, edges, regions), its permutation test,
hotspots, and profiles (mixture fit by BIC + assignment of every job), each timed (wall and
CPU); then the warm --find-similar look-up (SimilarityIndex.query, exact) and the recall of
the network's search against it for sampled jobs. ``--sweep 2,4,8``: the search alone with
each number of cells a job is filed under (time and recall). Prints one Markdown table row.

    python bench/behaviour.py [--jobs 1000000 | --store DIR/nomade.db] [--permutations 199]
"""

import argparse
import resource
import time

from nomade.behaviour import one_blas_thread

one_blas_thread()

import numpy as np  # noqa: E402


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


class Clock:
    def __init__(self):
        self.rows = []
        self.t, self.c = time.perf_counter(), time.process_time()

    def lap(self, name: str, note: str = "") -> None:
        t, c = time.perf_counter(), time.process_time()
        self.rows.append((name, t - self.t, c - self.c))
        print(f"{name}: {t - self.t:.1f} s wall, {c - self.c:.1f} s CPU {note}; RSS {rss_mb():.0f} MB", flush=True)
        self.t, self.c = t, c


def recall(idx: np.ndarray, index, qs: np.ndarray, k: int = 10) -> float:
    hits = 0.0
    for q in qs:
        near, _ = index.query(int(q), k)
        hits += len(set(near.tolist()) & set(idx[q].tolist())) / float(k)
    return hits / len(qs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--store", default=None, help="read the jobs from this store")
    ap.add_argument("--permutations", type=int, default=199)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--sweep", default="", help="cells per job to try, e.g. 2,4,8 (search only)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    from nomade.behaviour import network, profiles, stats
    from nomade.behaviour.vectors import NAMES

    start_t, start_c = time.perf_counter(), time.process_time()
    clock = Clock()
    if a.store:
        from nomade.behaviour import vectors
        from nomade.store.db import open_store
        with open_store(a.store, readonly=True) as st:
            b = vectors.load(st)
        X, y = b.X, b.y
        clock.lap("vectors", f"({len(b):,} jobs read from the store and built)")
    else:
        X, y = synthetic(a.jobs, a.seed)
        clock.lap("vectors", "(synthetic)")
    n = X.shape[0]
    g = network.build_network(X, k=10, threshold=0.7, seed=a.seed)
    clock.lap("network", f"({g.method}, {g.u.size:,} edges)")
    perm = stats.permutation_test(g.u, g.v, y, a.permutations, a.seed)
    clock.lap("permutations", f"(x{a.permutations}: r = {perm.statistic:.3f}, p = {perm.p_value:.3f})")
    stats.purity(g.u, g.v, y)
    hs = stats.hotspots(X, NAMES, y, safe=True)
    clock.lap("hotspots", f"({len(hs)} found, and purity)")
    model = profiles.fit_profiles(X, NAMES, max_k=8, seed=a.seed)
    model.assign(X)
    clock.lap("profiles", f"(k = {model.mixture.k})")
    total_t, total_c = time.perf_counter() - start_t, time.process_time() - start_c
    peak = rss_mb()

    index = network.SimilarityIndex(X)
    t_index = time.perf_counter() - clock.t
    rng = np.random.default_rng(a.seed + 1)
    qs = rng.choice(n, min(a.queries, n), replace=False)
    index.query(int(qs[0]), 10)
    lat = []
    for q in qs:
        s = time.perf_counter()
        index.query(int(q), 10)
        lat.append(1000 * (time.perf_counter() - s))
    lat_a = np.array(lat)
    rec = recall(g.idx, index, qs)
    print(f"find-similar: index build {t_index:.1f} s; warm query median {np.median(lat_a):.1f} ms, "
          f"p95 {np.percentile(lat_a, 95):.1f} ms; recall@10 of the network's search {rec:.3f}", flush=True)
    for p in [int(v) for v in a.sweep.split(",") if v]:
        sc = network.Scaled.of(X)
        t, c = time.perf_counter(), time.process_time()
        idx, _, method = network.knn(sc.Z, 10, probes=p, seed=a.seed)
        print(f"sweep: filed in {p} cells: search {time.perf_counter() - t:.1f} s wall, "
              f"{time.process_time() - c:.1f} s CPU, recall@10 {recall(idx, index, qs):.3f} ({method})", flush=True)
    w = {name: (t, c) for name, t, c in clock.rows}
    cell = " | ".join(f"{w[s][0]:.1f} / {w[s][1]:.1f}" for s in ("vectors", "network", "permutations", "hotspots", "profiles"))
    print("\n| jobs | vectors | network | permutations | hotspots | profiles | total | peak RSS (MB) | "
          "find-similar p50 / p95 (ms) | recall@10 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {n:,} | {cell} | **{total_t:.1f} / {total_c:.1f}** | {peak:.0f} | "
          f"{np.median(lat_a):.1f} / {np.percentile(lat_a, 95):.1f} | {rec:.3f} |")


if __name__ == "__main__":
    main()
