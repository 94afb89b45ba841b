"""Ingest one `sacct -P` dump into a SQLite store and into a PostgreSQL store (a throwaway server
started here, tests/pg_fixture.py), and report wall time, jobs/s and peak RSS of each; and, as the
floor for PostgreSQL, psql's `\copy` of the same lines into a one-column text table.

    python bench/ingest_pg.py --dump bench/out/sacct_1m.txt
    (generate it with: python bench/gen_sacct_dump.py --jobs 1000000 --out bench/out/sacct_1m.txt)
    python bench/ingest_pg.py --dump bench/out/sacct_1m.txt --concurrent 4

--concurrent N: N ingesters at once into one PostgreSQL store, twice: N parts of the dump as N
clusters, then N overlapping windows of one cluster (each part = a quarter of the jobs plus the
next part's first half); each final store is compared (row counts, and every jobs row's
record hash) with a serial ingestion of the same parts.

Each engine runs in its own child process (peak RSS per engine; its CPU seconds, and on
PostgreSQL those of its server backend, read from /proc). Prints one JSON line.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_CHILD = """
import json, os, resource, sys, time
from nomade.store.db import open_store
from nomade.ingest.sacct import ingest_file
def cpu_of(pid):   # user + system seconds of a local process (the store's PostgreSQL backend)
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
t = time.perf_counter()
c = time.process_time()
with open_store(sys.argv[1]) as s:
    backend = s.conn.execute("SELECT pg_backend_pid()").fetchone()[0] if s.dialect != "sqlite" else None
    server0 = cpu_of(backend) if backend else 0.0
    r = ingest_file(s, sys.argv[2], cluster=(sys.argv[3] if len(sys.argv) > 3 else None))
    server = round(cpu_of(backend) - server0, 2) if backend else None
print(json.dumps({"seconds": round(time.perf_counter() - t, 2), "counts": r.counts.as_dict(),
                  "client_cpu_s": round(time.process_time() - c, 2), "server_cpu_s": server,
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


# a server sized for a bulk load (the tests' is small); fsync stays off as in the tests (this
# measures nomade's work, not the disk's)
SERVER = {"shared_buffers": "1GB", "maintenance_work_mem": "512MB", "max_wal_size": "8GB",
          "checkpoint_timeout": "30min"}
_ENV = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}


def run(target: str, dump: str, cluster: str = "") -> dict:
    argv = [sys.executable, "-c", _CHILD, target, dump] + ([cluster] if cluster else [])
    out = subprocess.run(argv, check=True, capture_output=True, text=True, env=_ENV)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["jobs_per_s"] = round(res["counts"]["new"] / res["seconds"]) if res["seconds"] else None
    return res


def psql_copy(url: str, dump: str) -> float:
    """Seconds psql takes to \\copy the dump's lines into a text table (no parsing, no keys)."""
    subprocess.run(["psql", "-q", url, "-c", "CREATE TABLE raw_lines (line text)"], check=True,
                   capture_output=True)
    t = time.perf_counter()
    subprocess.run(["psql", "-q", url, "-c", f"\\copy raw_lines FROM '{dump}' "
                    "WITH (FORMAT csv, DELIMITER E'\\x1f', QUOTE E'\\x1e')"], check=True, capture_output=True)
    return round(time.perf_counter() - t, 2)


def split(dump: str, n: int, overlap: bool, tmp: Path) -> list:
    """``n`` files of the dump's jobs (a job = its line and its step lines): consecutive quarters,
    each with the next part's first half when ``overlap``."""
    with open(dump, encoding="utf-8", errors="surrogateescape") as fh:
        header = fh.readline()
        starts, lines = [], []
        for line in fh:
            if "." not in line.split("|", 1)[0]:
                starts.append(len(lines))
            lines.append(line)
    starts.append(len(lines))
    jobs = len(starts) - 1
    size = jobs // n
    parts = []
    for k in range(n):
        a = k * size
        b = jobs if k == n - 1 else (k + 1) * size
        if overlap:
            b = min(jobs, b + size // 2)
        path = tmp / f"part{k}{'o' if overlap else ''}.txt"
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as out:
            out.write(header)
            out.writelines(lines[starts[a]:starts[b]])
        parts.append(path)
    return parts


def fingerprint(target: str) -> dict:
    """Row counts and a digest of every jobs row's (cluster, job_id, record_hash)."""
    import hashlib
    from nomade.store.db import open_store, row_counts
    with open_store(target, migrate=False, readonly=True) as s:
        h = hashlib.sha256()
        for row in s.conn.execute("SELECT cluster, job_id, record_hash FROM jobs ORDER BY cluster, job_id"):
            h.update(repr(tuple(row)).encode())
        return {"rows": row_counts(s), "jobs_digest": h.hexdigest()[:16]}


def concurrent(server, dump: str, n: int, tmp: Path) -> dict:
    out = {}
    for overlap in (False, True):
        parts = split(dump, n, overlap, tmp)
        clusters = [""] * n if overlap else [f"c{k}" for k in range(n)]
        url = server.new_database()
        t = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", _CHILD, url, str(p)] + ([c] if c else []),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_ENV)
                 for p, c in zip(parts, clusters)]
        errors = []
        for p in procs:
            so, se = p.communicate()
            if p.returncode:
                errors.append(se.strip().splitlines()[-1] if se.strip() else f"rc {p.returncode}")
        seconds = round(time.perf_counter() - t, 2)
        serial = server.new_database()
        t = time.perf_counter()
        for p, c in zip(parts, clusters):
            run(serial, str(p), c)
        serial_s = round(time.perf_counter() - t, 2)
        got, want = fingerprint(url), fingerprint(serial)
        out["same_cluster_overlapping" if overlap else "different_clusters"] = {
            "ingesters": n, "seconds": seconds, "serial_seconds": serial_s, "errors": errors,
            "equal_to_serial": got == want, "rows": got["rows"]}
        for p in parts:
            p.unlink()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dump", required=True)
    ap.add_argument("--concurrent", type=int, default=0, metavar="N")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT / "src"))
    import pg_fixture
    if args.concurrent:
        server = pg_fixture.start_server(SERVER)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                res = concurrent(server, args.dump, args.concurrent, Path(tmp))
        finally:
            server.stop()
        sys.stdout.write(json.dumps({"dump": args.dump, **res}) + "\n")
        return 0
    result = {"dump": args.dump}
    with tempfile.TemporaryDirectory() as tmp:
        result["sqlite"] = run(str(Path(tmp) / "nomade.db"), args.dump)
    server = pg_fixture.start_server(SERVER)
    result["server"] = SERVER
    try:
        result["postgres"] = run(server.new_database(), args.dump)
        result["psql_copy_seconds"] = psql_copy(server.new_database(), args.dump)
    finally:
        server.stop()
    result["ratio_postgres_to_sqlite"] = round(result["postgres"]["seconds"] / result["sqlite"]["seconds"], 2)
    result["ratio_postgres_to_psql_copy"] = round(result["postgres"]["seconds"] / result["psql_copy_seconds"], 2)
    result["bench_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
