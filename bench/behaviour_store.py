"""Build a store of synthetic ended jobs for the behaviour benchmarks (bench/behaviour.py --store,
and the CLI timing of ``nomade similarity --find-similar`` in docs/benchmarks.md).

Jobs go through ``store.jobs.upsert_jobs`` (accounting only: CPU time, peak RSS, requests,
runtime, outcome; 6 planted behaviours with different failure rates, 200 users); no recorder
summaries or node statistics, so those features are missing, as on a cluster without the recorder.

    .venv/bin/python bench/behaviour_store.py --jobs 1000000 --data-dir /tmp/behaviour-1m
"""

import argparse
import time
from pathlib import Path

import numpy as np

from nomade.jobrecord import JobRecord
from nomade.store.db import open_store
from nomade.store.jobs import upsert_jobs

T0 = 1_700_000_000.0
# behaviour: (log cores, CPU efficiency, memory use share, log runtime, failure probability)
KINDS = np.array([(0.7, 0.95, 0.3, 8.0, 0.05), (2.8, 0.6, 0.6, 9.5, 0.1), (1.4, 0.2, 0.1, 6.0, 0.1),
                  (3.5, 0.85, 0.9, 10.0, 0.2), (0.7, 0.05, 0.05, 4.0, 0.4), (2.1, 0.4, 1.0, 7.0, 0.6)])
FAIL_STATES = ["FAILED", "OUT_OF_MEMORY", "TIMEOUT"]


def build(path: Path, n: int, batch: int = 50_000, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    started = time.monotonic()
    with open_store(path) as store:
        for lo in range(0, n, batch):
            m = min(n, lo + batch) - lo
            kind = rng.integers(0, len(KINDS), m)
            k = KINDS[kind]
            cores = np.maximum(1, np.round(np.expm1(k[:, 0] + rng.normal(0, 0.3, m)))).astype(int)
            eff = np.clip(k[:, 1] + rng.normal(0, 0.1, m), 0.01, 1.0)
            req_mem = rng.choice([2048.0, 8192.0, 65536.0], m)
            rss = np.clip(k[:, 2] + rng.normal(0, 0.1, m), 0.01, 1.2) * req_mem
            elapsed = np.maximum(1, np.expm1(k[:, 3] + rng.normal(0, 0.5, m))).astype(int)
            failed = rng.random(m) < k[:, 4]
            recs = []
            for j in range(m):
                i = lo + j
                u = int(rng.integers(200)) if j % 7 else (i // 7) % 200
                state = FAIL_STATES[i % 3] if failed[j] else "COMPLETED"
                submit = T0 + i * 30.0
                recs.append(JobRecord(
                    "big", str(1_000_000 + i), job_id_raw=1_000_000 + i, user=f"user{u:03d}", uid=20000 + u,
                    name=f"app{i % 500}", state=state, is_final=1, partition=f"p{i % 4}",
                    submit_time=submit, start_time=submit + 60, end_time=submit + 60 + int(elapsed[j]),
                    elapsed_s=int(elapsed[j]), req_cpus=int(cores[j]), alloc_cpus=int(cores[j]), req_nodes=1,
                    alloc_nodes=1, req_mem_mb=float(req_mem[j]), req_mem_per_cpu=0,
                    timelimit_s=int(elapsed[j] * 2 + 600), total_cpu_s=float(eff[j] * elapsed[j] * cores[j]),
                    max_rss_mb=float(rss[j]), exit_code=0 if state == "COMPLETED" else 1, exit_signal=0))
            upsert_jobs(store, recs, "bench")
            print(f"  {lo + m:>9,} jobs  {time.monotonic() - started:6.1f} s", flush=True)
    return time.monotonic() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--data-dir", type=Path, required=True)
    a = ap.parse_args()
    a.data_dir.mkdir(parents=True, exist_ok=True)
    took = build(a.data_dir / "nomade.db", a.jobs)
    print(f"built {a.jobs:,} jobs in {took:.0f} s: {a.data_dir / 'nomade.db'}")


if __name__ == "__main__":
    main()
