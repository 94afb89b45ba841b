"""``nomade train`` end to end: load jobs -> features -> fit + calibrate -> evaluate on the newest
window -> write a bundle into the registry (as a candidate; ``publish`` promotes it when it is
not worse than the current bundle beyond ``train.promote_tolerance``).

Windows, over labelled jobs in submit order: evaluation fits on the first 70 %, calibrates on the
next 15 % and tests on the newest 15 %; the shipped models are then refitted on the first 85 %
and calibrated on the newest 15 %. Metrics in the manifest are the evaluation's (never on
training rows).
"""

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import ModelError
from ..features.jobtable import JobTable, load_jobs
from ..features.labels import make_labels
from ..scoring import lite_features as lite
from ..scoring.calibration import CalibrationMap
from ..scoring.registry import current_in_store, promote, register
from .bundle_writer import new_version, write_bundle
from .lua_compile import compile_submit_lua
from .models.gbdt import DEFAULT_ROUNDS, GBDTModel

FIT, CAL = 0.70, 0.85


@dataclass
class TrainResult:
    version: str
    path: Path
    manifest: Dict[str, Any]
    promoted: bool = False
    promote_reason: str = ""


# ---------------------------------------------------------------- data
def load_training_table(store, cfg, cluster: Optional[str]) -> Tuple[JobTable, np.ndarray, np.ndarray]:
    jt = load_jobs(store, cluster or None)
    days = int(cfg.get("train.window_days"))
    if days > 0:
        last = np.nanmax(jt["submit_time"])
        jt = jt.take(np.flatnonzero(jt["submit_time"] >= last - days * 86400.0))
    y, cls = make_labels(jt, bool(cfg.get("model.owner_cancel_is_failure")))
    ended = int(((y == 0) | (y == 1)).sum())
    need = int(cfg.get("train.min_jobs"))
    if ended < need:
        raise ModelError(f"only {ended} ended jobs with an outcome; a site model needs at least "
                         f"{need} (train.min_jobs)",
                         hint="keep ingesting (`nomade ingest sacct`) - the default bundle scores meanwhile")
    return jt, y, cls


def lite_requests(jt: JobTable, y: np.ndarray) -> List[Dict[str, Any]]:
    from ..features.build import outcome_times

    c = jt.cols
    known = outcome_times(jt)  # end time, or submit + runtime + assumed wait (SWF without waits)
    runtime = np.where(np.isnan(c["end_time"] - c["start_time"]), c["elapsed_s"],
                       c["end_time"] - c["start_time"])

    def opt(v):
        return None if v != v else float(v)
    out = []
    for i in range(len(jt)):
        out.append({"user": c["user"][i] or "", "name": c["name"][i] or "",
                    "cpus": opt(c["req_cpus"][i]), "nodes": opt(c["req_nodes"][i]),
                    "gpus": opt(c["req_gpus"][i]), "mem_mb": opt(c["req_mem_mb"][i]),
                    "mem_per_cpu": c["req_mem_per_cpu"][i] == 1.0,
                    "timelimit_s": opt(c["timelimit_s"][i]), "submit_time": float(c["submit_time"][i]),
                    "runtime": opt(runtime[i]), "end_time": opt(known[i]),
                    "y": int(y[i])})
    return out


def windows(y: np.ndarray) -> Dict[str, np.ndarray]:
    """Row indices of the labelled rows per window (rows are in submit order)."""
    lab = np.flatnonzero((y == 0) | (y == 1))
    n = len(lab)
    a, b = int(n * FIT), int(n * CAL)
    return {"fit": lab[:a], "cal": lab[a:b], "test": lab[b:], "refit": lab[:b], "recal": lab[b:]}


# ---------------------------------------------------------------- model pieces
def isotonic_map(p: np.ndarray, y: np.ndarray) -> CalibrationMap:
    """Centred isotonic regression: fit isotonic regression, then put one knot at the mean
    score of each constant block and interpolate linearly between knots. Unlike the raw step
    function it is strictly increasing between the first and last knot, so it keeps the
    model's ranking (PR-AUC) instead of creating ties."""
    from sklearn.isotonic import IsotonicRegression

    p = np.asarray(p, dtype=np.float64)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    fitted = iso.predict(p)
    levels = np.unique(fitted)
    xs = [float(p[fitted == v].mean()) for v in levels]
    ys = [float(v) for v in levels]
    if len(xs) == 1:
        return CalibrationMap([0.0, 1.0], [ys[0], ys[0]])
    return CalibrationMap(xs, ys)


