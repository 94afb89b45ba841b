"""Benchmark (not a test): does every base model earn its place in the ensemble? On each trace's
rolling-origin folds (the same as `nomade evaluate`, submit stage), every base model is fitted
once per fold (part A -> stack window B, A + B -> test window, as nomade.train.ensemble does);
then the shipped combiner (non-negative weights, L1 strength and kept bases chosen by
time-ordered validation on B, Platt on B: nomade.train.ensemble.choose_stack) is learned on all
bases and on the bases with each one removed, and scored on the pooled test windows. Also: the
weights the full stack gave each base per fold, each base alone, and what the publish gate
(nomade.train.publish_gate.choose_primary: the ensemble against its best base on the most
recent window) would publish.

    python bench/ablation.py [--traces ctc-sp2-1996] [--keep DIR]

Prints Markdown: one row per trace and variant, PR-AUC / ROC-AUC / ECE."""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from stacking_variants import combine, fold_predictions
from trace_jobs import trace_jobs


def _weights(folds, names):
    """Per fold, the shipped combiner's weight per base (0 = left out)."""
    from nomade.train.ensemble import choose_stack

    out = []
    for yb, rb, _, _ in folds:
        Z = np.stack([(rb[n] - rb[n].mean()) / (rb[n].std() or 1.0) for n in names], axis=1)
        out.append(dict(zip(names, choose_stack(Z, yb)["coef"])))
    return out


def _gate(folds, names):
    """What choose_primary publishes, from the last fold's PR-AUCs."""
    from nomade.evaluate import metrics as M
    from nomade.train.publish_gate import choose_primary

    yb, rb, yt, rt = folds[-1]
    y, p = combine([folds[-1]], "nonneg+platt", names)
    last = {"ensemble": {"pr_auc": M.pr_auc(y, p)}}
    last.update({n: {"pr_auc": M.pr_auc(yt, rt[n])} for n in names})
    got = choose_primary({"folds": [{"fold": len(folds) - 1, "n_test": len(yt), "metrics": last}]}, names)
    return "the ensemble" if got is None else f"{got['base']} alone ({got['reason'].split('(')[1].split(')')[0]})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", default="ctc-sp2-1996")
    ap.add_argument("--keep", default="", help="reuse/keep imported stores under this directory")
    a = ap.parse_args()
    from nomade.evaluate import metrics as M
    from nomade.features.build import build_matrix
    from nomade.features.labels import make_labels
    from nomade.scoring import lite_features as lite
    from nomade.train.ensemble import DEFAULT_BASES
    from nomade.train.requests import lite_requests

    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="nomade-ablation-"))
    names = list(DEFAULT_BASES)
    for trace in a.traces.split(","):
        t0 = time.time()
        jt = trace_jobs(trace, root)
        fm = build_matrix(jt, "submit")
        y, _ = make_labels(jt)
        fm.meta["lite_X"], _ = lite.build_lite_rows(lite_requests(jt, y, fm.meta.get("assumed_wait_s")), True)
        folds = fold_predictions(fm, names)
        print(f"\n{trace}: {len(jt)} jobs, {len(folds)} folds, bases fitted in {time.time() - t0:.0f} s\n")
        print("| variant | PR-AUC | ROC-AUC | ECE |")
        print("|---|---|---|---|")

        def row(label, yy, pp):
            print(f"| {label} | {M.pr_auc(yy, pp):.3f} | {M.roc_auc(yy, pp):.3f} | {M.ece(yy, pp):.3f} |", flush=True)
        row("all bases (shipped combiner)", *combine(folds, "nonneg+platt", names))
        row("all bases, shrunk to equal weights (before)", *combine(folds, "shrunk+platt", names))
        for n in names:
            row(f"without {n}", *combine(folds, "nonneg+platt", [m for m in names if m != n]))
        for n in names:
            row(f"{n} alone (Platt on B)", *combine(folds, "nonneg+platt", [n]))
        w = _weights(folds, names)
        print("\nweights per fold (standardised outputs; 0 = left out): " +
              "; ".join(", ".join(f"{n} {v:.2f}" for n, v in fw.items()) for fw in w))
        print(f"publish gate on the most recent window: {_gate(folds, names)}")
        print(f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
