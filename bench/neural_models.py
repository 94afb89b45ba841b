"""Each neural base model alone on one store: fit on the oldest 70 % of jobs (submit order), test
on the next 15 %, submit-time features; prints ROC-AUC / PR-AUC, fit and predict seconds, and the
user's smoothed past failure rate (u_fail_rate) for reference. Not a test; figures go to
docs/models.md.

    nomade --data-dir /tmp/d import swf /work/shared/data/traces/<trace>/<file>.swf.gz
    /tmp/venv311/bin/python bench/neural_models.py /tmp/d/nomade.db gnn,lstm,autoencoder
"""

import argparse
import importlib
import inspect
import time

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from nomade.features.build import build_matrix
from nomade.features.jobtable import load_jobs
from nomade.store.db import open_store
from nomade.train.base import TrainedModel


def model_class(name: str):
    mod = importlib.import_module(f"nomade.train.models.{name}")
    return [c for _, c in inspect.getmembers(mod, inspect.isclass)
            if issubclass(c, TrainedModel) and c.__module__ == mod.__name__][0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("models", nargs="?", default="gnn,lstm,autoencoder")
    a = ap.parse_args()
    t0 = time.time()
    fm = build_matrix(load_jobs(open_store(a.store)), "submit")
    print(f"matrix: {len(fm)} jobs in {time.time() - t0:.1f} s")
    n = len(fm)
    tr = fm.rows(np.arange(int(n * 0.70)))
    te = fm.rows(np.arange(int(n * 0.70), int(n * 0.85)))
    ok = te.y >= 0

    def show(name, p, extra=""):
        print(f"{name:12s} ROC-AUC {roc_auc_score(te.y[ok], p[ok]):.3f}  "
              f"PR-AUC {average_precision_score(te.y[ok], p[ok]):.3f}  "
              f"positives {te.y[ok].mean():.3f} {extra}", flush=True)

    show("u_fail_rate", np.nan_to_num(te.column("u_fail_rate"), nan=0.5))
    for name in a.models.split(","):
        t0 = time.time()
        m = model_class(name)().fit(tr)
        t1 = time.time()
        p = m.predict(te)
        show(name, p, f" fit {t1 - t0:.1f} s  predict {time.time() - t1:.1f} s")


if __name__ == "__main__":
    main()