def metrics(y: np.ndarray, p: np.ndarray, threshold: float, cls=None) -> Dict[str, Any]:
    """The evaluation's metrics (nomade.evaluate.metrics.summary) for one model's test window."""
    from ..evaluate.metrics import summary

    return summary(y.astype(int), p, threshold, cls)


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    from ..evaluate.thresholds import max_f1_threshold

    return max_f1_threshold(y.astype(int), p)


def fit_calibrated(name: str, X: np.ndarray, y: np.ndarray, names: List[str], fit_idx, cal_idx,
                   seed: int, rounds: int = DEFAULT_ROUNDS) -> Tuple[GBDTModel, CalibrationMap]:
    model = GBDTModel(name=name, rounds=rounds).fit_arrays(X[fit_idx], y[fit_idx], names, seed)
    cal = isotonic_map(model.predict_arrays(X[cal_idx]), y[cal_idx].astype(float))
    return model, cal


def evaluate_and_fit(name: str, X: np.ndarray, y: np.ndarray, names: List[str],
                     w: Dict[str, np.ndarray], seed: int, rounds: int = DEFAULT_ROUNDS,
                     cls=None) -> Tuple[GBDTModel, CalibrationMap, Dict, float]:
    """Honest evaluation on the newest window, then the shipped refit. Returns (model, map,
    test metrics, alert threshold)."""
    m, cal = fit_calibrated(name, X, y, names, w["fit"], w["cal"], seed, rounds)
    p_cal = cal(m.predict_arrays(X[w["cal"]]))
    thr = best_f1_threshold(y[w["cal"]], p_cal)
    p_test = cal(m.predict_arrays(X[w["test"]]))
    met = metrics(y[w["test"]], p_test, thr, None if cls is None else cls[w["test"]])
    final, final_cal = fit_calibrated(name, X, y, names, w["refit"], w["recal"], seed, rounds)
    return final, final_cal, met, thr


def user_history_baseline(X_lite: np.ndarray, y: np.ndarray, w: Dict[str, np.ndarray],
                          thr: float) -> Dict:
    rate = X_lite[:, lite.lite_names(True).index("user_fail_rate")]
    prior = float(y[w["fit"]].mean())
    p = np.where(np.isnan(rate), prior, rate)[w["test"]]
    return metrics(y[w["test"]], p, thr)


# ---------------------------------------------------------------- bundle
def _gbdt_files(name: str, model: GBDTModel, cal: CalibrationMap, inputs: str, history_file: str,
                 files: Dict[str, Any], models: Dict[str, Any]) -> Dict[str, Any]:
    trees = model.dump_trees()
    files[f"{name}.onnx"] = model.export_onnx()
    files[f"trees_{name}.json"] = trees
    models[name] = {"file": f"{name}.onnx", "kind": "gbdt", "inputs": inputs,
                    "trees": f"trees_{name}.json", "history": history_file,
                    "calibration": cal.to_json(), "n_trees": len(trees["trees"])}
    return trees


