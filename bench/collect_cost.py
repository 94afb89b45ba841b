"""Benchmark: what `nomade collect` costs (issue 14, "Measured").

    python bench/collect_cost.py cycles --cycles 10000            # RSS growth over fast cycles
    python bench/collect_cost.py cluster --jobs 1000 --cycles 5     # CPU, RSS and slurmctld RPCs

``cycles``: one Monitor (the daemon's object) runs every collector that can run on this host
without Slurm (disk, nodestats, nfs, zfs, gpu skip cleanly where absent) back to back, writing to a
temporary store, and the process RSS is read after a warm-up of 200 cycles and at the end (stands
in for "runs 7 days": 10,000 cycles of 60 s are 7 days).

``cluster`` (root, the test cluster up): submits one held job array of ``--jobs`` tasks (queued,
never run), then runs 60-s cycles (on a simulated clock, so the shipped intervals and phases
decide what runs when, as in the daemon) of every collector that exists here (queue, nodes,
slurm_health included) and reports per cycle: CPU time (user+sys of this process and its
children, i.e. squeue/sinfo/sdiag), wall time, and the slurmctld RPCs it added, from `sdiag`'s
"Remote Procedure Call statistics by message type" (the counts after minus before, minus the
sdiag calls made to read them). The CPU share at a 60 s interval is CPU per cycle / 60 s.
The array is cancelled at the end. Not a test.
"""

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nomade.collectors.registry import registry
from nomade.config import load_config
from nomade.monitor import Monitor
from nomade.store.db import open_store


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def cpu_s() -> float:
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def monitor(tmp: Path, names, clock=None):
    """The daemon's Monitor. With ``clock``: the shipped intervals and phases on that (simulated)
    clock, as `nomade collect` runs them; without: every collector every cycle."""
    cfg = load_config(None, {"data_dir": str(tmp)}, environ={"NOMADE_CLUSTER": "bench"})
    store = open_store(tmp / "nomade.db")
    found = registry()
    names = [n for n in names if n in found]
    if clock is None:
        return Monitor(cfg, found, store, only=names, interval_s=0.001), store
    mon = Monitor(cfg, found, store, only=names, clock=clock)
    mon.apply_phases(clock())
    return mon, store


def cycles(args) -> None:
    with tempfile.TemporaryDirectory() as d:
        mon, store = monitor(Path(d), ["disk", "nodestats", "nfs", "zfs", "gpu"])
        t = 0.0
        for _ in range(200):
            t += 60.0
            mon.cycle(now=t)
        r0, c0, w0 = rss_mb(), cpu_s(), time.monotonic()
        for _ in range(args.cycles):
            t += 60.0
            mon.cycle(now=t)
        r1, c1, w1 = rss_mb(), cpu_s(), time.monotonic()
        store.close()
    n = args.cycles
    print(f"collectors: {', '.join(mon.names)}")
    print(f"{n} cycles: RSS {r0:.1f} MB after warm-up -> {r1:.1f} MB (growth {r1 - r0:+.2f} MB); "
          f"CPU {1000 * (c1 - c0) / n:.2f} ms/cycle, wall {1000 * (w1 - w0) / n:.2f} ms/cycle")


_RPC = re.compile(r"^\s*([A-Z_0-9]+)\s+\(\s*\d+\)\s+count:(\d+)", re.M)


def sdiag_counts() -> dict:
    out = subprocess.run(["sdiag"], capture_output=True, text=True, check=True).stdout
    part = out.split("Remote Procedure Call statistics by message type", 1)[-1]
    part = part.split("Remote Procedure Call statistics by user", 1)[0]
    return {k: int(v) for k, v in _RPC.findall(part)}


def cluster(args) -> None:
    job = subprocess.run(["sbatch", "--parsable", "--hold", f"--array=0-{args.jobs - 1}", "-o", "/dev/null",
                          "-J", "bench-queue", "--wrap", "true"], capture_output=True, text=True, check=True)
    job_id = job.stdout.strip().split(";")[0]
    try:
        with tempfile.TemporaryDirectory() as d:
            sim = [time.time()]                 # the daemon's clock, 60 s a cycle
            mon, store = monitor(Path(d), list(registry()), clock=lambda: sim[0])
            mon.cycle(now=sim[0])               # first cycle primes the counters
            rows = []
            for _ in range(args.cycles):
                time.sleep(args.pause)
                sim[0] += 60.0
                before = sdiag_counts()
                c0, w0 = cpu_s(), time.monotonic()
                runs = mon.cycle(now=sim[0])
                c1, w1 = cpu_s(), time.monotonic()
                after = sdiag_counts()
                added = {k: after.get(k, 0) - before.get(k, 0) for k in after}
                added = {k: v for k, v in added.items() if v}
                total = sum(added.values()) - 1     # the `before` sdiag itself (REQUEST_STATS_INFO)
                rows.append((c1 - c0, w1 - w0, total, added, [(r.name, r.state) for r in runs]))
            store.close()
    finally:
        subprocess.run(["scancel", job_id], check=False)
    print(f"collectors: {', '.join(mon.names)}; queue: {args.jobs} pending array tasks (held)")
    for cpu, wall, total, added, _runs in rows:
        print(f"cycle: CPU {1000 * cpu:.0f} ms ({100 * cpu / 60.0:.2f} % of one core at a 60 s interval), "
              f"wall {1000 * wall:.0f} ms, slurmctld RPCs added {total}: {added}")
    for _cpu, _wall, _total, _added, runs in rows[:2]:
        print("runs:", runs)
    totals = [r[2] for r in rows]
    print(f"slurmctld RPCs per cycle: max {max(totals)}, mean {sum(totals) / len(totals):.2f} over {len(totals)} cycles")
    print(f"RSS at the end: {rss_mb():.1f} MB; max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    a = sub.add_parser("cycles")
    a.add_argument("--cycles", type=int, default=10000)
    b = sub.add_parser("cluster")
    b.add_argument("--jobs", type=int, default=1000)
    b.add_argument("--cycles", type=int, default=10)
    b.add_argument("--pause", type=float, default=2.0)
    args = ap.parse_args()
    {"cycles": cycles, "cluster": cluster}[args.what](args)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
