"""Training speed on ~300k jobs: the GBDT alone, the whole submit-stage ensemble (gbdt, lite,
gnn, lstm, autoencoder; stacked and calibrated; what the speed target is about), and all of
`nomade train` (Lua model, 4-fold rolling evaluation, ensembles for the submit and start stages,
ONNX export, bundle) - each on the same store.

    python bench/train_speed.py [--jobs 300000] [--rounds 200] [--threads 2] [--no-train]

The three shared SWF traces hold 242k jobs; to reach --jobs, copies of the traces shifted in time
(+N x 12 years, cluster '<trace>-copyN') are appended - stated in the output. Prints one line
per step with wall seconds. Not a test."""

import argparse
import tempfile
import time
from pathlib import Path


from trace_jobs import TRACES

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
    ap.add_argument("--no-train", action="store_true", help="skip the full `nomade train` run")
    a = ap.parse_args()
    from nomade.config import load_config
    from nomade.features.build import build_matrix
    from nomade.features.jobtable import load_jobs
    from nomade.features.labels import make_labels
    from nomade.scoring import lite_features as lite
    from nomade.train.ensemble import StackedEnsemble, default_bases
    from nomade.train.models.gbdt import GBDTModel
    from nomade.train.pipeline import lite_requests, train_bundle

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t = time.time()
        store, n = build_store(tmp, a.jobs)
        print(f"store: {n} jobs (3 traces + time-shifted copies) built in {time.time() - t:.1f}s", flush=True)
        cfg = load_config(None, {"data_dir": str(tmp)})
        t = time.time()
        jt = load_jobs(store)
        y, _ = make_labels(jt)
        print(f"load_jobs + labels: {time.time() - t:.1f}s", flush=True)
        t0 = time.time()
        fm = build_matrix(jt, "submit", cfg)
        t1 = time.time()
        fm.meta["lite_X"], _ = lite.build_lite_rows(lite_requests(jt, y), True)
        print(f"build_matrix (submit, {fm.X.shape[1]} features): {t1 - t0:.1f}s; lite rows: "
              f"{time.time() - t1:.1f}s", flush=True)
        lab = (y == 0) | (y == 1)
        t = time.time()
        GBDTModel(rounds=a.rounds, params={"num_threads": a.threads}).fit_arrays(fm.X[lab], y[lab], fm.names)
        print(f"GBDT fit alone: {int(lab.sum())} labelled rows x {fm.X.shape[1]} features, "
              f"{a.rounds} rounds, {a.threads} threads: {time.time() - t:.1f}s", flush=True)
        t = time.time()
        ens = StackedEnsemble(default_bases(threads=a.threads)).fit(fm)
        print(f"submit-stage ensemble fit ({', '.join(ens.bases)}; base fits on 70 %, stacking + "
              f"calibration on 30 %, refit on all): {time.time() - t:.1f}s; features + ensemble: "
              f"{time.time() - t0:.1f}s", flush=True)
        if a.no_train:
            return
        t = time.time()
        res = train_bundle(store, cfg, tmp / "registry", rounds=a.rounds)
        print(f"nomade train (Lua model; 4-fold evaluation and the ensemble for each of "
              f"{', '.join(res.manifest['ensemble']['primary'])}; ONNX, Lua, bundle): "
              f"{time.time() - t:.1f}s; bundle "
              f"{sum(v['bytes'] for v in res.manifest['files'].values()) / 1e6:.1f} MB", flush=True)


if __name__ == "__main__":
    main()
