"""One scoring stage's ensemble as bundle content: every base model as ONNX (plus the arrays its
runtime inputs need), the stage's history state, the start context, and the stack spec that
nomade.scoring.ensemble.StackedScorer loads (bundle format 2, docs/models.md)."""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np

from ..evaluate.thresholds import max_f1_threshold
from ..features.matrix import FeatureMatrix
from ..features.start import StartContext
from ..scoring.neighbours import NeighbourBank
from ..scoring.sequences import JobFields, SequenceTable
from .calibration import Calibrator
from .ensemble import StackedEnsemble
from .models.knn import SimilarityGraph, outcome_time

CONTEXT_FILE = "start_context.json"
LITE_HISTORY = "history_lite.json"   # written by the pipeline (also the Lua model's tables)


@dataclass
class StageArtifacts:
    files: Dict[str, Any] = field(default_factory=dict)
    models: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    stack: Dict[str, Any] = field(default_factory=dict)
    thresholds: Dict[str, float] = field(default_factory=dict)
    ensemble: Optional[StackedEnsemble] = None   # the fitted native models (not written)


def calibration_json(cal: Calibrator) -> Dict[str, Any]:
    """The stack calibrator in the manifest's JSON form (read by scoring.ensemble.Calibration)."""
    if cal.kind == "platt":
        return {"kind": "platt", "a": float(cal.params["a"][0]), "b": float(cal.params["b"][0])}
    if cal.kind == "isotonic":
        return {"kind": "isotonic", "x": [float(v) for v in cal.params["x"]],
                "y": [float(v) for v in cal.params["y"]]}
    return {"kind": "identity"}


def alert_thresholds(ens: StackedEnsemble, budget: Optional[float]) -> Dict[str, float]:
    """Alert threshold with the best F1 on the stack window (at most ``budget`` of the jobs
    flagged when given); 'high' halfway between it and 1."""
    alert = float(max_f1_threshold(ens.window_y, ens.window_pred, budget or None))
    return {"alert": alert, "high": alert + (1.0 - alert) / 2.0}


def neighbour_bank(fm: FeatureMatrix, mean: np.ndarray, std: np.ndarray, k: int,
                   window: int) -> NeighbourBank:
    """The scoring-time bank: the ``window`` most recently submitted jobs of ``fm`` whose outcome
    is known (as of the end of the data), z-scored with the trained scaler."""
    graph = SimilarityGraph(k, window)
    graph.mean, graph.std = mean, std
    return graph.bank(fm)


def sequence_table(fm: FeatureMatrix, k: int) -> SequenceTable:
    """Every user's last ``k`` ended jobs, as of the end of the data."""
    fields = JobFields.of_matrix(fm.X, fm.names, fm.cls, fm.start_time, fm.end_time, outcome_time(fm))
    return SequenceTable.build(fields, fm.user, k)


def _arrays(files: Dict[str, Any], prefix: str, arrays: Dict[str, np.ndarray]) -> list:
    names = []
    for key, arr in arrays.items():
        fname = prefix + key + ".npy"
        files[fname] = np.asarray(arr)
        names.append(fname)
    return sorted(names)


def stage_artifacts(ens: StackedEnsemble, fm: FeatureMatrix, context: Optional[StartContext],
                    budget: Optional[float] = None) -> StageArtifacts:
    """Bundle files, model specs and the stack spec of a fitted ensemble for ``fm.stage``."""
    stage = fm.stage
    out = StageArtifacts(ensemble=ens)
    history = f"history_{stage}.json"
    out.files[history] = fm.meta["history"].to_json()
    ctx = None
    if stage == "start":
        out.files[CONTEXT_FILE] = context.to_json()
        ctx = CONTEXT_FILE
    bases = []
    for base, model in ens.bases.items():
        name = f"{base}_{stage}"
        spec: Dict[str, Any] = {"file": f"{name}.onnx", "kind": base, "inputs": stage,
                                "history": history}
        if base == "lite":   # the Lua model's inputs: request + lite history tables
            spec.update(inputs="lite_history", history=LITE_HISTORY)
        elif ctx:
            spec["context"] = ctx
        out.files[spec["file"]] = model.export_onnx()
        if base in ("gbdt", "lite"):
            trees = model.dump_trees()
            spec["trees"] = f"trees_{name}.json"
            spec["n_trees"] = len(trees["trees"])
            out.files[spec["trees"]] = trees
        elif base == "gnn":
            spec["array_prefix"] = f"knn_{stage}_"
            spec["window"] = int(model.graph.window)
            bank = neighbour_bank(fm, model.graph.mean, model.graph.std, model.graph.k, model.graph.window)
            spec["arrays"] = _arrays(out.files, spec["array_prefix"], bank.to_arrays(""))
        elif base == "lstm":
            spec["array_prefix"] = f"seq_{stage}_"
            spec["arrays"] = _arrays(out.files, spec["array_prefix"], sequence_table(fm, model.k).to_arrays(""))
        out.models[name] = spec
        bases.append(name)
    names = list(ens.bases)
    out.stack = {"stage": stage, "mode": ens.mode, "bases": bases,
                 "coef": [float(v) for v in ens.coef], "intercept": float(ens.intercept),
                 "mu": [ens.mu[n] for n in names], "sd": [ens.sd[n] for n in names],
                 "raw_score_bases": [f"{n}_{stage}" for n in names
                                     if not getattr(ens.bases[n], "is_probability", True)],
                 "calibration": calibration_json(ens.calibrator),
                 "shrink_to_equal": ens.shrink, "dropped": dict(ens.dropped),
                 "stack_window": {"jobs": int(len(ens.window_y)),
                                  "failed": int(np.sum(ens.window_y == 1))}}
    if ens.mode == "fallback-weights":
        out.stack["note"] = ("too few failures in the stack window to learn weights: the original "
                             "design's fixed weights (gnn 0.4, lstm 0.35, autoencoder 0.25, with "
                             "the gbdt) are used")
    out.thresholds = alert_thresholds(ens, budget)
    return out
