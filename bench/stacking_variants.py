"""Benchmark (not a test): how should the ensemble combine its base models? On each trace's
rolling-origin folds (the same as `nomade evaluate`), every base model is fitted on the fold's
part A and predicts its stack window B, and is refitted on A + B to predict the test window (as
nomade.train.ensemble does); then several combiners learned on B are scored on the pooled test
windows:

  learned      logistic regression, l2 1e-3, on B's first 60 %, calibrator chosen on the last 40 %
               (Platt or isotonic by Brier score) - the first design
  learned+platt  the same weights, Platt on all of B
  equal+platt  equal weights on the standardised base outputs, Platt on all of B
  shrunk+platt logistic regression on all of B with a ridge penalty toward equal weights
               (1 per row), Platt on all of B - what nomade shipped before issue 13
  nonneg+platt non-negative weights, L1 strength and kept bases chosen by time-ordered
               validation on B (nomade.train.ensemble.choose_stack), Platt on all of B - what
               nomade ships

    python bench/stacking_variants.py [--traces ...] [--keep DIR]

Prints one Markdown row per trace and combiner: PR-AUC / ECE."""

import argparse
import tempfile
from pathlib import Path

import numpy as np

from trace_jobs import DEFAULT, trace_jobs


def fold_predictions(fm, base_names, seed=7):
    """Per fold: (y_B, {base: raw B}, y_T, {base: raw T after the A+B refit})."""
    from nomade.train.ensemble import StackedEnsemble, default_bases, subset, time_cut
    from nomade.train.folds import rolling_folds

    out = []
    for f in rolling_folds(fm, 4):
        tr, te = subset(fm, f.train), subset(fm, f.test)
        a, b, _ = time_cut(tr, 0.3)
        fa, fb = subset(tr, a), subset(tr, b)
        full = subset(tr, np.flatnonzero(tr.y >= 0))
        ens = StackedEnsemble(default_bases(base_names))   # for its output transform only
        raw_b, raw_t = {}, {}
        for name, m in ens.bases.items():
            m.fit(fa, seed)
            raw_b[name] = ens._raw(name, m.predict(fb))
            m.fit(full, seed)
            raw_t[name] = ens._raw(name, m.predict(te))
        out.append((fb.y.astype(int), raw_b, te.y.astype(int), raw_t))
    return out


def combine(folds, how: str, names=None):
    """Pooled (y, p) of the test windows with the combiner ``how`` over the bases ``names``
    (default: all)."""
    from nomade.train.calibration import choose_calibrator, fit_logistic, fit_platt

    ps, ys = [], []
    for yb, rb, yt, rt in folds:
        names = list(names or rb)
        mu = {n: rb[n].mean() for n in names}
        sd = {n: rb[n].std() or 1.0 for n in names}
        ZB = np.stack([(rb[n] - mu[n]) / sd[n] for n in names], axis=1)
        ZT = np.stack([(rt[n] - mu[n]) / sd[n] for n in names], axis=1)
        equal = np.full(len(names), 1.0 / len(names))
        s = int(0.6 * len(yb))
        if how == "equal+platt":
            coef, b = equal, 0.0
        elif how == "shrunk+platt":
            coef, b = fit_logistic(ZB, yb, l2=1.0, prior=equal)
        elif how == "nonneg+platt":   # B's rows are in submit order (time_cut keeps row order)
            from nomade.train.ensemble import choose_stack
            pick = choose_stack(ZB, yb)
            coef, b = pick["coef"], pick["intercept"]
        else:
            coef, b = fit_logistic(ZB[:s], yb[:s], l2=1e-3)
        pb = 1 / (1 + np.exp(-(ZB @ coef + b)))
        pt = 1 / (1 + np.exp(-(ZT @ coef + b)))
        cal = choose_calibrator(pb[s:], yb[s:]) if how == "learned" else fit_platt(pb, yb)
        ps.append(cal(pt))
        ys.append(yt)
    return np.concatenate(ys), np.concatenate(ps)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", default=DEFAULT)
    ap.add_argument("--keep", default="", help="reuse/keep imported stores under this directory")
    a = ap.parse_args()
    from nomade.evaluate import metrics as M
    from nomade.features.build import build_matrix
    from nomade.features.labels import make_labels
    from nomade.scoring import lite_features as lite
    from nomade.train.ensemble import DEFAULT_BASES
    from nomade.train.pipeline import lite_requests

    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="nomade-stack-"))
    print("| trace | learned | learned+platt | equal+platt | shrunk+platt | nonneg+platt (shipped) "
          "| best single base |")
    print("|---|---|---|---|---|---|---|")
    for name in a.traces.split(","):
        jt = trace_jobs(name, root)
        fm = build_matrix(jt, "submit")
        y, _ = make_labels(jt)
        fm.meta["lite_X"], _ = lite.build_lite_rows(lite_requests(jt, y), True)
        folds = fold_predictions(fm, list(DEFAULT_BASES))
        cells = []
        for how in ("learned", "learned+platt", "equal+platt", "shrunk+platt", "nonneg+platt"):
            yy, pp = combine(folds, how)
            cells.append(f"{M.pr_auc(yy, pp):.3f} / {M.ece(yy, pp):.3f}")
        yt = np.concatenate([f[2] for f in folds])
        single = {n: M.pr_auc(yt, np.concatenate([f[3][n] for f in folds])) for n in folds[0][3]}
        best = max(single, key=single.get)
        print(f"| {name} | " + " | ".join(cells) + f" | {best} {single[best]:.3f} |", flush=True)
    print("\ncells: PR-AUC / ECE of the pooled test windows (best single base: PR-AUC of its raw output)")


if __name__ == "__main__":
    main()
