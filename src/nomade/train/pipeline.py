"""``nomade train`` end to end: load jobs -> features -> honest evaluation (rolling-origin folds:
the ensemble, each base model, the Lua model and both baselines, on the same folds) -> fit the
shipped models on all labelled history -> the publish gate (nomade.train.publish_gate: no
constant, near-chance, flat-calibrated or broken model; its verdict goes into the manifest) ->
write a bundle into the registry (as a candidate; ``publish`` promotes it when it passes the gate
and is not worse than the current bundle beyond ``train.promote_tolerance``).

A full bundle (format 2) holds, per stage in ``train.stages``: the stacked ensemble of
``train.models`` (nomade.train.ensemble) as ONNX graphs + arrays + stack spec, and the stage's
history state; plus the Lua submit model ``gbdt_lite`` (history tables compiled to
submit_model.lua). Metrics in the manifest are the evaluation's - never on training rows.

The site-independent cold-start bundle (``use_full_features=False``: models/default) is only the
lite GBDT, evaluated on one temporal split: fit on the oldest 70 %, calibrate on the next 15 %,
test on the newest 15 %, then refitted on the oldest 85 % and calibrated on the newest 15 %.
"""

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..config import csv_setting
from ..errors import ModelError
from ..evaluate.thresholds import ThresholdChoice
from ..features.build import assumed_wait_s
from ..features.jobtable import JobTable, load_jobs
from ..features.labels import make_labels
from ..risk_scale import AlertPolicy, alert_policy
from ..scoring import lite_features as lite
from ..scoring.calibration import CalibrationMap
from ..scoring.lua_check import check_lua_model
from ..scoring.registry import current_in_store, primary_pr_auc, promote, register
from ..store import models as model_table
from .bundle_writer import new_version, write_bundle
from .ensemble import DEFAULT_BASES
from .extra import missing_train_modules
from .folds import MIN_TRAIN
from .lite_model import LiteGBDT, isotonic_map
from .lua_compile import compile_submit_lua
from .models.gbdt import DEFAULT_ROUNDS, GBDTModel
from .publish_gate import assess, window_checks
from .requests import lite_requests
from .series_model import fit_series

FIT, CAL = 0.70, 0.85
STAGES = ("submit", "start")
MIN_STAGE_JOBS = 1000   # labelled jobs a later stage (start) needs to be trained at all


@dataclass
class TrainResult:
    version: str
    path: Path
    manifest: Dict[str, Any]
    promoted: bool = False
    promote_reason: str = ""
    reports: Optional[Dict[str, str]] = None
    fitted: Optional[Dict[str, Any]] = None   # stage -> the native StackedEnsemble (not in the bundle)


# ---------------------------------------------------------------- data
def load_training_table(store, cfg, cluster: Optional[str]) -> Tuple[JobTable, np.ndarray, np.ndarray]:
    days = int(cfg.get("train.window_days"))
    since = None
    if days > 0:   # only the window is read from the store
        from ..store.job_queries import newest_training_submit
        newest = newest_training_submit(store, cluster or None)
        since = None if newest is None else float(newest) - days * 86400.0
    jt = load_jobs(store, cluster or None, since=since)
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


def windows(y: np.ndarray) -> Dict[str, np.ndarray]:
    """Row indices of the labelled rows per window (rows are in submit order)."""
    lab = np.flatnonzero((y == 0) | (y == 1))
    n = len(lab)
    a, b = int(n * FIT), int(n * CAL)
    return {"fit": lab[:a], "cal": lab[a:b], "test": lab[b:], "refit": lab[:b], "recal": lab[b:]}


# ---------------------------------------------------------------- model pieces
def metrics(y: np.ndarray, p: np.ndarray, threshold: float, cls=None) -> Dict[str, Any]:
    """The evaluation's metrics (nomade.evaluate.metrics.summary) for one model's test window."""
    from ..evaluate.metrics import summary

    return summary(y.astype(int), p, threshold, cls)


