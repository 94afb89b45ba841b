"""Benchmark: rendering ``/metrics`` (``nomade.web.metrics_endpoint.render``) from a store with
5,000 current collector series, collector runs, a current model and scored jobs.

    python bench/metrics_render.py                       # 5,000 series, 100,000 jobs over 30 days
    python bench/metrics_render.py --days 1              # the same jobs all in the last 24 h

The store (a temporary directory): 100 nodes x (series / 100) node metrics (``node.*`` with a cpu
or device label), each with 10 samples over the last 10 minutes (so ``latest`` picks one of ten),
written through ``store.metrics.write_cycle``; 10 collectors' runs; ``--jobs`` jobs submitted
evenly over the last ``--days`` days, each scored at submit and start by the current model
(``nomade_jobs_by_risk_level`` reads the jobs of the last 24 h, production performance the
scores of the last 7 days, cached 5 minutes). Then ``render`` runs ``--runs`` times in-process
(the time a scrape waits, without HTTP; the first computes production performance) and
``nomade metrics`` once as a subprocess (interpreter start and imports included). Not a test.
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nomade.collectors.base import Metric
from nomade.config import load_config
from nomade.jobrecord import JobRecord
from nomade.store import jobs as store_jobs
from nomade.store import metrics as sm
from nomade.store import models as store_models
from nomade.store.db import open_store
from nomade.store.scores import Score, write_score
from nomade.web.metrics_endpoint import render

CLUSTER = "bench"
STATES = ("COMPLETED", "COMPLETED", "COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "CANCELLED")


def build(data_dir: Path, n_series: int, n_jobs: int, now: float, days: float = 30.0) -> None:
    rnd = random.Random(1)
    per_node = max(1, n_series // 100)
    with open_store(data_dir / "nomade.db") as store:
        for k in range(10):
            ts = now - 60 * (10 - k)
            cycle = [Metric.of(f"node.bench_{j % 25}_pct", rnd.random() * 100, f"n{i:03d}", ts,
                               device=f"d{j // 25}")
                     for i in range(100) for j in range(per_node)]
            sm.write_cycle(store, CLUSTER, "nodestats", cycle, ts)
        for c in range(10):
            sm.record_run(store, f"collector{c}", now - 30, c != 3, "" if c != 3 else "skipped", 0.1, 10)
        store_models.add_model(store, "m1", "/models/m1", "candidate", now - 86400 * 3,
                               {"thresholds": {"alert": 0.5}})
        store_models.make_current(store, "m1", now - 86400 * 2)
        for lo in range(0, n_jobs, 50000):
            hi = min(n_jobs, lo + 50000)
            recs = [JobRecord(CLUSTER, str(i), job_id_raw=i, user=f"u{i % 300}", uid=10000 + i % 300,
                              state=STATES[i % len(STATES)], is_final=1,
                              submit_time=now - 86400 * days * (1 - i / n_jobs), end_time=now - 60)
                    for i in range(lo + 1, hi + 1)]
            store_jobs.upsert_jobs(store, recs, "bench")
            with store.transaction() as conn:
                for i in range(lo + 1, hi + 1):
                    write_score(conn, Score(CLUSTER, str(i), "submit", "m1", rnd.random(), None, "[]",
                                            now - 86400 * days * (1 - i / n_jobs)))
                    write_score(conn, Score(CLUSTER, str(i), "start", "m1", rnd.random(), None, "[]",
                                            now - 86400 * days * (1 - i / n_jobs) + 60))
        store_jobs.set_high_water(store, f"sacct:{CLUSTER}", now - 90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=5000)
    ap.add_argument("--jobs", type=int, default=100000)
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nomade-metrics-bench-") as tmp:
        data = Path(tmp)
        now = time.time()
        t0 = time.perf_counter()
        build(data, args.series, args.jobs, now, args.days)
        print(f"store built in {time.perf_counter() - t0:.1f} s "
              f"({(data / 'nomade.db').stat().st_size / 2**20:.0f} MiB)")
        cfg = load_config(None, {"data_dir": str(data), "cluster": CLUSTER})
        times = []
        with open_store(cfg.store_path, readonly=True) as store:
            for _ in range(args.runs):
                t = time.perf_counter()
                body, _ = render(cfg, store)
                times.append(time.perf_counter() - t)
        lines = body.decode().splitlines()
        samples = sum(1 for ln in lines if ln and not ln.startswith("#"))
        print(f"exposition: {samples} samples, {len(body) / 1024:.0f} KiB")
        first, rest = times[0], times[1:]
        print(f"first render (computes production performance): {first * 1000:.0f} ms")
        print(f"next {len(rest)} renders (performance cached): min {min(rest) * 1000:.0f} ms, "
              f"median {statistics.median(rest) * 1000:.0f} ms, max {max(rest) * 1000:.0f} ms")
        env = dict(os.environ, NOMADE_DATA_DIR=str(data), NOMADE_CLUSTER=CLUSTER)
        t = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "nomade"), "metrics"], env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=600)
        print(f"`nomade metrics` (whole command): {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
