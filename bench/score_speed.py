"""Scoring speed and memory with a bundle (default: models/default).

    python bench/score_speed.py [BUNDLE_DIR] [--batch 100000] [--single 2000]

Prints: batch of --batch jobs (feature build, onnxruntime, total; without and with reasons),
warm single-job p50/p99 (features + ONNX + reasons), peak RSS of this process (which imports
only the scoring path), and the Lua submit model's per-evaluation time in lua5.1 (os.clock over
10k M.predict calls). Not a test."""

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def requests(n: int, users: int = 500, seed: int = 1):
    rng = np.random.default_rng(seed)
    t0 = 1.75e9
    out = []
    for i in range(n):
        out.append({"user": f"u{int(rng.integers(users))}", "name": f"app{int(rng.integers(50))}",
                    "cpus": int(rng.choice([1, 8, 32, 128])), "nodes": int(rng.choice([1, 2, 8])),
                    "mem_mb": float(rng.choice([1000, 4000, 16000])), "mem_per_cpu": bool(rng.random() < 0.3),
                    "timelimit_s": int(rng.choice([600, 3600, 86400])), "submit_time": t0 + i * 7.0,
                    "recent_submits": int(rng.integers(0, 6))})
    return out


def lua_speed(bundle: Path, reqs) -> str:
    lua = shutil.which("lua5.1")
    if lua is None or not (bundle / "submit_model.lua").is_file():
        return "lua5.1 or submit_model.lua missing"
    r = reqs[0]
    script = (f'local M = dofile("{bundle}/submit_model.lua")\n'
              f'local req = {{user="{r["user"]}", name="{r["name"]}", cpus={r["cpus"]}, nodes={r["nodes"]}, '
              f'mem_mb={r["mem_mb"]}, mem_per_cpu=false, timelimit_s={r["timelimit_s"]}, '
              f'submit_time={int(r["submit_time"])}, recent_submits=2}}\n'
              'local n = 10000\n'
              'local function bench(f) local t0 = os.clock(); for i = 1, n do req.cpus = (i % 64) + 1; f(req) end; '
              'return (os.clock() - t0) / n * 1e6 end\n'
              'local th = M.threshold\n'
              'local p = bench(M.predict)\n'
              'M.threshold = 2; local low = bench(M.predict)\n'
              'M.threshold = -1; local high = bench(M.predict); M.threshold = th\n'
              'print(string.format("%.1f us per M.predict (mixed); %.1f us below the threshold (risk only); '
              '%.1f us at/above it (risk + reasons + suggestion)", p, low, high))\n')
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    t = time.time()
    out = subprocess.run([lua, f.name], capture_output=True, text=True, timeout=300)
    load = time.time() - t
    if out.returncode != 0:
        return "lua error: " + out.stderr.strip()[:200]
    return f"{out.stdout.strip()} (10k calls each, lua5.1 os.clock; whole process {load:.2f}s)"


SINGLE = r"""
import resource, sys, time
import numpy as np
sys.path.insert(0, sys.argv[3])
from score_speed import requests
from nomade.scoring.bundle import load_bundle
from nomade.scoring.score import Scorer
sc = Scorer(load_bundle(sys.argv[1]))
reqs = requests(int(sys.argv[2]))
lat, cpu = [], []
for r in reqs:
    t, c = time.perf_counter(), time.process_time()
    sc.score([r])
    lat.append(time.perf_counter() - t); cpu.append(time.process_time() - c)
lat, cpu = np.array(lat[50:]) * 1e3, np.array(cpu[50:]) * 1e3
# VmHWM (peak RSS of this program image); ru_maxrss would carry the parent's peak over exec
rss = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0] / 1024
heavy = [x for x in ("torch", "lightgbm", "sklearn", "onnx") if x in sys.modules]
print(f"single job (warm, fresh process, with reasons): wall p50 {np.percentile(lat, 50):.3f} ms "
      f"p99 {np.percentile(lat, 99):.3f} ms; cpu-time p99 {np.percentile(cpu, 99):.3f} ms over {len(lat)} calls")
print(f"scoring process peak RSS {rss:.0f} MB (heavy modules loaded: {heavy or 'none'})")
"""


def single_job(bundle: str, n: int) -> None:
    out = subprocess.run([sys.executable, "-c", SINGLE, bundle, str(n), str(Path(__file__).parent)],
                         capture_output=True, text=True, timeout=600)
    print(out.stdout.strip() or out.stderr.strip()[-500:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle", nargs="?", default=str(Path(__file__).resolve().parents[1] / "models" / "default"))
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--single", type=int, default=2000)
    a = ap.parse_args()
    from nomade.scoring.bundle import load_bundle
    from nomade.scoring.score import Scorer

    t = time.time()
    sc = Scorer(load_bundle(a.bundle))
    m = sc.model_for("submit")
    print(f"bundle {sc.bundle.version} model {m.name}: load {time.time() - t:.3f}s")
    reqs = requests(a.batch)
    t, c = time.time(), time.process_time()
    X = m.features.rows(reqs)
    print(f"batch {a.batch}: features (Python) wall {time.time() - t:.3f}s cpu {time.process_time() - c:.3f}s")
    m.probability(X[:10])
    t, c = time.time(), time.process_time()
    m.probability(X)
    print(f"batch {a.batch}: onnxruntime (1 thread) wall {time.time() - t:.3f}s cpu {time.process_time() - c:.3f}s")
    t, c = time.time(), time.process_time()
    sc.score(reqs, explain=False)
    print(f"batch {a.batch}: Scorer.score without reasons wall {time.time() - t:.3f}s cpu {time.process_time() - c:.3f}s")
    t, c = time.time(), time.process_time()
    sc.score(reqs, explain=True)
    print(f"batch {a.batch}: Scorer.score with reasons wall {time.time() - t:.3f}s cpu {time.process_time() - c:.3f}s")
    del X
    single_job(a.bundle, a.single)
    print("lua:", lua_speed(Path(a.bundle), reqs))


if __name__ == "__main__":
    main()
