"""Temporal evaluation of the ensemble, each base model and the two baselines, in the same run
and on the same folds. Thresholds are chosen on the training side (the ensemble's stack window:
the alert policy of nomade.risk_scale - an alert budget with its margin and a minimum
precision), never on the test window. A model with its own calibration window (the Lua model,
``gbdt_lite``) gets its threshold there, from the fitted model that is tested - as
nomade.train.pipeline chooses the threshold it ships."""

import time
from typing import Callable, Dict, List, Optional

import numpy as np

from ..evaluate import metrics as M
from ..evaluate.thresholds import choose_alert_threshold, sweep
from ..features.matrix import FeatureMatrix
from ..risk_scale import BUDGET_MARGIN
from .base import TrainedModel
from .baselines import GbdtHpeBaseline, UserHistoryBaseline
from .ensemble import DEFAULT_BASES, StackedEnsemble, default_bases, subset, time_cut
from .folds import MIN_TRAIN, rolling_folds
from .models.gbdt import DEFAULT_ROUNDS
from .publish_gate import choose_primary

SWEEP = [0.1, 0.2, 0.3, 0.5, 0.7]


def _policy(max_flagged: Optional[float], min_precision: float, margin: float = BUDGET_MARGIN):
    """y, p -> the alert threshold by the policy (budget ``max_flagged`` with ``margin``; None or
    0 = best F1)."""
    return lambda y, p: choose_alert_threshold(y, p, max_flagged or 0.0, min_precision, margin).threshold


def _side_threshold(model: TrainedModel, full: FeatureMatrix, fallback, alert_at) -> float:
    """The threshold of a side model fitted on ``full``: on its own calibration window when it
    has one (``cal_rows``: the Lua model, as the bundle's is chosen), else ``fallback()`` (a
    part-A fit scored on the stack window)."""
    rows = getattr(model, "cal_rows", None)
    if rows is not None and len(rows) and getattr(model, "calibrated", False):
        return alert_at(full.y[rows], model.predict(subset(full, rows)))
    return fallback()


def _fold_predictions(fm: FeatureMatrix, train_idx, test_idx, base_names, seed: int,
                      max_flagged: Optional[float], threads: int = 1, refit_bases: bool = True,
                      extras: Optional[Dict[str, Callable[[], TrainedModel]]] = None,
                      calibration: str = "platt", min_precision: float = 0.0,
                      margin: float = BUDGET_MARGIN):
    tr, te = subset(fm, train_idx), subset(fm, test_idx)
    alert_at = _policy(max_flagged, min_precision, margin)
    ens = StackedEnsemble(default_bases(base_names, threads), refit_bases=refit_bases,
                          calibration=calibration)
    ens.fit(tr, seed)
    outs = ens.base_outputs(te)
    preds = {"ensemble": ens.combine(outs)}
    win_y = ens.window_y
    thr = {"ensemble": alert_at(win_y, ens.window_pred)}
    for n, p in outs.items():
        preds[n] = p
        thr[n] = alert_at(win_y, ens.window_base[n])
    # baselines: the same stack window for their thresholds
    a, b, _ = time_cut(tr, ens.stack_frac)
    fb = subset(tr, b)
    uh = UserHistoryBaseline()
    preds["user_history"] = uh.predict(te)
    thr["user_history"] = alert_at(fb.y, uh.predict(fb))
    side: Dict[str, Callable[[], TrainedModel]] = {"gbdt_hpe": lambda: GbdtHpeBaseline(threads=threads)}
    side.update(extras or {})
    full = subset(tr, np.flatnonzero(tr.y >= 0))
    for name, make in side.items():   # test from the full fit; threshold: _side_threshold
        model = make().fit(full, seed)
        preds[name] = model.predict(te)
        thr[name] = _side_threshold(model, full, lambda make=make: alert_at(
            fb.y, make().fit(subset(tr, a), seed).predict(fb)), alert_at)
    return preds, thr, ens


