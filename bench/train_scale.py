"""How `nomade train` grows with the history, read from a PostgreSQL store: for each size, a
synthetic `sacct -P` dump (bench/gen_sacct_dump.py) is ingested into a fresh database of a
throwaway PostgreSQL 15 (tests/pg_fixture.py, sized as in bench/ingest_pg.py), then, each in its
own child process (peak RSS per step):

- load: the training table read from the store (nomade.features.jobtable.load_jobs, batches from a
  server-side cursor) and its labels; with --old-load also the former way (every row as a Python
  object first, then the arrays) for comparison;
- train: `nomade train --model gbdt --folds 0 --json` (the fastest honest configuration: the
  full submit and start features, the GBDT base alone, stacked and calibrated, the Lua model,
  ONNX export and bundle; no rolling evaluation, no neural bases).

    python bench/train_scale.py --sizes 300000,1000000 [--old-load] [--dumps bench/out]

Dumps are generated as bench/out/sacct_<N>.txt when missing (sacct_1m.txt is taken for 1000000).
Prints one JSON line per size and a last one with the growth from the smallest to the largest.
Not a test."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from ingest_pg import SERVER  # noqa: E402

_ENV = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}

_INGEST = """
import json, resource, sys, time
from nomade.store.db import open_store
from nomade.ingest.sacct import ingest_file
t = time.perf_counter()
with open_store(sys.argv[1]) as s:
    r = ingest_file(s, sys.argv[2])
print(json.dumps({"seconds": round(time.perf_counter() - t, 2), "jobs": r.counts.new,
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""

_LOAD = """
import json, resource, sys, time
from nomade.store.db import open_store
from nomade.features import jobtable
from nomade.features.labels import make_labels
t = time.perf_counter()
with open_store(sys.argv[1], readonly=True) as s:
    if sys.argv[2] == "old":
        from nomade.store.job_queries import jobs_for_training
        rows = jobs_for_training(s, jobtable.TEXT_COLUMNS + jobtable.NUMERIC_COLUMNS)
        jt = jobtable.table_from_rows(rows)
        del rows
    else:
        jt = jobtable.load_jobs(s)
y, cls = make_labels(jt, False)
print(json.dumps({"seconds": round(time.perf_counter() - t, 2), "jobs": len(jt),
                  "labelled": int(((y == 0) | (y == 1)).sum()),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""

_TRAIN = """
import json, resource, sys, time
from nomade.cli.main import cli, run_cli
t = time.perf_counter()
rc = run_cli(cli, ["--data-dir", sys.argv[1], "train", "--model", "gbdt", "--folds", "0", "--json"])
print(json.dumps({"rc": rc, "seconds": round(time.perf_counter() - t, 2),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


def child(code: str, args: list, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", code] + args, check=True, capture_output=True,
                         text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def dump_for(n: int, where: Path) -> Path:
    path = where / ("sacct_1m.txt" if n == 1_000_000 else f"sacct_{n}.txt")
    if not path.exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "gen_sacct_dump.py"), "--jobs", str(n),
                        "--out", str(path)], check=True)
    return path


def one_size(server, n: int, dumps: Path, old: bool, tmp: Path) -> dict:
    url = server.new_database(f"train_{n}")
    res: dict = {"jobs": n}
    res["ingest"] = child(_INGEST, [url, str(dump_for(n, dumps))], _ENV)
    res["load"] = child(_LOAD, [url, "new"], _ENV)
    if old:
        res["load_old"] = child(_LOAD, [url, "old"], _ENV)
    data = tmp / f"data_{n}"
    data.mkdir()
    env = dict(_ENV, NOMADE_STORE_URL=url, OMP_NUM_THREADS="2")
    res["train"] = child(_TRAIN, [str(data)], env)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="300000,1000000")
    ap.add_argument("--dumps", default=str(ROOT / "bench" / "out"))
    ap.add_argument("--old-load", action="store_true")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT / "src"))
    import pg_fixture
    sizes = [int(s) for s in a.sizes.split(",")]
    server = pg_fixture.start_server(SERVER)
    results = []
    t0 = time.time()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in sizes:
                r = one_size(server, n, Path(a.dumps), a.old_load, Path(tmp))
                sys.stdout.write(json.dumps(r) + "\n")
                sys.stdout.flush()
                results.append(r)
    finally:
        server.stop()
    if len(results) > 1:
        lo, hi = results[0], results[-1]
        growth = {"jobs_x": round(hi["jobs"] / lo["jobs"], 2)}
        for step in ("load", "train"):
            growth[f"{step}_seconds_x"] = round(hi[step]["seconds"] / lo[step]["seconds"], 2)
            growth[f"{step}_rss_x"] = round(hi[step]["peak_rss_mb"] / lo[step]["peak_rss_mb"], 2)
        sys.stdout.write(json.dumps({"growth": growth, "bench_seconds": round(time.time() - t0)}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
