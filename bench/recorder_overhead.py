"""Recorder overhead: CPU per sampling pass and RSS with N busy processes in one fake job cgroup.

    sudo python bench/recorder_overhead.py [--procs 64] [--passes 30]

Creates job_<id> cgroups under /sys/fs/cgroup/<memory,cpuacct,freezer>/nomade_bench/uid_0/ (v1)
or /sys/fs/cgroup/nomade_bench/job_<id> (v2), starts N shell loops in them (each appends to a
file on local disk and one on /dev/shm, spins briefly, sleeps 1 s), then
  1. times ``Recorder.run_once`` (sampling + spool write) in this process: CPU s per pass, and
     the average % of one core that costs at a 30 s interval;
  2. runs the real daemon (``nomade record --interval 1``) for a few passes and reads its RSS
     (VmRSS / VmHWM) from /proc.
Without root (no cgroup), the children carry SLURM_JOB_ID and the recorder's /proc fallback is
measured instead. Everything it creates is removed at the end. Not a test: it prints figures.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CG = Path("/sys/fs/cgroup")
JOB = "990001"
LOOP = ('exec 3>>"$1/disk.$$" 4>>/dev/shm/nomade-bench.$$; '
        'while :; do echo line >&3; echo line >&4; i=0; while [ $i -lt 300 ]; do i=$((i+1)); done; '
        'sleep 1; done')


def make_cgroups():
    if (CG / "cgroup.controllers").exists():
        d = CG / "nomade_bench" / f"job_{JOB}" / "step_batch"
        d.mkdir(parents=True, exist_ok=True)
        return [d], "v2"
    dirs = []
    for ctrl in ("memory", "cpuacct", "freezer"):
        if (CG / ctrl).is_dir():
            d = CG / ctrl / "nomade_bench" / "uid_0" / f"job_{JOB}" / "step_batch"
            d.mkdir(parents=True, exist_ok=True)
            dirs.append(d)
    return dirs, "v1"


def remove_cgroups():
    for top in [CG / "nomade_bench"] + [CG / c / "nomade_bench" for c in ("memory", "cpuacct", "freezer")]:
        if top.is_dir():
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                d.rmdir()
            top.rmdir()


def start_children(n, workdir, cg_dirs):
    env = dict(os.environ, SLURM_JOB_ID=JOB, SLURM_CPUS_ON_NODE=str(n))
    procs = []
    for _ in range(n):
        p = subprocess.Popen(["/bin/sh", "-c", LOOP, "sh", str(workdir)], env=env,
                             start_new_session=True)
        for d in cg_dirs:
            (d / "cgroup.procs").write_text(str(p.pid))
        procs.append(p)
    return procs


def measure_in_process(passes, spool):
    from nomade.recorder.daemon import Recorder, RecorderOptions
    rec = Recorder(RecorderOptions(spool_dir=spool, interval_s=30, node="bench"))
    rec.run_once()                                    # warm-up: imports, first-seen processes
    cpu, wall, nprocs = [], [], 0
    for _ in range(passes):
        c0, w0 = time.process_time(), time.perf_counter()
        res = rec.run_once()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        nprocs = sum(s.extra.get("nprocs", 0) for s in res.samples if s.job_id == JOB)
        time.sleep(1.1)                               # every child writes between passes
    rec.spool.close()
    return cpu, wall, nprocs


def measure_daemon_rss(spool, seconds):
    cmd = [sys.executable, "-c", "from nomade.cli.main import main; main()", "record",
           "--interval", "1", "--spool-dir", str(spool)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    status = Path(f"/proc/{p.pid}/status").read_text()
    fields = {k: v.strip() for k, _, v in (ln.partition(":") for ln in status.splitlines())}
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
    return fields.get("VmRSS"), fields.get("VmHWM")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=64)
    ap.add_argument("--passes", type=int, default=20)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nomade-bench-"))
    cg_dirs, mode = [], "proc-environ fallback"
    try:
        cg_dirs, mode = make_cgroups()
    except OSError as exc:
        print(f"no cgroup ({exc.strerror}); measuring the /proc fallback", file=sys.stderr)
    procs = start_children(args.procs, work, cg_dirs)
    try:
        time.sleep(2)
        cpu, wall, seen = measure_in_process(args.passes, work / "spool")
        rss, hwm = measure_daemon_rss(work / "spool-daemon", 8)
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
        for p in procs:
            p.wait()
        for f in Path("/dev/shm").glob("nomade-bench.*"):
            f.unlink()
        shutil.rmtree(work, ignore_errors=True)
        if cg_dirs:
            time.sleep(0.5)
            remove_cgroups()
    cpu.sort()
    avg = sum(cpu) / len(cpu)
    print(f"mode: cgroup {mode}" if cg_dirs else f"mode: {mode}")
    print(f"job processes sampled per pass: {seen} (started {args.procs})")
    print(f"CPU per pass: mean {avg * 1000:.1f} ms, median {cpu[len(cpu) // 2] * 1000:.1f} ms, "
          f"max {cpu[-1] * 1000:.1f} ms over {len(cpu)} passes; wall mean {sum(wall) / len(wall) * 1000:.1f} ms")
    print(f"average load at a 30 s interval: {avg / 30 * 100:.3f} % of one core")
    print(f"daemon RSS (nomade record --interval 1, after 8 s): VmRSS {rss}, VmHWM {hwm}")


if __name__ == "__main__":
    main()
