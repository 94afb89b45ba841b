"""Benchmark (not a test): does the uncertainty/density sampler (nomade.train.active_sampling)
help the GBDT? On each trace, the same rolling-origin folds score the GBDT on all rows, on the
sampler's rows (seed 20 % + the best-scored rows up to --budget) and on a random subset of the
same size. Prints one Markdown table row per trace and variant.

    python bench/active_learning.py [--traces ...] [--budget 0.5] [--folds 4]
"""

import argparse
import tempfile
import time
from pathlib import Path

from trace_jobs import DEFAULT, trace_jobs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", default=DEFAULT)
    ap.add_argument("--budget", type=float, default=0.5)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--keep", default="", help="reuse/keep imported stores under this directory")
    a = ap.parse_args()
    from nomade.features.build import build_matrix
    from nomade.train.active_sampling import ActiveSampledGBDT
    from nomade.train.evaluation import evaluate_matrix

    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="nomade-al-"))
    print("| trace | GBDT, all rows | GBDT, sampler's rows | GBDT, random rows | rows used | seconds |")
    print("|---|---|---|---|---|---|")
    for name in a.traces.split(","):
        jt = trace_jobs(name, root)
        fm = build_matrix(jt, "submit")
        t = time.time()
        extras = {"gbdt_al": lambda: ActiveSampledGBDT(a.budget),
                  "gbdt_random": lambda: ActiveSampledGBDT(a.budget, random=True)}
        res = evaluate_matrix(fm, a.folds, ["gbdt"], extras=extras)
        m = res["metrics"]

        def cell(k, m=m):
            return f"{m[k]['pr_auc']:.3f} / {m[k]['roc_auc']:.3f}"
        print(f"| {name} | {cell('gbdt')} | {cell('gbdt_al')} | {cell('gbdt_random')} | "
              f"{a.budget:.0%} | {time.time() - t:.0f} |", flush=True)
    print("\ncells: PR-AUC / ROC-AUC pooled over the test windows")


if __name__ == "__main__":
    main()