def alert_choice(y: np.ndarray, p: np.ndarray, policy: Optional[AlertPolicy] = None) -> ThresholdChoice:
    """The alert threshold by the alert policy (nomade.risk_scale) on a calibration window."""
    from ..evaluate.thresholds import choose_alert_threshold

    policy = policy or AlertPolicy()
    return choose_alert_threshold(y.astype(int), p, policy.budget, policy.min_precision, policy.margin)


def fit_calibrated(name: str, X: np.ndarray, y: np.ndarray, names: List[str], fit_idx, cal_idx,
                   seed: int, rounds: int = DEFAULT_ROUNDS) -> Tuple[GBDTModel, CalibrationMap]:
    model = GBDTModel(name=name, rounds=rounds).fit_arrays(X[fit_idx], y[fit_idx], names, seed)
    cal = isotonic_map(model.predict_arrays(X[cal_idx]), y[cal_idx].astype(float))
    return model, cal


def evaluate_and_fit(name: str, X: np.ndarray, y: np.ndarray, names: List[str],
                     w: Dict[str, np.ndarray], seed: int, rounds: int = DEFAULT_ROUNDS,
                     cls=None, policy: Optional[AlertPolicy] = None
                     ) -> Tuple[GBDTModel, CalibrationMap, Dict, ThresholdChoice]:
    """One temporal split (the cold-start bundle): evaluation on the newest window, then the
    shipped refit. Returns (model, map, test metrics, alert threshold choice)."""
    m, cal = fit_calibrated(name, X, y, names, w["fit"], w["cal"], seed, rounds)
    p_cal = cal(m.predict_arrays(X[w["cal"]]))
    choice = alert_choice(y[w["cal"]], p_cal, policy)
    thr = choice.threshold
    p_test = cal(m.predict_arrays(X[w["test"]]))
    met = metrics(y[w["test"]], p_test, thr, None if cls is None else cls[w["test"]])
    final, final_cal = fit_calibrated(name, X, y, names, w["refit"], w["recal"], seed, rounds)
    return final, final_cal, met, choice


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


@dataclass
class LuaPart:
    """The Lua submit model and what the bundle records about it."""
    trees: Dict[str, Any]
    calibration: CalibrationMap
    threshold: float
    metrics: Optional[Dict[str, Any]] = None
    choice: Dict[str, Any] = field(default_factory=dict)   # how the threshold was chosen
    checks: Dict[str, Any] = field(default_factory=dict)   # its calibration window, for the publish gate


def _fit_lite_single_split(X_lite, y, cls, names, w, seed, rounds, files, models, inputs,
                           policy: Optional[AlertPolicy] = None) -> LuaPart:
    m, cal, met, choice = evaluate_and_fit("gbdt_lite", X_lite, y, names, w, seed, rounds, cls, policy)
    trees = _gbdt_files("gbdt_lite", m, cal, inputs, "history_lite.json", files, models)
    checks = window_checks(y[w["recal"]], cal(m.predict_arrays(X_lite[w["recal"]])))
    return LuaPart(trees, cal, choice.threshold, met,
                   dict(choice.as_dict(), policy=(policy or AlertPolicy()).source), checks)


def _fit_lite(fm, names, seed, rounds, files, models, inputs,
              policy: Optional[AlertPolicy] = None) -> LuaPart:
    from .ensemble import subset

    lm = LiteGBDT(names, rounds).fit(fm, seed)
    p_cal = lm.predict(subset(fm, lm.cal_rows))
    choice = alert_choice(fm.y[lm.cal_rows], p_cal, policy)
    trees = _gbdt_files("gbdt_lite", lm.model, lm.calibration, inputs, "history_lite.json", files, models)
    return LuaPart(trees, lm.calibration, choice.threshold,
                   choice=dict(choice.as_dict(), policy=(policy or AlertPolicy()).source),
                   checks=window_checks(fm.y[lm.cal_rows], p_cal))