def evaluate_matrix(fm: FeatureMatrix, n_folds: int = 4, base_names: Optional[List[str]] = None,
                    seed: int = 7, max_flagged: Optional[float] = None,
                    threads: int = 1, refit_bases: bool = True,
                    extras: Optional[Dict[str, Callable[[], TrainedModel]]] = None,
                    calibration: str = "platt", log=None, min_precision: float = 0.0,
                    margin: float = BUDGET_MARGIN) -> Dict[str, object]:
    """Run every fold; metrics per model pooled over the test windows (each model at its own
    training-side threshold; ``max_flagged``, ``min_precision``, ``margin``: the alert policy)
    plus per-fold figures."""
    t0 = time.time()
    folds = rolling_folds(fm, n_folds)
    pooled: Dict[str, List[np.ndarray]] = {}
    flags: Dict[str, List[np.ndarray]] = {}
    ys, clss, fold_info = [], [], []
    last_ens = None
    for f in folds:
        if log:
            log(f"evaluation fold {f.k + 1}/{n_folds}: train on {len(f.train)} jobs, test on {len(f.test)}")
        preds, thr, ens = _fold_predictions(fm, f.train, f.test, base_names, seed, max_flagged,
                                             threads, refit_bases, extras, calibration, min_precision,
                                             margin)
        last_ens = ens
        y, cls = fm.y[f.test].astype(np.int64), fm.cls[f.test]
        ys.append(y)
        clss.append(cls)
        info = f.describe()
        info["ensemble"] = ens.manifest()
        info["threshold"] = thr["ensemble"]
        info["metrics"] = {}
        for n, p in preds.items():
            pooled.setdefault(n, []).append(p)
            flags.setdefault(n, []).append(p >= thr[n])
            info["metrics"][n] = {"roc_auc": M.roc_auc(y, p), "pr_auc": M.pr_auc(y, p),
                                  "ece": M.ece(y, p), "threshold": thr[n]}
        fold_info.append(info)
    y_all, cls_all = np.concatenate(ys), np.concatenate(clss)
    out: Dict[str, Dict[str, object]] = {}
    curves = {}
    for n, parts in pooled.items():
        if len(parts) != len(folds):  # a model dropped in some fold: per-fold figures only
            continue
        p = np.concatenate(parts)
        flag = np.concatenate(flags[n])
        # thresholds differ per fold: precision/recall from the per-fold flags
        d = M.summary(y_all, p, 0.5, None)
        tp = float(np.sum(flag & (y_all == 1)))
        fp = float(np.sum(flag & (y_all == 0)))
        fn = float(np.sum(~flag & (y_all == 1)))
        d["precision"] = tp / (tp + fp) if tp + fp else 0.0
        d["recall"] = tp / (tp + fn) if tp + fn else 0.0
        d["f1"] = (2 * d["precision"] * d["recall"] / (d["precision"] + d["recall"])
                   if d["precision"] + d["recall"] else 0.0)
        d["flagged"] = float(flag.mean())
        d["per_class_recall"] = {c: float(np.mean(flag[cls_all == c]))
                                 for c in sorted({c for c in cls_all if c not in (None, "success")})}
        d["sweep"] = sweep(y_all, p, SWEEP)
        out[n] = d
        curves[n] = p
    return {"metrics": out, "folds": fold_info,
            "threshold": fold_info[-1]["threshold"],
            "ensemble": last_ens.manifest() if last_ens else {},
            "stage": fm.stage, "n_jobs": int(len(fm)), "seconds": round(time.time() - t0, 1),
            "_curves": curves, "_y": y_all}


def evaluate_and_report(fm: FeatureMatrix, cfg, base_names: Optional[List[str]], n_folds: int,
                        title: str, alert_budget: Optional[float] = None, rounds: int = DEFAULT_ROUNDS,
                        log=None):
    """evaluate_matrix with the configured seed and calibration, the Lua model (``gbdt_lite``)
    as an extra at the submit stage when ``fm`` carries the lite rows, then the report under
    ``<data_dir>/reports``. Shared by `nomade evaluate` and `nomade train`. Returns (result,
    report directory). ``alert_budget`` None = the configured alert policy's budget."""
    from ..risk_scale import alert_policy
    from ..scoring import lite_features as lite
    from .lite_model import LiteGBDT
    from .report import write_report

    extras: Dict[str, Callable[[], TrainedModel]] = {}
    if fm.stage == "submit" and "lite_X" in fm.meta:   # the Lua model scores at submission only
        extras["gbdt_lite"] = lambda: LiteGBDT(lite.lite_names(True), rounds, threads=1)
    policy = alert_policy(cfg)
    result = evaluate_matrix(fm, n_folds, base_names, seed=int(cfg.get("train.seed")),
                             max_flagged=policy.budget if alert_budget is None else alert_budget,
                             extras=extras, calibration=str(cfg.get("train.calibration")), log=log,
                             min_precision=policy.min_precision, margin=policy.margin)
    result["alert_policy"] = {"budget": policy.budget if alert_budget is None else alert_budget,
                              "min_precision": policy.min_precision, "margin": policy.margin,
                              "source": policy.source}
    names = list(base_names or DEFAULT_BASES)
    if len(names) > 1:   # what training would publish: the ensemble, or its best base alone
        result["published"] = choose_primary(result, names)
    return result, write_report(result, cfg.data_dir / "reports", title=title)


def evaluate_store(store, cfg, cluster: Optional[str], stage: str, n_folds: int,
                   base_names: Optional[List[str]] = None, max_jobs: Optional[int] = None,
                   alert_budget: Optional[float] = None, log=None):
    """``nomade evaluate``: the store's jobs -> features (the stage's matrix and the Lua model's
    lite rows) -> evaluate_and_report. Returns (result, report directory)."""
    from ..errors import ModelError
    from ..features.build import build_matrix
    from ..features.jobtable import load_jobs
    from ..features.labels import make_labels
    from ..scoring import lite_features as lite
    from ..config import csv_setting
    from .requests import lite_requests

    jt = load_jobs(store, cluster, max_jobs)
    fm = build_matrix(jt, stage, cfg)
    if stage == "start" and int((fm.y >= 0).sum()) < 2 * MIN_TRAIN:
        raise ModelError(f"only {int((fm.y >= 0).sum())} labelled jobs have a start time; the start "
                         "stage cannot be evaluated on this data",
                         hint="traces without wait times (SWF wait = -1) have none; use --stage submit")
    y, _ = make_labels(jt, bool(cfg.get("model.owner_cancel_is_failure")))
    fm.meta["lite_X"], _ = lite.build_lite_rows(lite_requests(jt, y, fm.meta["assumed_wait_s"]), True)   # base "lite"
    names = base_names or csv_setting(cfg, "train.models", DEFAULT_BASES)
    return evaluate_and_report(fm, cfg, names, n_folds,
                               f"nomade evaluation ({cluster or 'all clusters'}, {stage} stage)",
                               alert_budget, log=log)
