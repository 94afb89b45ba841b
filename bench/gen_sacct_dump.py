#!/usr/bin/env python3
"""Generate a large, real-shaped `sacct -a -D -P` dump (header line + job and step rows).

Shapes follow the rows a Slurm 22.05 cluster prints (tests/fixtures/sacct/, the shared samples):
every started job has `.batch` and `.extern` steps, a third also `.0` (srun); 15% are array tasks
(`123_4`), a few pending array ranges (`123_[5-9]`), heterogeneous jobs (`123+0`/`123+1`); states
mixed (COMPLETED, FAILED, TIMEOUT, OUT_OF_MEMORY, CANCELLED by <uid>, NODE_FAIL, PREEMPTED,
PENDING, RUNNING, REQUEUED), some names with spaces/unicode, some submit lines with '|'.

    python bench/gen_sacct_dump.py --jobs 1000000 --out bench/out/sacct_1m.txt
"""

import argparse
import os
import random
import sys
import time

FIELDS = ("JobID|JobIDRaw|Cluster|User|UID|Group|Account|Partition|QOS|State|ExitCode|"
          "DerivedExitCode|Submit|Eligible|Start|End|Elapsed|Timelimit|ReqMem|ReqCPUS|ReqNodes|"
          "ReqTRES|AllocCPUS|NNodes|AllocTRES|NodeList|MaxRSS|TotalCPU|JobName|WorkDir|SubmitLine")
USERS = [(f"user{i:03d}", 10000 + i) for i in range(300)]
ACCOUNTS = ["physics", "chem", "bio", "cs", "math", "astro", "geo", "med"]
PARTS = [("cpu", "normal"), ("gpu", "gpu"), ("debug", "debug"), ("bigmem", "normal"), ("long", "long")]
NAMES = ["run.sh", "train", "sim_%d", "analysis", "wrap", "bash", "vasp", "gromacs_md", "lammps",
         "café run", "模拟", "job array", "interactive", "postproc"]
STATES = [("COMPLETED", 60), ("FAILED", 12), ("TIMEOUT", 6), ("OUT_OF_MEMORY", 4),
          ("CANCELLED", 8), ("NODE_FAIL", 1), ("PREEMPTED", 1), ("RUNNING", 4), ("PENDING", 3),
          ("REQUEUED", 1)]
LIMITS = ["01:00:00", "04:00:00", "1-00:00:00", "2-00:00:00", "00:30:00", "UNLIMITED",
          "Partition_Limit", "12:00:00"]


def dur(s: int) -> str:
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}-{h:02d}:{m:02d}:{s:02d}" if d else f"{h:02d}:{m:02d}:{s:02d}"


def cpu_text(s: float) -> str:
    if s < 3600:
        m, sec = divmod(s, 60)
        return f"{int(m):02d}:{sec:06.3f}"
    return dur(int(s))


