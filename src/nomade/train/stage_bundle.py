"""One scoring stage's ensemble as bundle content: every base model as ONNX (plus the arrays its
runtime inputs need), the stage's history state, the start context, and the stack spec that
nomade.scoring.ensemble.StackedScorer loads (bundle format 2, docs/models.md)."""

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np

from ..evaluate.thresholds import choose_alert_threshold
from ..features.matrix import FeatureMatrix
from ..features.start import StartContext
from ..risk_scale import AlertPolicy
from .ensemble import StackedEnsemble
from .publish_gate import window_checks

CONTEXT_FILE = "start_context.json"
LITE_HISTORY = "history_lite.json"   # written by the pipeline (also the Lua model's tables)


@dataclass
class StageArtifacts:
    files: Dict[str, Any] = field(default_factory=dict)
    models: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    stack: Dict[str, Any] = field(default_factory=dict)
    thresholds: Dict[str, float] = field(default_factory=dict)
    threshold_choice: Dict[str, Any] = field(default_factory=dict)   # rule, trade-off table
    ensemble: Optional[StackedEnsemble] = None   # the fitted native models (not written)


def alert_thresholds(ens: StackedEnsemble, policy: Optional[AlertPolicy] = None) -> Dict[str, Any]:
    """The alert policy (nomade.risk_scale.AlertPolicy) on the stack window: {"alert": threshold,
    "high": halfway between it and 1 (kept for older readers)} and the choice (rule, table)."""
    policy = policy or AlertPolicy()
    choice = choose_alert_threshold(ens.window_y, ens.window_pred, policy.budget, policy.min_precision,
                                    policy.margin)
    alert = choice.threshold
    return {"alert": alert, "high": alert + (1.0 - alert) / 2.0,
            "choice": dict(choice.as_dict(), policy=policy.source)}


def _arrays(files: Dict[str, Any], prefix: str, arrays: Dict[str, np.ndarray], own: str) -> list:
    """The model's arrays (keys starting with its ``own`` prefix) as .npy files named with ``prefix``."""
    names = []
    for key, arr in arrays.items():
        fname = prefix + key[len(own):] + ".npy"
        files[fname] = np.asarray(arr)
        names.append(fname)
    return sorted(names)


def stage_artifacts(ens: StackedEnsemble, fm: FeatureMatrix, context: Optional[StartContext],
                    policy: Optional[AlertPolicy] = None) -> StageArtifacts:
    """Bundle files, model specs and the stack spec of a fitted ensemble for ``fm.stage``."""
    stage = fm.stage
    out = StageArtifacts(ensemble=ens)
    history = f"history_{stage}.json"
    out.files[history] = fm.meta["history"].to_json()
    ctx = None
    if stage == "start":
        out.files[CONTEXT_FILE] = context.to_json()
        ctx = CONTEXT_FILE
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
        elif base in ("gnn", "lstm"):   # the neighbour bank / sequence table, as of the data's end
            own = model.ARRAY_PREFIX
            spec["array_prefix"] = f"{own}{stage}_"
            if base == "gnn":
                spec["window"] = int(model.graph.window)
            spec["arrays"] = _arrays(out.files, spec["array_prefix"], model.export_arrays(math.inf), own)
        out.models[name] = spec
    out.stack = ens.stack_spec(stage)
    # what the publish gate reads: spread and ROC-AUC of the ensemble and its bases on the window
    out.stack["checks"] = window_checks(ens.window_y, ens.window_pred, ens.window_base)
    th = alert_thresholds(ens, policy)
    out.threshold_choice = th.pop("choice")
    out.thresholds = th
    return out