def _evaluate_stage(fm, cfg, base_names, rounds, version, say):
    from .evaluation import evaluate_and_report
    from .report import public

    res, out = evaluate_and_report(fm, cfg, base_names, int(cfg.get("train.folds")),
                                   f"nomade train {version}: {fm.stage} stage",
                                   alert_policy(cfg).budget, rounds, say)
    pub = public(res, out)
    return {"protocol": f"rolling origin, {len(res['folds'])} folds over the newest half of the "
                        "history; each fold trains on jobs that ended before its test window",
            "folds": pub["folds"], "metrics": pub["metrics"], "report": str(out),
            "seconds": pub["seconds"], "published": pub.get("published")}


def _fit_stage(fm, jt, cls, cfg, base_names, say, single: Optional[Dict[str, Any]] = None):
    """Fit the stage's ensemble on all of ``fm``; returns its StageArtifacts (bundle content).
    ``single``: publish_gate.choose_primary's choice - its base is published alone."""
    from ..features.start import StartContext
    from .ensemble import StackedEnsemble, default_bases
    from .stage_bundle import stage_artifacts

    n = int((fm.y >= 0).sum())
    say(f"fitting the {fm.stage}-stage ensemble ({', '.join(base_names)}) on {n} labelled jobs")
    ens = StackedEnsemble(default_bases(base_names, threads=2),
                          calibration=str(cfg.get("train.calibration"))).fit(fm, int(cfg.get("train.seed")))
    if single is not None and single["base"] in ens.bases:
        ens.use_single(single["base"], single["reason"])
        say(f"{fm.stage} stage: {single['reason']}")
    ctx = StartContext.from_table(jt, cls) if fm.stage == "start" else None
    return stage_artifacts(ens, fm, ctx, alert_policy(cfg))


@dataclass
class _Parts:
    """What the training steps contribute to a bundle."""
    schemas: Dict[str, Any]
    files: Dict[str, Any] = field(default_factory=dict)
    models: Dict[str, Any] = field(default_factory=dict)
    evaluation: Dict[str, Any] = field(default_factory=dict)
    ensemble: Dict[str, Any] = field(default_factory=dict)
    thresholds: Dict[str, float] = field(default_factory=dict)
    stage_thresholds: Dict[str, Dict[str, float]] = field(default_factory=dict)
    threshold_choices: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    metrics: Dict[str, Any] = field(default_factory=dict)
    reports: Dict[str, str] = field(default_factory=dict)
    fitted: Dict[str, Any] = field(default_factory=dict)
    lua: Optional[LuaPart] = None
    series: Optional[Dict[str, Any]] = None
    evaluation_skipped: str = ""   # why there is no evaluation (the publish gate then refuses)


def _cold_start_parts(parts: _Parts, X_lite, y, cls, names_lite, inputs_lite, seed, rounds, say,
                      policy: Optional[AlertPolicy] = None) -> None:
    say("fitting gbdt_lite (the Lua submit model) on one temporal split")
    lua = _fit_lite_single_split(X_lite, y, cls, names_lite, windows(y), seed, rounds, parts.files,
                                 parts.models, inputs_lite, policy)
    parts.evaluation["lua"] = {"protocol": "fit oldest 70%, calibrate next 15%, test newest 15% of "
                                           "labelled jobs (submit order); shipped model refitted on "
                                           "the oldest 85%", "metrics": {"gbdt_lite": lua.metrics}}
    parts.lua, parts.metrics = lua, {"gbdt_lite": lua.metrics}
    parts.thresholds = {"alert": lua.threshold, "high": lua.threshold + (1 - lua.threshold) / 2}
    parts.ensemble = {"mode": "single", "primary": {"submit": "gbdt_lite"}, "weights": {"gbdt_lite": 1.0},
                      "note": "cold-start bundle: the site-independent lite GBDT alone"}


def _evaluation_skipped(folds: int, n_labelled: int) -> str:
    """Why a stage gets no rolling evaluation ('' when it does)."""
    if folds <= 0:
        return "train.folds = 0"
    if n_labelled < 2 * MIN_TRAIN:
        return (f"only {n_labelled} labelled jobs; the rolling evaluation needs at least "
                f"{2 * MIN_TRAIN}")
    return ""


