"""Benchmark: `nomade status` on a store with 30 days of 60 s samples from 50 nodes.

    python bench/status_speed.py                 # builds bench/out/status_store/ once, then times
    python bench/status_speed.py --rebuild --raw-days 30

The store is filled through ``nomade.store.metrics.write_cycle`` as ``nomade collect`` would fill it
(each simulated day pruned with ``store.metrics.prune``: raw samples kept ``--raw-days``, the
default 7 of ``monitoring.raw_days``, older ones folded into hourly rows). Series: per node PSI
cpu/memory/io (avg10), nodes.state and nodes.cpus_alloc; 8 GPU nodes x 4 GPUs x 2 metrics;
3 filesystems x 5 disk metrics (/scratch filling and accelerating); 4 partitions x pending/running;
3 license features x 2. To write fewer transactions than the daemon, one write_cycle per
collector holds an hour of samples, each with its own ts (the same rows).

Then ``nomade status`` runs as a subprocess (what an admin waits for: interpreter start, imports,
queries, analysis, text) ``--runs`` times, and once in-process for the parts. Not a test.
"""

import argparse
import math
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from nomade.collectors.base import Metric
from nomade.store import metrics as sm
from nomade.store.db import open_store

CLUSTER = "bench"
OUT = Path(__file__).resolve().parent / "out" / "status_store"
DAY, HOUR, STEP = 86400, 3600, 60
NODES = [f"n{i:03d}" for i in range(1, 51)]
GPU_NODES = NODES[:8]
MOUNTS = {"/scratch": 500e12, "/home": 100e12, "/projects": 1e15}
PARTITIONS = ("cpu", "gpu", "bigmem", "debug")
FEATURES = ("matlab", "ansys", "comsol")


def hour_of_metrics(t_hour: float, start: float, rnd: random.Random):
    """{source: [Metric]} for the 60 samples of the hour starting at t_hour."""
    out = {"nodestats": [], "nodes": [], "gpu": [], "disk": [], "queue": [], "licenses": []}
    for k in range(HOUR // STEP):
        ts = t_hour + k * STEP
        days = (ts - start) / DAY
        for i, node in enumerate(NODES):
            for res in ("cpu", "memory", "io"):
                out["nodestats"].append(Metric.of(f"node.psi_{res}_some", abs(rnd.gauss(3, 2)), node, ts,
                                                  window="avg10"))
            drained = i % 17 == 3
            out["nodes"].append(Metric.of("nodes.state", 1, "", ts, node=node,
                                          state="drained" if drained else "mixed",
                                          reason="bad DIMM" if drained else ""))
            out["nodes"].append(Metric.of("nodes.cpus_alloc", rnd.randint(0, 64), "", ts, node=node))
        for node in GPU_NODES:
            for g in range(4):
                out["gpu"].append(Metric.of("gpu.util_pct", rnd.uniform(0, 100), node, ts, gpu=g))
                out["gpu"].append(Metric.of("gpu.mem_used_bytes", rnd.uniform(0, 80e9), node, ts, gpu=g))
        for mount, size in MOUNTS.items():
            frac = 0.3 + 0.01 * days + (0.0004 * days * days if mount == "/scratch" else 0.0)
            used = size * min(frac, 0.99) + rnd.gauss(0, size * 1e-5)
            lab = {"mount": mount, "fstype": "lustre"}
            out["disk"] += [Metric.of("disk.size_bytes", size, "fs1", ts, **lab),
                            Metric.of("disk.used_bytes", used, "fs1", ts, **lab),
                            Metric.of("disk.free_bytes", size - used, "fs1", ts, **lab),
                            Metric.of("disk.inodes_total", 1e9, "fs1", ts, **lab),
                            Metric.of("disk.inodes_used", 1e9 * frac * 0.5, "fs1", ts, **lab)]
        for p in PARTITIONS:
            out["queue"].append(Metric.of("queue.pending", rnd.randint(0, 300), "", ts, partition=p))
            out["queue"].append(Metric.of("queue.running", rnd.randint(0, 200), "", ts, partition=p))
        for f in FEATURES:
            out["licenses"].append(Metric.of("license.issued", 50, "", ts, feature=f, server="27000@lic"))
            out["licenses"].append(Metric.of("license.in_use", rnd.randint(0, 50), "", ts, feature=f,
                                             server="27000@lic"))
    return out


def build(path: Path, days: int, raw_days: float, rollup_days: float = 400.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    rnd = random.Random(30)
    end = math.floor(time.time() / HOUR) * HOUR
    start = end - days * DAY
    t0 = time.perf_counter()
    with open_store(path) as store:
        for h in range(days * 24):
            t_hour = start + h * HOUR
            for source, ms in hour_of_metrics(t_hour, start, rnd).items():
                sm.write_cycle(store, CLUSTER, source, ms, t_hour)
            if (h + 1) % 24 == 0:
                sm.prune(store, t_hour + HOUR, raw_days, rollup_days)
                print(f"  day {(h + 1) // 24}/{days} built ({time.perf_counter() - t0:.0f} s)", flush=True)
        for name in ("nodestats", "nodes", "gpu", "disk", "queue", "licenses"):
            sm.record_run(store, name, end, True, "", 0.05, 100)
        print(f"series: {sm.series_count(store)}")
    print(f"built {path} in {time.perf_counter() - t0:.0f} s, {path.stat().st_size / 2**20:.0f} MiB")


def time_status(path: Path, runs: int) -> None:
    env = dict(os.environ, NOMADE_DATA_DIR=str(path.parent), NOMADE_CLUSTER=CLUSTER)
    cmd = [sys.executable, "-c", "from nomade.cli.main import main; main()", "status"]
    shown = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    print(shown)
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - t)
    print(f"`nomade status` ({runs} runs): min {min(walls):.3f} s, median "
          f"{statistics.median(walls):.3f} s, max {max(walls):.3f} s")
    from nomade.analysis.views import Analysis
    with open_store(path, readonly=True) as store:
        a = Analysis(store, cluster=CLUSTER)
        for name in ("disks", "_queue", "_nodes", "_pressure", "_gpus", "_licenses"):
            t = time.perf_counter()
            getattr(a, name)()
            print(f"  {name:<10} {1000 * (time.perf_counter() - t):7.1f} ms")
        t = time.perf_counter()
        sm.collector_health(store)
        print(f"  {'health':<10} {1000 * (time.perf_counter() - t):7.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--raw-days", type=float, default=7.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--store", type=Path, default=OUT / "nomade.db")
    args = ap.parse_args()
    if args.rebuild or not args.store.exists():
        build(args.store, args.days, args.raw_days)
    time_status(args.store, args.runs)


if __name__ == "__main__":
    main()