def train_bundle(store, cfg, registry_dir: Path, cluster: Optional[str] = None,
                 with_history: bool = True, use_full_features: bool = True,
                 version: Optional[str] = None, log=None, rounds: int = DEFAULT_ROUNDS) -> TrainResult:
    """Train, evaluate and write a candidate bundle (registered in the store when given)."""
    t0 = time.time()
    say = log or (lambda msg: None)
    seed = int(cfg.get("train.seed"))
    jt, y, cls = load_training_table(store, cfg, cluster)
    w = windows(y)
    say(f"{len(jt)} jobs, {len(w['refit']) + len(w['recal'])} labelled; building features")
    reqs = lite_requests(jt, y)
    X_lite, hist = lite.build_lite_rows(reqs, with_history)
    names_lite = lite.lite_names(with_history)
    inputs_lite = "lite_history" if with_history else "lite"
    files: Dict[str, Any] = {}
    models: Dict[str, Any] = {}
    all_metrics: Dict[str, Any] = {}
    schemas = {inputs_lite: {"names": names_lite, "hash": lite.schema_hash(names_lite)}}

    say("fitting gbdt_lite (the Lua submit model)")
    m_lite, cal_lite, met_lite, thr_lite = evaluate_and_fit("gbdt_lite", X_lite, y, names_lite, w, seed, rounds, cls)
    all_metrics["gbdt_lite"] = met_lite
    if not with_history:  # site-independent model: ship no per-user data
        hist = lite.LiteHistory()
    files["history_lite.json"] = hist.to_json()
    trees_lite = _gbdt_files("gbdt_lite", m_lite, cal_lite, inputs_lite, "history_lite.json", files, models)
    if with_history:
        all_metrics["user_history"] = user_history_baseline(X_lite, y, w, thr_lite)
    primary, thr = "gbdt_lite", thr_lite

    if use_full_features:
        from ..features.build import build_matrix
        say("building the full submit feature matrix; fitting gbdt_submit")
        fm = build_matrix(jt, "submit", cfg)
        m_sub, cal_sub, met_sub, thr_sub = evaluate_and_fit("gbdt_submit", fm.X, y, fm.names, w, seed, rounds, cls)
        all_metrics["gbdt_submit"] = met_sub
        files["history.json"] = fm.meta["history"].to_json()
        _gbdt_files("gbdt_submit", m_sub, cal_sub, "submit", "history.json", files, models)
        schemas["submit"] = {"names": list(fm.names), "hash": fm.schema_hash}
        if met_sub["pr_auc"] >= met_lite["pr_auc"]:
            primary, thr = "gbdt_submit", thr_sub

    version = version or new_version()
    high = thr + (1.0 - thr) / 2.0
    files["submit_model.lua"] = compile_submit_lua(trees_lite, hist, cal_lite, version, thr_lite, with_history)
    sub = jt["submit_time"]
    manifest = {
        "cluster": cluster or "",
        "feature_schema": schemas,
        "training_window": {"first_submit": float(np.nanmin(sub)), "last_submit": float(np.nanmax(sub))},
        "data_counts": {"jobs": int(len(jt)), "labelled": int(((y == 0) | (y == 1)).sum()),
                        "failed": int((y == 1).sum()), "fit": int(len(w["refit"])),
                        "calibration": int(len(w["recal"])), "test": int(len(w["test"]))},
        "metrics": all_metrics,
        "evaluation": {"protocol": "fit oldest 70%, calibrate next 15%, test newest 15% of labelled jobs "
                                   "(submit order); shipped models refitted on the oldest 85%",
                       "test_first_submit": float(sub[w["test"][0]]) if len(w["test"]) else None},
        "thresholds": {"alert": float(thr), "high": float(high)},
        "ensemble": {"mode": "single", "primary": {"submit": primary}, "weights": {primary: 1.0},
                     "note": "risk = isotonic-calibrated GBDT; neural models and stacking not in this bundle"},
        "models": models,
        "lua": {"file": "submit_model.lua", "model": "gbdt_lite", "threshold": float(thr_lite),
                "note": "Lua risk = calibrated gbdt_lite (features Lua can compute); metrics under gbdt_lite"},
        "train_seconds": round(time.time() - t0, 2),
    }
    path = write_bundle(registry_dir, version, files, manifest)
    manifest = json.loads((path / "manifest.json").read_text())
    if store is not None:
        register(store, path, manifest, "candidate")
    say(f"wrote {path} in {time.time() - t0:.1f}s")
    return TrainResult(version=version, path=path, manifest=manifest)


def primary_pr_auc(manifest: Dict[str, Any]) -> float:
    prim = manifest["ensemble"]["primary"]["submit"]
    return float(manifest["metrics"][prim]["pr_auc"])


def publish(store, registry_dir: Path, result: TrainResult, tolerance: float) -> TrainResult:
    """Promote ``result`` unless the current bundle is better by more than ``tolerance`` PR-AUC.
    Both are compared on the new bundle's newest window when the current one can be re-scored
    there; otherwise on their own recorded test metrics (said in the reason)."""
    cur = current_in_store(store)
    new = primary_pr_auc(result.manifest)
    if cur is None:
        promote(store, registry_dir, result.version)
        result.promoted, result.promote_reason = True, "no current bundle"
        return result
    row = store.conn.execute("SELECT manifest FROM models WHERE version = ?", (cur,)).fetchone()
    old = primary_pr_auc(json.loads(row[0]))
    if new + tolerance >= old:
        promote(store, registry_dir, result.version)
        result.promoted = True
        result.promote_reason = f"PR-AUC {new:.3f} vs current {cur} {old:.3f} (tolerance {tolerance})"
    else:
        result.promote_reason = (f"kept {cur}: new PR-AUC {new:.3f} is below current {old:.3f} "
                                 f"by more than {tolerance}")
    return result


KEEP_REFRESHES = 3


def prune_refreshes(store, registry_dir: Path, base: str, keep: int = KEEP_REFRESHES) -> List[str]:
    """Delete all but the newest ``keep`` history refreshes of ``base`` (never the current one)."""
    import shutil

    rows = store.conn.execute("SELECT version, status FROM models WHERE version LIKE ? ORDER BY version",
                              (base + ".h%",)).fetchall()
    gone = [v for v, st in rows[:-keep] if st != "current"] if len(rows) > keep else []
    for v in gone:
        shutil.rmtree(Path(registry_dir) / v, ignore_errors=True)
        with store.transaction() as c:
            c.execute("DELETE FROM models WHERE version = ?", (v,))
    return gone


