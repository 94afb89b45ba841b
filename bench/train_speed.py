"""Training speed: GBDT alone and `nomade train`'s pipeline on ~300k jobs.

    python bench/train_speed.py [--jobs 300000] [--rounds 200] [--threads 2]

The three shared SWF traces hold 242k jobs; to reach --jobs, copies of the traces shifted in time
(+N x 12 years, cluster '<trace>-copyN') are appended - stated in the output. Prints one line
per step with wall seconds. Not a test."""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

TRACES = Path("/work/shared/data/traces")
SHIFT = 12 * 365 * 86400.0


def build_store(tmp: Path, want: int):
    from nomade.ingest.swf import import_swf
    from nomade.store.db import open_store

    store = open_store(tmp / "nomade.db")
    for f in sorted(TRACES.glob("*/*.swf.gz")):
        import_swf(store, f)
    n = store.conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
    copy = 1
    cols = [r[1] for r in store.conn.execute("PRAGMA table_info(jobs)")]
    while n < want:
        sel = ", ".join(
            f"cluster || '-copy{copy}'" if c == "cluster" else
            f"{c} + {copy * SHIFT}" if c in ("submit_time", "start_time", "end_time", "eligible_time") else c
            for c in cols)
        with store.transaction() as c:
            c.execute(f"INSERT INTO jobs ({', '.join(cols)}) SELECT {sel} FROM jobs "
                      f"WHERE cluster NOT LIKE '%-copy%' LIMIT {want - n}")
        n = store.conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        copy += 1
    return store, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    from nomade.config import load_config
    from nomade.features.build import build_matrix
    from nomade.features.jobtable import load_jobs
    from nomade.features.labels import make_labels
    from nomade.train.models.gbdt import GBDTModel
    from nomade.train.pipeline import train_bundle

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t = time.time()
        store, n = build_store(tmp, a.jobs)
        print(f"store: {n} jobs (3 traces + time-shifted copies) built in {time.time() - t:.1f}s")
        cfg = load_config(None, {"data_dir": str(tmp)})
        t = time.time()
        jt = load_jobs(store)
        y, _ = make_labels(jt)
        print(f"load_jobs + labels: {time.time() - t:.1f}s")
        t = time.time()
        fm = build_matrix(jt, "submit", cfg)
        print(f"build_matrix (submit, {fm.X.shape[1]} features): {time.time() - t:.1f}s")
        lab = (y == 0) | (y == 1)
        t = time.time()
        GBDTModel(rounds=a.rounds, params={"num_threads": a.threads}).fit_arrays(fm.X[lab], y[lab], fm.names)
        print(f"GBDT fit alone: {int(lab.sum())} labelled rows x {fm.X.shape[1]} features, "
              f"{a.rounds} rounds, {a.threads} threads: {time.time() - t:.1f}s")
        t = time.time()
        res = train_bundle(store, cfg, tmp / "registry", rounds=a.rounds)
        print(f"train_bundle (lite + full GBDT, each evaluated and refitted = 4 fits, isotonic, "
              f"ONNX, Lua, bundle): {time.time() - t:.1f}s; bundle "
              f"{sum(v['bytes'] for v in res.manifest['files'].values()) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
