#!/usr/bin/env python3
"""Time `nomade ingest sacct --file DUMP` into a fresh store against sqlite3's own `.import` of the
same lines into a plain table, and report peak RSS. Prints figures; not a test.

    python bench/gen_sacct_dump.py --jobs 1000000 --out bench/out/sacct_1m.txt
    python bench/ingest_sacct.py bench/out/sacct_1m.txt --repeat 3

Both commands run as child processes; wall time, CPU time (user+sys) and peak RSS come from
os.wait4's rusage of each child. With --repeat N they run N times, alternating (nomade, sqlite3,
nomade, ...), each nomade run into a fresh store, and the ratio is reported per pair and as the
median: this VM's speed drifts by tens of percent over minutes, which a single pair cannot
separate from the programs' own difference. `--python-reader` runs nomade without its C module (same interpreter as --nomade's).
sqlite3 imports ALL lines of the dump (the header too) into a
31-column TEXT table with `.mode list` / `.separator "|"` inside one transaction (what `.import`
does). Rows broken by '|' or newlines inside fields are imported anyway (sqlite3 pads or drops
columns and says so on stderr); nomade re-joins them.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run_child(argv, stdin_text=None, env=None):
    t0 = time.monotonic()
    # drain both pipes (sqlite3 writes a warning per odd row to stderr) before reaping the child
    # with wait4, which gives this child's own rusage (CPU time and peak RSS)
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin_text else subprocess.DEVNULL,
                             stdout=out_f, stderr=err_f, env=env)
        if stdin_text:
            p.stdin.write(stdin_text.encode())
            p.stdin.close()
        _, status, ru = os.wait4(p.pid, 0)
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read(), err_f.read()
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024,
            "rc": p.returncode, "stdout": out.decode(errors="replace"), "stderr": err.decode(errors="replace")}


def _interpreter(script: str) -> str:
    """The Python that runs a console script (its #! line), so that --python-reader measures the
    same install as --nomade."""
    path = shutil.which(script) or script
    with open(path, "rb") as fh:
        first = fh.readline().decode(errors="replace").strip()
    if not first.startswith("#!"):
        sys.exit(f"{path}: not a console script (no #! line)")
    return first[2:].strip().split()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dump")
    ap.add_argument("--nomade", default=shutil.which("nomade") or "nomade")
    ap.add_argument("--sqlite3", default=shutil.which("sqlite3") or "sqlite3")
    ap.add_argument("--keep", action="store_true", help="keep the stores (printed)")
    ap.add_argument("--repeat", type=int, default=1, help="alternating runs of both (median reported)")
    ap.add_argument("--python-reader", action="store_true", help="nomade without its C reader")
    a = ap.parse_args()
    with open(a.dump, encoding="utf-8", errors="replace") as fh:
        header = fh.readline().rstrip("\n").split("|")
    lines = sum(1 for _ in open(a.dump, "rb"))
    size_mb = os.path.getsize(a.dump) / 1e6
    work = tempfile.mkdtemp(prefix="nomade-bench-", dir=os.path.dirname(os.path.abspath(a.dump)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMADE_")}
    cols = ", ".join(f'"c{i}_{name}" TEXT' for i, name in enumerate(header))
    print(f"dump: {a.dump} ({size_mb:.0f} MB, {lines} lines incl. header, {len(header)} fields)")
    argv = [a.nomade]
    if a.python_reader:  # the same CLI, run by the --nomade script's interpreter, without the C module
        argv = [_interpreter(a.nomade), "-c", "import sys; sys.modules['nomade.slurm._sacct_scan'] = None; "
                "from nomade.cli.main import main; sys.argv[0] = 'nomade'; main()"]
    script = (f"CREATE TABLE dump ({cols});\n.mode list\n.separator \"|\"\n"
              f".import '{os.path.abspath(a.dump)}' dump\nSELECT count(*) FROM dump;\n")
    ratios = []
    for rep in range(a.repeat):
        store = os.path.join(work, f"nomade{rep}")
        nom = run_child(argv + ["--data-dir", store, "ingest", "sacct", "--file", a.dump], env=env)
        db = os.path.join(work, f"import{rep}.db")
        sq = run_child([a.sqlite3, db], stdin_text=script)
        for name, res in (("nomade", nom), ("sqlite3", sq)):
            if res["rc"]:   # a failed run has no figure to report
                print(res["stderr"][-2000:], file=sys.stderr)
                sys.exit(f"run {rep + 1}: {name} failed (rc {res['rc']})")
        print(f"run {rep + 1}: nomade ingest sacct --file: wall {nom['wall_s']:.1f} s, cpu {nom['cpu_s']:.1f} s, "
              f"peak RSS {nom['peak_rss_mb']:.0f} MB, rc {nom['rc']}: {nom['stdout'].strip()}")
        print(f"run {rep + 1}: sqlite3 .import:            wall {sq['wall_s']:.1f} s, cpu {sq['cpu_s']:.1f} s, "
              f"peak RSS {sq['peak_rss_mb']:.0f} MB, rc {sq['rc']}, rows {sq['stdout'].strip()}")
        ratios.append((nom["wall_s"] / sq["wall_s"], nom["cpu_s"] / sq["cpu_s"], nom["peak_rss_mb"]))
        if not a.keep:
            shutil.rmtree(store, ignore_errors=True)
            os.unlink(db)
    rss = max(r[2] for r in ratios)
    print(f"ratio nomade/sqlite3 per run (wall): {', '.join(f'{r[0]:.2f}x' for r in ratios)}")
    wall, cpu = statistics.median(r[0] for r in ratios), statistics.median(r[1] for r in ratios)
    print(f"median ratio: wall {wall:.2f}x, cpu {cpu:.2f}x (target <= 1.5x); "
          f"peak RSS {rss:.0f} MB {'OK' if rss <= 300 else 'OVER'} (target <= 300 MB)")
    if a.keep:
        print(f"stores kept under {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