def ts(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--out", default="bench/out/sacct_1m.txt")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    states = [s for s, w in STATES for _ in range(w)]
    t0 = 1767225600.0  # 2026-01-01
    jid = 1000
    written = lines = 0
    with open(a.out, "w", encoding="utf-8", newline="\n") as out:
        out.write(FIELDS + "\n")
        w = out.write
        while written < a.jobs:
            jid += 1
            kind = rnd.random()
            if kind < 0.15:
                ids = [(f"{jid}_{k}", jid + k) for k in range(rnd.randint(2, 8))]
                if rnd.random() < 0.1:
                    ids.append((f"{jid}_[{len(ids)}-{len(ids) + 20}]", jid))
            elif kind < 0.17:
                ids = [(f"{jid}+0", jid), (f"{jid}+1", jid + 1)]
            else:
                ids = [(str(jid), jid)]
            jid += len(ids)
            user, uid = rnd.choice(USERS)
            acct = rnd.choice(ACCOUNTS)
            part, qos = rnd.choice(PARTS)
            name = rnd.choice(NAMES)
            if "%d" in name:
                name = name % rnd.randint(1, 500)
            t0 += rnd.random() * 30
            for job_id, raw in ids:
                if written >= a.jobs:
                    break
                written += 1
                st = rnd.choice(states)
                if job_id.endswith("]"):
                    st = "PENDING"
                cpus = rnd.choice((1, 1, 2, 4, 8, 16, 32, 64))
                nodes = 1 if cpus <= 32 else rnd.choice((1, 2, 4))
                mem = rnd.choice(("500M", "4000M", "16G", "64G", "2G", "120G"))
                gpu = ",gres/gpu=%d" % rnd.choice((1, 2, 4)) if part == "gpu" else ""
                reqtres = f"billing={cpus},cpu={cpus}{gpu},mem={mem},node={nodes}"
                limit = rnd.choice(LIMITS)
                submit = t0
                elig = submit + rnd.choice((0, 0, 1, 5))
                wd = f"/home/{user}/proj{rnd.randint(1, 40)}"
                sub = f"sbatch -p {part} -c {cpus} --mem={mem} {name.split()[0]}.sh"
                r = rnd.random()
                if r < 0.01:
                    sub = "sbatch --wrap=cat in.txt | sort | uniq -c > out.txt"
                elif r < 0.012:
                    sub = "sbatch --wrap=python -c 'print(1)\nprint(2)'"
                exitc = "0:0"
                by = ""
                if st == "FAILED":
                    exitc = f"{rnd.choice((1, 2, 127, 134))}:0"
                elif st in ("TIMEOUT", "OUT_OF_MEMORY"):
                    exitc = "0:15" if st == "TIMEOUT" else "0:125"
                elif st == "CANCELLED":
                    by = f" by {uid if rnd.random() < 0.7 else 0}"
                if st == "PENDING":
                    start = end = "Unknown"
                    el = 0
                    alloc = nodelist = ""
                    acpus = 0
                    anodes = nodes
                else:
                    s0 = elig + rnd.expovariate(1 / 600)
                    el = int(rnd.expovariate(1 / 3600)) if st != "RUNNING" else int(rnd.random() * 3600)
                    start = ts(s0)
                    end = "Unknown" if st == "RUNNING" else ts(s0 + el)
                    alloc = f"billing={cpus},cpu={cpus}{gpu},mem={mem},node={nodes}"
                    nodelist = f"c{rnd.randint(1, 512):04d}" if nodes == 1 else f"c[{rnd.randint(1, 256):04d}-{rnd.randint(257, 512):04d}]"
                    acpus = cpus
                    anodes = nodes
                tcpu = el * cpus * rnd.random()
                w(f"{job_id}|{raw}|lab|{user}|{uid}|{acct}|{acct}|{part}|{qos}|{st}{by}|{exitc}|0:0|"
                  f"{ts(submit)}|{ts(elig)}|{start}|{end}|{dur(el)}|{limit}|{mem}|{cpus}|{nodes}|"
                  f"{reqtres}|{acpus}|{anodes}|{alloc}|{nodelist or 'None assigned'}||"
                  f"{cpu_text(tcpu)}|{name}|{wd}|{sub}\n")
                lines += 1
                if st == "PENDING":
                    continue
                steps = ["batch", "extern"] + (["0"] if rnd.random() < 0.33 else [])
                for sid in steps:
                    sst = "COMPLETED" if sid == "extern" else ("CANCELLED" if st in ("TIMEOUT", "CANCELLED") else ("RUNNING" if st == "RUNNING" else st))
                    rss = f"{rnd.randint(1000, 60_000_000)}K" if sid != "extern" else "0"
                    scpu = cpu_text(tcpu / 2) if sid != "extern" else "00:00:00"
                    w(f"{job_id}.{sid}|{raw}.{sid}|lab||||{acct}|||{sst}|{exitc}||"
                      f"{ts(submit)}|{ts(elig)}|{start}|{end}|{dur(el)}|||{cpus if sid == 'batch' else ''}|{anodes}|"
                      f"|{acpus}|{anodes}|cpu={cpus},mem={mem},node={nodes}|{nodelist}|{rss}|"
                      f"{scpu}|{sid if sid != '0' else name}||\n")
                    lines += 1
    print(f"wrote {written} jobs, {lines} rows (+ header) to {a.out} "
          f"({os.path.getsize(a.out) / 1e6:.0f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