def _ensemble_parts(parts: _Parts, store, cfg, jt, cls, X_lite, names_lite, inputs_lite, version,
                    seed, rounds, say) -> None:
    """Per stage: evaluation, the fitted ensemble as bundle content; the Lua model (on the first
    stage's matrix) and the series model."""
    from ..features.build import build_matrix

    base_names = csv_setting(cfg, "train.models", DEFAULT_BASES)
    stages = csv_setting(cfg, "train.stages", STAGES)
    stacks: Dict[str, Any] = {}
    skipped: Dict[str, str] = {}
    singles: Dict[str, Any] = {}   # stages whose ensemble lost to a base: that base alone
    for stage in stages:
        say(f"building the {stage}-stage feature matrix")
        fm = build_matrix(jt, stage, cfg)
        fm.meta["lite_X"] = X_lite
        n_lab = int((fm.y >= 0).sum())
        if stage != stages[0] and n_lab < MIN_STAGE_JOBS:
            skipped[stage] = (f"only {n_lab} labelled jobs have a start time (need "
                              f"{MIN_STAGE_JOBS}); the {stages[0]}-stage ensemble scores there")
            say(f"skipping the {stage} stage: {skipped[stage]}")
            continue
        parts.schemas[stage] = {"names": list(fm.names), "hash": fm.schema_hash}
        if parts.lua is None:
            say("fitting gbdt_lite (the Lua submit model)")
            parts.lua = _fit_lite(fm, names_lite, seed, rounds, parts.files, parts.models, inputs_lite,
                                  alert_policy(cfg))
        skip = _evaluation_skipped(int(cfg.get("train.folds")), n_lab)
        if skip:
            parts.evaluation_skipped = parts.evaluation_skipped or skip
            say(f"no evaluation of the {stage} stage: {skip}; this bundle will not be published "
                "automatically")
        single = None
        if not skip:
            parts.evaluation[stage] = _evaluate_stage(fm, cfg, base_names, rounds, version, say)
            parts.reports[stage] = parts.evaluation[stage]["report"]
            single = parts.evaluation[stage].get("published")   # publish_gate.choose_primary
            if single is not None:
                singles[stage] = dict(single)
        art = _fit_stage(fm, jt, cls, cfg, base_names, say, single)
        parts.files.update(art.files)
        parts.models.update(art.models)
        stacks[f"ensemble_{stage}"] = art.stack
        parts.stage_thresholds[stage] = art.thresholds
        parts.threshold_choices[stage] = art.threshold_choice
        parts.fitted[stage] = art.ensemble
    if store is not None:
        series = fit_series(store, cfg, seed)
        parts.files.update(series.files)
        parts.series = series.spec
        say("series model: " + (series.spec.get("skipped") or
                                 f"trained on {series.spec['jobs']['fit']} jobs' recorder samples"))
    parts.metrics = dict(parts.evaluation.get("submit", {}).get("metrics", {}))
    parts.thresholds = parts.stage_thresholds[stages[0]]
    parts.ensemble = {"mode": stacks[f"ensemble_{stages[0]}"]["mode"],
                      "primary": {st: f"ensemble_{st}" for st in stages if st not in skipped},
                      "stacks": stacks, "skipped_stages": skipped,
                      **({"published_alone": singles} if singles else {})}


def _one_base(cfg, name: str):
    """``cfg`` with ``train.models`` = ``name`` alone (``nomade train --model NAME``)."""
    from .ensemble import default_bases

    default_bases([name])   # an unknown name is a ModelError that lists the known ones
    values = dict(cfg.values, **{"train.models": name})
    return dataclasses.replace(cfg, values=values, sources=dict(cfg.sources, **{"train.models": "--model"}))


