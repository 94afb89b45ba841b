"""Prolog / Epilog wall time: run the installed-style entry scripts (slurm_plugins/prolog and
epilog, filled in like `nomade install-slurm` does) N times with a Slurm-like environment and
print p50 / p99 / max. The Prolog calls the real `scontrol show job` for --job-id (use a live
job for the realistic path) and scores with --scorer (default: a pure-Python stub; "" = the
bundle's ONNX ensemble).

usage: python bench/hook_latency.py [-n 200] [--python PY] [--job-id ID] [--scorer module:function]
                                   [--bundle DIR]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUB = "def score(req):\n    return (0.3, ['stub'], 'bench')\n"


def fill(src: Path, dest: Path, python: str, conf: Path, pythonpath: str, log: Path) -> Path:
    text = src.read_text()
    for k, v in (("NOMADE_PYTHON", python), ("NOMADE_CONF", str(conf)), ("NOMADE_PYTHONPATH", pythonpath),
                 ("NOMADE_HOOK_LOG", str(log))):
        text = "\n".join(f"{k}={v}" if ln.startswith(f"{k}=") else ln for ln in text.split("\n"))
    dest.write_text(text)
    dest.chmod(0o755)
    return dest


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--job-id", default="1")
    ap.add_argument("--scorer", default="nomade_bench_stub:score")
    ap.add_argument("--bundle", default="", help="model.bundle for --scorer '' (default: the registry's)")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nomade-hookbench-"))
    (tmp / "nomade_bench_stub.py").write_text(STUB)
    conf = tmp / "nomade.toml"
    model = f'[model]\nbundle = "{a.bundle}"\n' if a.bundle else ""
    conf.write_text(f'data_dir = "{tmp / "data"}"\n{model}[hooks]\nscorer = "{a.scorer}"\n'
                    f'runtime_dir = "{tmp / "run"}"\nlog_file = "{tmp / "hooks.log"}"\n')
    pp = f"{tmp}:{ROOT / 'src'}"
    scripts = {h: fill(ROOT / "slurm_plugins" / h, tmp / h, a.python, conf, pp, tmp / "entry.log")
               for h in ("prolog", "epilog")}
    env = {"PATH": os.environ["PATH"], "SLURM_JOB_ID": a.job_id, "SLURM_JOB_USER": "alice",
           "SLURM_JOB_UID": str(os.getuid()), "SLURM_JOB_GID": str(os.getgid()), "SLURMD_NODENAME": "bench",
           "SLURM_JOB_EXIT_CODE2": "0:0", "SLURM_JOB_EXIT_CODE": "0"}
    for hook, script in scripts.items():
        times = []
        for _ in range(a.n):
            t0 = time.perf_counter()
            subprocess.run([str(script)], env=env, check=True)
            times.append(time.perf_counter() - t0)
        print(f"{hook}: n={a.n} p50={statistics.median(times):.3f}s p99={pct(times, 99):.3f}s "
              f"max={max(times):.3f}s (python {a.python}, scorer {a.scorer or 'bundle ONNX'})")
    log = (tmp / "hooks.log").read_text().splitlines()
    print(f"last log lines:\n  {log[-2]}\n  {log[-1]}")


if __name__ == "__main__":
    main()