def refresh_history(store, cfg, registry_dir: Path, log=None) -> TrainResult:
    """Rebuild the current bundle's history tables (history.json, history_lite.json and
    submit_model.lua) from the store, keeping its models; writes it as a new version
    ``<version>.h<UTC time>`` and makes that current."""
    from ..scoring.bundle import load_bundle
    from ..scoring.registry import current_version

    cur = current_version(registry_dir)
    if cur is None:
        raise ModelError("no current bundle to refresh", hint="run `nomade train --publish` first")
    b = load_bundle(registry_dir / cur)
    man = b.manifest
    jt = load_jobs(store, man.get("cluster") or None)
    y, cls = make_labels(jt, bool(cfg.get("model.owner_cancel_is_failure")))
    files: Dict[str, Any] = {n: b.read_bytes(n) for n in man["files"]}
    lite_spec = man["models"][man["lua"]["model"]]
    with_history = lite_spec["inputs"] == "lite_history"
    _, hist = lite.build_lite_rows(lite_requests(jt, y), with_history)
    files["history_lite.json"] = hist.to_json()
    if "history.json" in files:
        from ..features.build import build_matrix
        files["history.json"] = build_matrix(jt, "submit", cfg).meta["history"].to_json()
    base = cur.split(".h")[0]
    version = f"{base}.h{new_version()}"
    files["submit_model.lua"] = compile_submit_lua(
        b.json(lite_spec["trees"]), hist, CalibrationMap.from_json(lite_spec["calibration"]),
        version, float(man["lua"]["threshold"]), with_history)
    keep = {k: v for k, v in man.items() if k not in ("files", "version", "created_at",
                                                      "format_version", "nomade_version")}
    keep["history_refreshed_from"] = cur
    keep["history_last_end"] = None if hist.last_end != hist.last_end else hist.last_end
    path = write_bundle(registry_dir, version, files, keep)
    manifest = json.loads((path / "manifest.json").read_text())
    register(store, path, manifest, "candidate")
    promote(store, registry_dir, version)
    prune_refreshes(store, registry_dir, base)
    if log:
        log(f"refreshed history of {cur} -> {version}")
    return TrainResult(version=version, path=path, manifest=manifest, promoted=True,
                       promote_reason="history refresh of the current bundle")


def headline_rows(manifest: Dict[str, Any]) -> List[str]:
    """The metrics table as text lines (model, PR-AUC, ROC-AUC, ECE, recall at the alert threshold)."""
    rows = [f"{'model':<14} {'PR-AUC':>7} {'ROC-AUC':>8} {'ECE':>6} {'recall':>7} {'n_test':>7}"]
    for name, met in manifest["metrics"].items():
        def f(k):
            v = met.get(k)
            return float("nan") if v is None else float(v)
        rows.append(f"{name:<14} {f('pr_auc'):>7.3f} {f('roc_auc'):>8.3f} {f('ece'):>6.3f} "
                    f"{f('recall'):>7.3f} {met.get('n_test', 0):>7}")
    return rows


def demo_step(data_dir: Path, say=None, rounds: int = 100) -> Dict[str, Any]:
    """The prediction part of ``nomade demo``: train on the imported trace, publish, print the
    headline table. Returns what the demo summary records."""
    from ..config import load_config
    from ..store.db import store_from_config

    import importlib.util

    out = say or (lambda m: None)
    if importlib.util.find_spec("lightgbm") is None:
        out("training skipped: the [train] extra is not installed (pip install 'nomade[train]')")
        return {"skipped": "train extra not installed"}
    cfg = load_config(None, {"data_dir": str(data_dir)})
    out("training (GBDT on submit-time features, temporal evaluation on the newest 15%) ...")
    with store_from_config(cfg) as store:
        res = train_bundle(store, cfg, cfg.registry_dir, log=out, rounds=rounds)
        publish(store, cfg.registry_dir, res, float(cfg.get("train.promote_tolerance")))
    for line in headline_rows(res.manifest):
        out(line)
    out(f"model bundle: {res.path} (metrics in manifest.json; Lua model: submit_model.lua)")
    return {"bundle": str(res.path), "version": res.version, "metrics": res.manifest["metrics"],
            "train_seconds": res.manifest["train_seconds"]}