def train_bundle(store, cfg, registry_dir: Path, cluster: Optional[str] = None,
                 with_history: bool = True, use_full_features: bool = True,
                 version: Optional[str] = None, log=None, rounds: int = DEFAULT_ROUNDS,
                 only_model: Optional[str] = None) -> TrainResult:
    """Train, evaluate and write a candidate bundle (registered in the store when given).
    ``only_model``: the ensemble has that one base model alone - an experiment, never published."""
    t0 = time.time()
    say = log or (lambda msg: None)
    if only_model:
        cfg = _one_base(cfg, only_model)
    seed = int(cfg.get("train.seed"))
    version = version or new_version()
    jt, y, cls = load_training_table(store, cfg, cluster)
    say(f"{len(jt)} jobs, {int(((y == 0) | (y == 1)).sum())} labelled; building the Lua model's features")
    X_lite, hist = lite.build_lite_rows(lite_requests(jt, y, assumed_wait_s(cfg)), with_history)
    names_lite = lite.lite_names(with_history)
    inputs_lite = "lite_history" if with_history else "lite"
    parts = _Parts(schemas={inputs_lite: {"names": names_lite, "hash": lite.schema_hash(names_lite)}})
    if use_full_features:
        _ensemble_parts(parts, store, cfg, jt, cls, X_lite, names_lite, inputs_lite, version, seed,
                        rounds, say)
    else:
        _cold_start_parts(parts, X_lite, y, cls, names_lite, inputs_lite, seed, rounds, say,
                          alert_policy(cfg))
    if not with_history:  # site-independent model: ship no per-user data
        hist = lite.LiteHistory()
    lua = parts.lua
    parts.files["history_lite.json"] = hist.to_json()
    parts.files["submit_model.lua"] = compile_submit_lua(lua.trees, hist, lua.calibration, version,
                                                         lua.threshold, with_history)
    sub = jt["submit_time"]
    manifest = {
        "cluster": cluster or "",
        "feature_schema": parts.schemas,
        "training_window": {"first_submit": float(np.nanmin(sub)), "last_submit": float(np.nanmax(sub))},
        "data_counts": {"jobs": int(len(jt)), "labelled": int(((y == 0) | (y == 1)).sum()),
                        "failed": int((y == 1).sum())},
        "metrics": parts.metrics,
        "evaluation": parts.evaluation,
        "thresholds": parts.thresholds,
        "stage_thresholds": parts.stage_thresholds,
        "alert_policy": dict(parts.threshold_choices, lua=lua.choice),
        "ensemble": parts.ensemble,
        "models": parts.models,
        "series": parts.series or {"skipped": "not trained"},
        "lua": {"file": "submit_model.lua", "model": "gbdt_lite", "threshold": float(lua.threshold),
                "note": "Lua risk = calibrated gbdt_lite (the features Lua can compute); its "
                        "metrics are under gbdt_lite"},
        "train_seconds": round(time.time() - t0, 2),
    }
    manifest["lua"]["checks"] = lua.checks
    if parts.evaluation_skipped:
        manifest["evaluation_skipped"] = parts.evaluation_skipped
    if only_model:
        manifest["experiment"] = {"model": only_model,
                                  "note": "one base model alone (nomade train --model); never published"}
    manifest["publish_gate"] = assess(manifest).as_dict()
    say(f"publish gate: {manifest['publish_gate']['reason']}")
    path = write_bundle(registry_dir, version, parts.files, manifest)
    manifest = json.loads((path / "manifest.json").read_text())
    if store is not None:
        register(store, path, manifest, "candidate")
    say(f"wrote {path} in {time.time() - t0:.1f}s")
    return TrainResult(version=version, path=path, manifest=manifest, reports=parts.reports,
                       fitted=parts.fitted)


