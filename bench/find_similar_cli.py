"""Benchmark (not a test): ``nomade similarity --find-similar JOBID`` as a user runs it, with the
cache of behaviour.cache warm (docs/benchmarks.md, "Behaviour analysis").

Per run, in a fresh process: the whole process (interpreter start included); the CLI's own
time from before ``import nomade`` to the command's end, split into imports (the CLI and the
modules the command imports: click, numpy, ...) and the command itself (configuration, store,
cache key, memory-mapped arrays, look-up, JSON); and, in one process, the command called again
and again (a long-running caller). The first call builds the cache and is reported apart.

    .venv/bin/python bench/find_similar_cli.py --data-dir /tmp/behaviour-1m [--runs 15]

--service: the way users run it (they cannot read the store): ``nomade serve-why`` is started on
the data directory (its index warm in memory, ``behaviour.cache.Warm``), and reported are the
service's answer as a client sees it (connect, request, whole answer read; a socket opened by this
process, so no interpreter start in it) and the whole ``nomade similarity --find-similar JOBID
--service --json`` process.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
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
    ap.add_argument("--service", action="store_true", help="time the look-up through nomade serve-why")
    a = ap.parse_args()
    if a.service:
        service(a)
        return
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


NOMADE = [sys.executable, "-c", "from nomade.cli.main import main; main()"]   # the console script's work


def ask(sock: str, job: str) -> dict:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(120)
    s.connect(sock)
    s.sendall(json.dumps({"op": "similar", "job_id": job, "k": 10}).encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf)


def service(a) -> None:
    sock = os.path.join(tempfile.mkdtemp(prefix="nomade-bench-why-"), "why.sock")
    env = dict(os.environ, NOMADE_PRIVACY_SOCKET=sock)
    t0 = time.perf_counter()
    srv = subprocess.Popen(NOMADE + ["--data-dir", a.data_dir, "serve-why"],
                           env=env, stderr=subprocess.DEVNULL)
    try:
        while not os.path.exists(sock):
            time.sleep(0.05)
        first = ask(sock, a.job)           # waits for the warm-up build (or reads the cache)
        assert first.get("ok"), first
        print(f"service up and first answer: {time.perf_counter() - t0:.1f} s", flush=True)
        answers = []
        for _ in range(a.runs):
            t = time.perf_counter()
            assert ask(sock, a.job)["ok"]
            answers.append(1000 * (time.perf_counter() - t))
        args = NOMADE + ["--data-dir", a.data_dir, "similarity",
                "--find-similar", a.job, "--service", "--json"]
        whole = []
        for _ in range(a.runs):
            t = time.perf_counter()
            subprocess.run(args, env=env, check=True, capture_output=True)
            whole.append(1000 * (time.perf_counter() - t))
        bare = []
        for _ in range(a.runs):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            bare.append(1000 * (time.perf_counter() - t))
        print(f"warm service, median of {a.runs}: answer {statistics.median(answers):.1f} ms "
              f"(min {min(answers):.1f}, max {max(answers):.1f}); whole CLI process "
              f"{statistics.median(whole):.0f} ms (bare interpreter {statistics.median(bare):.0f} ms)")
    finally:
        srv.terminate()
        srv.wait(10)


if __name__ == "__main__":
    main()
