"""Scoring speed and memory with a bundle (default: models/default; pass a trained bundle for the
stacked ensemble).

    python bench/score_speed.py [BUNDLE_DIR] [--batch 100000] [--single 2000] [--stage submit]

Prints, for a batch of --batch jobs: the feature rows (Python), every base model's onnxruntime
call (and, apart, the neighbour search and sequence lookup that feed the GNN and the LSTM), and
Scorer.score without and with reasons; then the warm single-job p50/p99 (features + every base +
reasons) and the peak RSS of a fresh scoring process (which imports only the scoring path), and
the Lua submit model's per-evaluation time in lua5.1 (os.clock over 10k M.predict calls).
Not a test."""

import argparse
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
    r["start_time"] = r["submit_time"] + 300.0
    t, c = time.perf_counter(), time.process_time()
    sc.score([r], stage=sys.argv[4])
    lat.append(time.perf_counter() - t); cpu.append(time.process_time() - c)
lat, cpu = np.array(lat[50:]) * 1e3, np.array(cpu[50:]) * 1e3
# VmHWM (peak RSS of this program image); ru_maxrss would carry the parent's peak over exec
rss = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0] / 1024
heavy = [x for x in ("torch", "lightgbm", "sklearn", "onnx") if x in sys.modules]
print(f"single job (warm, fresh process, with reasons): wall p50 {np.percentile(lat, 50):.3f} ms "
      f"p99 {np.percentile(lat, 99):.3f} ms; cpu-time p99 {np.percentile(cpu, 99):.3f} ms over {len(lat)} calls")
print(f"scoring process peak RSS {rss:.0f} MB (heavy modules loaded: {heavy or 'none'})")
"""


def single_job(bundle: str, n: int, stage: str) -> None:
    out = subprocess.run([sys.executable, "-c", SINGLE, bundle, str(n), str(Path(__file__).parent), stage],
                         capture_output=True, text=True, timeout=600)
    print(out.stdout.strip() or out.stderr.strip()[-500:])


def timed(label: str, fn):
    t, c = time.time(), time.process_time()
    out = fn()
    print(f"  {label}: wall {time.time() - t:.3f}s cpu {time.process_time() - c:.3f}s")
    return out


def stack_batch(m, reqs) -> None:
    """Per-base breakdown of one stacked batch: onnxruntime apart from its numpy inputs."""
    X, moments = timed("feature rows (Python HistoryState)", lambda: m.features.rows(reqs))
    users = [r["user"] for r in reqs]
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    onnx_total = 0.0
    for b in m.bases:
        feeds = {"X": X32}
        if b.kind == "lite":
            recent = [m.features.history.submissions(u, float(t))[0] for u, t in zip(users, moments)]
            feeds["X"] = np.ascontiguousarray(timed("lite rows (Python LiteHistory)",
                                                    lambda b=b, recent=recent: b.lite.rows(reqs, recent)),
                                          dtype=np.float32)
        elif b.kind == "gnn":
            feeds["NBR_MEAN"] = timed(f"neighbour search, {len(b.bank.Z)}-job bank (numpy)",
                                      lambda b=b: b.bank.aggregate(X32))
        elif b.kind == "lstm":
            feeds["SEQ"] = timed("sequence lookup (numpy)", lambda b=b: b.table.sequences(users, moments))
        out = {"gbdt": "probability", "lite": "probability", "autoencoder": "err"}.get(b.kind, "p")
        b.session.run([out], {k: v[:10] for k, v in feeds.items()})   # warm
        t = time.time()
        b.session.run([out], feeds)
        dt = time.time() - t
        onnx_total += dt
        print(f"  onnxruntime {b.name}: {dt:.3f}s")
    print(f"  onnxruntime, all {len(m.bases)} graphs: {onnx_total:.3f}s "
          f"({m.bases[0].session.get_session_options().intra_op_num_threads} thread(s) each)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle", nargs="?", default=str(Path(__file__).resolve().parents[1] / "models" / "default"))
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--single", type=int, default=2000)
    ap.add_argument("--stage", default="submit")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads per graph (batch part)")
    a = ap.parse_args()
    from nomade.scoring.ensemble import StackedScorer
    from nomade.scoring.bundle import load_bundle
    from nomade.scoring.score import Scorer

    t = time.time()
    sc = Scorer(load_bundle(a.bundle), threads=a.threads)
    m = sc.model_for(a.stage)
    print(f"bundle {sc.bundle.version} model {m.name}: load {time.time() - t:.3f}s")
    reqs = requests(a.batch)
    for r in reqs:
        r["start_time"] = r["submit_time"] + 300.0
    print(f"batch of {a.batch} jobs:")
    if isinstance(m, StackedScorer):
        stack_batch(m, reqs)
    else:
        X = timed("feature rows (Python)", lambda: m.rows(reqs))
        m.probability(X[:10])
        timed("onnxruntime (1 thread)", lambda: m.probability(X))
        del X
    timed("Scorer.score without reasons", lambda: sc.score(reqs, stage=a.stage, explain=False))
    timed("Scorer.score with reasons", lambda: sc.score(reqs, stage=a.stage, explain=True))
    single_job(a.bundle, a.single, a.stage)
    print("lua:", lua_speed(Path(a.bundle), reqs))


if __name__ == "__main__":
    main()
