"""Benchmark: the past-only k=16 cosine neighbour graph (nomade.train.models.knn.past_neighbours)
for N synthetic jobs x D features, 2 threads. Prints figures; not a test.

    /tmp/venv311/bin/python bench/knn_graph.py --jobs 1000000 --features 30 --k 16
"""

import argparse
import os
import resource
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

from nomade.scoring.neighbours import NeighbourBank, fit_scaler, unit_rows, zscore  # noqa: E402
from nomade.train.models.knn import DEFAULT_WINDOW, past_neighbours  # noqa: E402


def synthetic_jobs(n: int, d: int, seed: int = 0):
    """Clustered request-like features (40 job 'types' + noise), 5% NaN, submit times ~ Poisson
    (one job per 20 s on average), log-normal runtimes (median 30 min) - so thousands of jobs are
    running at any moment and the per-query 'ended before' mask is exercised."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, d)).astype(np.float32) * 2
    X = centres[rng.integers(0, 40, n)] + rng.normal(size=(n, d)).astype(np.float32)
    X[rng.random((n, d)) < 0.05] = np.nan
    submit = np.cumsum(rng.exponential(20.0, n))
    end = submit + rng.lognormal(np.log(1800), 1.5, n)
    y = (rng.random(n) < 0.2).astype(np.int8)
    return X, submit, end, y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=30)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--window", type=int, default=DEFAULT_WINDOW)
    ap.add_argument("--check", type=int, default=200, help="rows verified against brute force")
    a = ap.parse_args()
    X, submit, end, y = synthetic_jobs(a.jobs, a.features)
    t0 = time.perf_counter()
    mean, std = fit_scaler(X)
    Zu = unit_rows(zscore(X, mean, std))
    t1 = time.perf_counter()
    c1 = time.process_time()
    idx, valid = past_neighbours(Zu, submit, end, a.k, a.window)
    t2 = time.perf_counter()
    c2 = time.process_time()
    # exactness check on random rows against a brute-force search over the same candidate set
    rng = np.random.default_rng(1)
    bad = 0
    for i in rng.integers(a.window, a.jobs, a.check):
        lo = max(0, (i // 1024) * 1024 - a.window)
        cand = np.arange(lo, i)
        cand = cand[end[cand] < submit[i]]
        s = Zu[cand] @ Zu[i]
        best = np.sort(s)[-a.k:]
        got = np.sort(Zu[idx[i][valid[i]]] @ Zu[i])
        bad += int(not np.allclose(best, got, atol=1e-6))
    bank = NeighbourBank.from_rows(X[-a.window:], y[-a.window:], mean, std, a.k)
    t3 = time.perf_counter()
    bank.aggregate(X[:100_000])
    t4 = time.perf_counter()
    one = X[:1].copy()
    lat = []
    for _ in range(200):
        t = time.perf_counter()
        bank.aggregate(one)
        lat.append(time.perf_counter() - t)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"jobs={a.jobs} features={a.features} k={a.k} window={a.window}")
    print(f"z-score+normalise: {t1 - t0:.1f} s")
    print(f"past-only k={a.k} graph: {t2 - t1:.1f} s wall, {c2 - c1:.1f} s CPU "
          f"({a.jobs / (t2 - t1):,.0f} jobs/s); load average {os.getloadavg()[0]:.1f}")
    print(f"rows with k valid neighbours: {valid.all(axis=1).mean():.3f}")
    print(f"exactness vs brute force on {a.check} rows: {a.check - bad}/{a.check} identical")
    print(f"scoring-time aggregate, 100k queries vs {a.window}-row bank: {t4 - t3:.2f} s")
    print(f"single-job aggregate p50/p99: {np.percentile(lat, 50) * 1e3:.2f} / "
          f"{np.percentile(lat, 99) * 1e3:.2f} ms")
    print(f"peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