def publish(store, registry_dir: Path, result: TrainResult, tolerance: float,
            lua_path: str = "") -> TrainResult:
    """Promote ``result`` when it passes the publish gate (nomade.train.publish_gate) and the
    current bundle is not better by more than ``tolerance`` PR-AUC (each bundle's own recorded
    evaluation, its newest windows). A refused bundle leaves the current one (or, with none, the
    shipped default bundle) scoring; a current bundle without metrics, or one that fails the
    gate, is replaced by any bundle that passes it. A bundle whose submit_model.lua does not load
    is never promoted (ModelError)."""
    check_lua_model(result.path / "submit_model.lua")
    cur = current_in_store(store)
    verdict, new = assess(result.manifest), primary_pr_auc(result.manifest)
    if new is None and verdict.passed:
        verdict.reasons.append("its primary submit model has no recorded PR-AUC")
    if not verdict.passed:
        keep = f"kept {cur}" if cur else "the shipped default bundle keeps scoring"
        result.promote_reason = f"refused by the publish gate: {verdict.line}; {keep}"
        return result
    if cur is None:
        promote(store, registry_dir, result.version, lua_path)
        result.promoted, result.promote_reason = True, "no current bundle; passed the publish gate"
        return result
    cur_manifest = model_table.get_model(store, cur).manifest
    old, old_verdict = primary_pr_auc(cur_manifest), assess(cur_manifest)
    if old is None or not old_verdict.passed:
        promote(store, registry_dir, result.version, lua_path)
        result.promoted = True
        result.promote_reason = (f"replaced {cur}: " + ("it has no evaluation metrics" if old is None
                                                         else f"it fails the publish gate ({old_verdict.line})"))
        return result
    if new + tolerance >= old:
        promote(store, registry_dir, result.version, lua_path)
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

    rows = model_table.versions_with_prefix(store, base + ".h")
    gone = [v for v, st in rows[:-keep] if st != "current"] if len(rows) > keep else []
    for v in gone:
        shutil.rmtree(Path(registry_dir) / v, ignore_errors=True)
        model_table.delete_model(store, v)
    return gone


def _refresh_stack(files: Dict[str, Any], bundle, stack: Dict[str, Any], jt, cls, cfg) -> None:
    """New history state (and start context), neighbour bank and sequence table of one stage,
    from the store; the stage's models and scalers stay as trained."""
    from ..features.build import build_matrix
    from ..features.start import StartContext
    from ..scoring.neighbours import NeighbourBank
    from ..scoring.sequences import SequenceTable
    from .models.knn import DEFAULT_WINDOW, SimilarityGraph
    from .stage_bundle import CONTEXT_FILE

    stage = stack["stage"]
    fm = build_matrix(jt, stage, cfg)
    files[f"history_{stage}.json"] = fm.meta["history"].to_json()
    if stage == "start":
        files[CONTEXT_FILE] = StartContext.from_table(jt, cls).to_json()
    for name in stack["bases"]:
        spec = bundle.models[name]
        prefix = spec.get("array_prefix", "")
        arrays = {n[:-4]: bundle.array(n) for n in spec.get("arrays", [])}
        if spec["kind"] == "gnn":
            old = NeighbourBank.from_arrays(arrays, prefix)
            graph = SimilarityGraph.with_scaler(old.mean, old.std, old.k, int(spec.get("window", DEFAULT_WINDOW)))
            new = graph.bank(fm)
        elif spec["kind"] == "lstm":
            new = SequenceTable.of_matrix(fm, SequenceTable.from_arrays(arrays, prefix).k)
        else:
            continue
        files.update({f"{prefix}{k}.npy": v for k, v in new.to_arrays("").items()})


def refresh_history(store, cfg, registry_dir: Path, log=None) -> TrainResult:
    """Rebuild the current bundle's history tables from the store, keeping its models: the Lua
    model's tables and submit_model.lua, and per ensemble stage its history state, start
    context, neighbour bank and sequence table. Written as a new version
    ``<version>.h<UTC time>`` and made current."""
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
    _, hist = lite.build_lite_rows(lite_requests(jt, y, assumed_wait_s(cfg)), with_history)
    files["history_lite.json"] = hist.to_json()
    if "history.json" in files:  # format-1 bundles: the full submit GBDT's history state
        from ..features.build import build_matrix
        files["history.json"] = build_matrix(jt, "submit", cfg).meta["history"].to_json()
    for stack in man["ensemble"].get("stacks", {}).values():
        _refresh_stack(files, b, stack, jt, cls, cfg)
    base = cur.split(".h")[0]
    version = f"{base}.h{new_version()}"
    files["submit_model.lua"] = compile_submit_lua(
        b.json(lite_spec["trees"]), hist, CalibrationMap.from_json(lite_spec["calibration"]),
        version, float(man["lua"]["threshold"]), with_history)
    keep = {k: v for k, v in man.items() if k not in ("files", "version", "created_at",
                                                      "format_version", "nomade_version")}
    keep["history_refreshed_from"] = cur
    keep["history_last_end"] = None if hist.last_end != hist.last_end else hist.last_end
    path = write_bundle(registry_dir, version, files, keep, format_version=man["format_version"])
    manifest = json.loads((path / "manifest.json").read_text())
    register(store, path, manifest, "candidate")
    promote(store, registry_dir, version, str(cfg.get("model.lua_path")))
    prune_refreshes(store, registry_dir, base)
    if log:
        log(f"refreshed history of {cur} -> {version}")
    return TrainResult(version=version, path=path, manifest=manifest, promoted=True,
                       promote_reason="history refresh of the current bundle")


