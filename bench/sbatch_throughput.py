"""sbatch throughput with nomade's job_submit.lua vs without it, alternating in the same run on
the real cluster (tests/slurm/cluster.sh). "Without" is an empty pass-through job_submit.lua, so
both sides run under JobSubmitPlugins=lua and the switch needs no slurmctld restart (the script
is reloaded on mtime change); the difference measured is exactly nomade's Lua work per submission.

Jobs are submitted --hold (nothing runs) and cancelled after each batch.

usage (root): python bench/sbatch_throughput.py [--batch 100] [--rounds 6] [--clients 1] [--model lua/test_model.lua]
"""

import argparse
import os
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


def batch(n: int, clients: int) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as ex:
        list(ex.map(one, range(n)))
    dt = time.perf_counter() - t0
    for name in ("bench", "risky-bench", "warm"):  # only this benchmark's held jobs
        subprocess.run(["scancel", "--name", name], check=False)
    return n / dt


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
    for r in range(a.rounds):
        for side in (("without", "with") if r % 2 == 0 else ("with", "without")):
            install(nomade_lua() if side == "with" else EMPTY)
            rates[side].append(batch(a.batch, a.clients))
            print(f"round {r} {side:>7}: {rates[side][-1]:.1f} jobs/s", flush=True)
    install(EMPTY)
    w, wo = statistics.median(rates["with"]), statistics.median(rates["without"])
    print(f"median with nomade {w:.1f} jobs/s, without {wo:.1f} jobs/s, ratio {w / wo:.3f} "
          f"(batch {a.batch}, rounds {a.rounds}, clients {a.clients})")


if __name__ == "__main__":
    main()
