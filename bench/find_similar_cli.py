"""Benchmark (not a test): ``nomade similarity --find-similar JOBID`` as a user runs it, with the
cache of behaviour.cache warm (docs/benchmarks.md, "Behaviour analysis").

Per run, in a fresh process: the whole process (interpreter start included); the CLI's own
time from before ``import nomade`` to the command's end, split into imports (the CLI and the
modules the command imports: click, numpy, ...) and the command itself (configuration, store,
cache key, memory-mapped arrays, look-up, JSON); and, in one process, the command called again
and again (a long-running caller). The first call builds the cache and is reported apart.

    .venv/bin/python bench/find_similar_cli.py --data-dir /tmp/behaviour-1m [--runs 15]
"""

import argparse
import statistics
import subprocess
import sys
import time

CHILD = """
import sys, time
t = time.perf_counter()
from nomade.cli.main import cli
import nomade.behaviour.cache, nomade.behaviour.similar, nomade.whyservice.access
t1 = time.perf_counter()
try:
    cli.main(args=sys.argv[1:], prog_name="nomade", standalone_mode=False)
finally:
    t2 = time.perf_counter()
    sys.stderr.write("own %.6f %.6f %.6f\\n" % (t2 - t, t1 - t, t2 - t1))
"""


def child(args):
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", CHILD] + args, capture_output=True, text=True, check=True)
    whole = time.perf_counter() - t
    own = [float(v) for v in [ln for ln in p.stderr.splitlines() if ln.startswith("own ")][-1].split()[1:]]
    return whole, own[0], own[1], own[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--job", default="1000005")
    ap.add_argument("--runs", type=int, default=15)
    a = ap.parse_args()
    args = ["--data-dir", a.data_dir, "similarity", "--find-similar", a.job, "--json"]
    first_whole, first_own, _, _ = child(args)
    print(f"first call (cache built or current): {first_whole:.2f} s whole process, {first_own:.2f} s own", flush=True)
    bare = [child(["--version"])[0] for _ in range(3)]
    runs = [child(args) for _ in range(a.runs)]
    whole = statistics.median(r[0] for r in runs)
    own = statistics.median(r[1] for r in runs)
    imports = statistics.median(r[2] for r in runs)
    command = statistics.median(r[3] for r in runs)
    base = [0.0]
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        base.append(time.perf_counter() - t)
    from nomade.cli.main import cli
    inproc = []
    for _ in range(a.runs):
        t = time.perf_counter()
        try:
            cli.main(args=args, prog_name="nomade", standalone_mode=False)
        except SystemExit:
            pass
        inproc.append(time.perf_counter() - t)
    print(f"\nwarm cache, median of {a.runs}: whole process {1000 * whole:.0f} ms (bare interpreter "
          f"{1000 * statistics.median(base[1:]):.0f} ms, nomade --version {1000 * statistics.median(bare):.0f} ms); "
          f"the CLI's own time {1000 * own:.0f} ms = imports {1000 * imports:.0f} ms + the command "
          f"{1000 * command:.0f} ms; called again in one process {1000 * statistics.median(inproc):.1f} ms",
          file=sys.stderr)


if __name__ == "__main__":
    main()