ROLES = {"ensemble": "stacked + calibrated (Prolog, nomade-why)", "gbdt": "base model",
         "lite": "base model (the Lua model's features)",
         "gnn": "base model", "lstm": "base model", "autoencoder": "base model (raw error)",
         "user_history": "baseline", "gbdt_hpe": "baseline (HPE recipe)",
         "gbdt_lite": "the Lua model (sbatch)"}


def headline_rows(manifest: Dict[str, Any]) -> List[str]:
    """The metrics table as text lines (model, PR-AUC, ROC-AUC, ECE, recall at the alert threshold)."""
    rows = [f"{'model':<13} {'PR-AUC':>7} {'ROC-AUC':>8} {'ECE':>6} {'recall':>7} {'n_test':>7}  role"]
    for name, met in manifest["metrics"].items():
        def f(k, met=met):
            v = met.get(k)
            return float("nan") if v is None else float(v)
        rows.append(f"{name:<13} {f('pr_auc'):>7.3f} {f('roc_auc'):>8.3f} {f('ece'):>6.3f} "
                    f"{f('recall'):>7.3f} {met.get('n_test', 0):>7}  {ROLES.get(name, '')}")
    return rows


def demo_step(data_dir: Path, say=None, rounds: int = DEFAULT_ROUNDS) -> Dict[str, Any]:
    """The prediction part of ``nomade demo``: train on the imported trace, publish, print the
    headline table. Returns what the demo summary records."""
    from ..config import load_config
    from ..scoring.ensemble import describe
    from ..store.db import store_from_config

    out = say or (lambda m: None)
    missing = missing_train_modules()
    if missing:
        out(f"training skipped: the [train] extra is not installed (missing: {', '.join(missing)}; "
            "pip install 'nomade[train]')")
        return {"skipped": "train extra not installed"}
    cfg = load_config(None, {"data_dir": str(data_dir)})
    out("training the ensemble (two GBDTs + similarity GNN + LSTM + autoencoder, stacked and "
        "calibrated) with a rolling-origin evaluation against the baselines ...")
    with store_from_config(cfg) as store:
        res = train_bundle(store, cfg, cfg.registry_dir, log=out, rounds=rounds)
        publish(store, cfg.registry_dir, res, float(cfg.get("train.promote_tolerance")),
                str(cfg.get("model.lua_path")))
    ev = res.manifest["evaluation"].get("submit", {})
    out(f"honest evaluation, submit stage: {ev.get('protocol', '')}; "
        f"pooled over the test windows, each model at its own training-side alert threshold:")
    for line in headline_rows(res.manifest):
        out("  " + line)
    out(f"ensemble: {describe(res.manifest)}")
    for stage, why in res.manifest["ensemble"].get("skipped_stages", {}).items():
        out(f"{stage} stage not trained: {why}")
    for stage, rep in (res.reports or {}).items():
        out(f"report ({stage} stage): {rep}/report.html")
    out(f"model bundle: {res.path} (" + ("published as current" if res.promoted else
                                          f"not published: {res.promote_reason}")
        + "; Lua model: submit_model.lua)")
    return {"bundle": str(res.path), "version": res.version, "metrics": res.manifest["metrics"],
            "train_seconds": res.manifest["train_seconds"], "reports": res.reports or {}}
