"""sbatch throughput with nomade's job_submit.lua vs without it, alternating in the same run on
the real cluster (tests/slurm/cluster.sh). "Without" is an empty pass-through job_submit.lua, so
both sides run under JobSubmitPlugins=lua and the switch needs no slurmctld restart (the script
is reloaded on mtime change); the difference measured is exactly nomade's Lua work per submission.

Jobs are submitted --hold (nothing runs) and cancelled after each batch.

usage (root): python bench/sbatch_throughput.py [--batch 100] [--rounds 6] [--clients 1] [--model lua/test_model.lua]
"""

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "slurm"))
ETC_LUA = Path("/etc/slurm/job_submit.lua")
MODEL = Path("/opt/nomade-bench/submit_model.lua")
EMPTY = ("function slurm_job_submit(job_desc, part_list, submit_uid) return slurm.SUCCESS end\n"
         "function slurm_job_modify(job_desc, job_rec, part_list, modify_uid) return slurm.SUCCESS end\n"
         "return slurm.SUCCESS\n")


def nomade_lua() -> str:
    text = (ROOT / "lua" / "job_submit.lua").read_text()
    return text.replace('local MODEL_PATH = "/etc/nomade/submit_model.lua"', f'local MODEL_PATH = "{MODEL}"')


def install(text: str) -> None:
    time.sleep(1.1)  # slurmctld reloads only when the mtime is newer, 1-second resolution
    tmp = ETC_LUA.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, ETC_LUA)
    subprocess.run(["sbatch", "--hold", "-o", "/dev/null", "-J", "warm", "--wrap", "true"],
                   capture_output=True, check=True)  # first submission after a swap pays the reload


def one(i: int) -> str:
    name = "risky-bench" if i % 10 == 0 else "bench"  # 10 % get the message, like a real mix
    r = subprocess.run(["sbatch", "--parsable", "--hold", "-o", "/dev/null", "-J", name, "--wrap", "true"],
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


CTLD_LOG = Path("/var/log/slurm/slurmctld.log")
USEC = re.compile(r"_slurm_rpc_submit_batch_job: JobId=(\d+) .*usec=(\d+)")


def server_usec(offset: int, ids: set) -> list:
    """slurmctld's own time for each submit RPC (job_submit.lua runs inside it)."""
    with open(CTLD_LOG, "rb") as fh:
        fh.seek(offset)
        text = fh.read().decode("utf-8", "replace")
    return [int(m.group(2)) for m in USEC.finditer(text) if m.group(1) in ids]


def batch(n: int, clients: int):
    off = CTLD_LOG.stat().st_size
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as ex:
        ids = set(ex.map(one, range(n)))
    dt = time.perf_counter() - t0
    for name in ("bench", "risky-bench", "warm"):  # only this benchmark's held jobs
        subprocess.run(["scancel", "--name", name], check=False)
    return n / dt, server_usec(off, ids)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--model", default=str(ROOT / "lua" / "test_model.lua"))
    a = ap.parse_args()
    import nomade_slurm_setup as S
    MODEL.parent.mkdir(parents=True, exist_ok=True)
    MODEL.write_text(Path(a.model).read_text())
    seed = MODEL.parent / "job_submit.lua"
    seed.write_text(EMPTY)
    S.cluster_up({"NOMADE_SLURM_JOB_SUBMIT_LUA": str(seed), "NOMADE_SLURM_SMOKE": "0"})
    rates = {"without": [], "with": []}
    usec = {"without": [], "with": []}
    pairs = []
    for r in range(a.rounds):
        got = {}
        for side in (("without", "with") if r % 2 == 0 else ("with", "without")):
            install(nomade_lua() if side == "with" else EMPTY)
            rate, us = batch(a.batch, a.clients)
            rates[side].append(rate)
            usec[side].extend(us)
            got[side] = rate
            print(f"round {r} {side:>7}: {rate:.1f} jobs/s, slurmctld submit RPC median "
                  f"{statistics.median(us) if us else float('nan'):.0f} us", flush=True)
        pairs.append(got["with"] / got["without"])
    install(EMPTY)
    subprocess.run(["scancel", "--name", "warm"], check=False)
    w, wo = statistics.median(rates["with"]), statistics.median(rates["without"])
    # the rounds alternate the order (ABBA), so the per-round ratio cancels the drift of a
    # slurmctld that slows down as finished jobs pile up; its spread over rounds is the noise
    rng = random.Random(1)
    boot = sorted(statistics.median(rng.choices(pairs, k=len(pairs))) for _ in range(2000))
    print(f"per-round ratio with/without: median {statistics.median(pairs):.3f}, bootstrap 95 % "
          f"interval of the median [{boot[50]:.3f}, {boot[1949]:.3f}], min {min(pairs):.3f}, "
          f"max {max(pairs):.3f} over {len(pairs)} rounds")
    print(f"median with nomade {w:.1f} jobs/s, without {wo:.1f} jobs/s, ratio of medians {w / wo:.3f} "
          f"(batch {a.batch}, rounds {a.rounds}, clients {a.clients}, load {os.getloadavg()[0]:.1f})")
    for side in ("without", "with"):
        us = sorted(usec[side])
        if us:
            print(f"slurmctld submit RPC {side:>7}: median {statistics.median(us):.0f} us, "
                  f"p90 {us[int(0.9 * (len(us) - 1))]} us (n={len(us)})")


if __name__ == "__main__":
    main()
