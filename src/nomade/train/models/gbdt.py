"""The gradient-boosted tree model (LightGBM) on the tabular submit/start features.

Deterministic (fixed seed, deterministic=True, 2 threads, no bagging). Categorical columns are
fed as plain numeric codes (no LightGBM categorical splits), so the trees are ordinary
``x <= threshold`` splits that ONNX, numpy (nomade.scoring.trees) and Lua evaluate identically.
Class imbalance: ``scale_pos_weight = sqrt(neg/pos)``; probabilities are calibrated later (the
ensemble's calibration, or the Lua path's isotonic map).

ONNX export is our own graph (ai.onnx.ml TreeEnsembleRegressor + Sigmoid) built from the dumped
trees: thresholds are rounded DOWN to float32 so that for float32 inputs ``x <= t32`` is exactly
``x <= t`` (native LightGBM compares in double), and features whose splits use missing type None
get NaN -> 0 before the trees, as LightGBM does.
"""

from typing import Any, Dict, Optional

import numpy as np

from ...errors import ModelError
from ...features.matrix import FeatureMatrix
from ...scoring.trees import flatten_lightgbm_dump
from ..base import TrainedModel

DEFAULT_PARAMS: Dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 200,
    "feature_fraction": 0.8,
    "lambda_l2": 1.0,
    "max_bin": 127,
    "num_threads": 2,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
DEFAULT_ROUNDS = 200
# Past-failure features whose effect is constrained to be non-decreasing: more past failures never
# lower the risk. On LLNL Atlas this lifted the temporal-test PR-AUC of the lite model from 0.630
# to 0.642 (the unconstrained trees learn wiggles that do not carry over to the next window).
MONOTONE_UP = frozenset({
    "user_fail_rate", "name_fail_rate", "user_last_failed", "name_last_failed", "user_fail_streak",
    "name_fail_streak",                                                   # lite schema
    "u_fail_rate", "u_rate_failed", "u_rate_timeout", "u_rate_oom", "u_rate_system", "u_last_fail",
    "u_fail_streak", "n_fail_rate", "n_last_fail", "n_fail_streak",      # full submit schema
})


class GBDTModel(TrainedModel):
    is_probability = True

    def __init__(self, name: str = "gbdt", rounds: int = DEFAULT_ROUNDS,
                 params: Optional[Dict[str, Any]] = None):
        self.name = name
        self.rounds = rounds
        self.params = dict(DEFAULT_PARAMS, **(params or {}))
        self.booster = None
        self.feature_names = []

    def fit_arrays(self, X: np.ndarray, y: np.ndarray, names, seed: int = 7) -> "GBDTModel":
        import lightgbm as lgb

        mask = (y == 0) | (y == 1)
        X, y = np.asarray(X, dtype=np.float32)[mask], np.asarray(y)[mask].astype(np.float64)
        if len(y) == 0 or y.min() == y.max():
            raise ModelError(f"{self.name}: training data has only one outcome class; "
                             "train on a longer window")
        pos = float(y.sum())
        params = dict(self.params, seed=seed, scale_pos_weight=float(np.sqrt((len(y) - pos) / pos)))
        self.feature_names = [str(n) for n in names]
        mono = [1 if n in MONOTONE_UP else 0 for n in self.feature_names]
        if any(mono) and "monotone_constraints" not in params:
            params["monotone_constraints"] = mono
        ds = lgb.Dataset(X, label=y, feature_name=self.feature_names, free_raw_data=True,
                         params={"max_bin": params["max_bin"], "verbosity": -1})
        self.booster = lgb.train(params, ds, num_boost_round=self.rounds)
        return self

    def fit(self, train: FeatureMatrix, seed: int = 7) -> "GBDTModel":
        return self.fit_arrays(train.X, train.y, train.names, seed)

    def predict_arrays(self, X: np.ndarray) -> np.ndarray:
        if self.booster is None:
            raise ModelError(f"{self.name}: predict before fit")
        return np.asarray(self.booster.predict(np.asarray(X, dtype=np.float32)), dtype=np.float64)

    def predict(self, fm: FeatureMatrix) -> np.ndarray:
        return self.predict_arrays(fm.X)

    def dump_trees(self) -> Dict[str, Any]:
        """The trees in nomade's ``nomade-trees-1`` JSON form."""
        return flatten_lightgbm_dump(self.booster.dump_model())

    def export_onnx(self) -> bytes:
        return trees_to_onnx(self.dump_trees(), self.name)


def _floor_f32(t: float) -> float:
    big = float(np.finfo(np.float32).max)
    if t >= big:
        return big
    if t < -big:
        return float("-inf")
    f = np.float32(t)
    if float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    return float(f)


def trees_to_onnx(trees: Dict[str, Any], name: str = "gbdt") -> bytes:
    """ONNX graph: X float32 (N, d) -> raw (N, 1) and probability (N, 1)."""
    from onnx import TensorProto, helper

    d = len(trees["feature_names"])
    att: Dict[str, list] = {k: [] for k in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
        "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true",
        "target_treeids", "target_nodeids", "target_ids", "target_weights")}
    nan_zero = np.zeros(d, dtype=bool)
    nan_kinds: Dict[int, set] = {}
    for ti, t in enumerate(trees["trees"]):
        for i, f in enumerate(t["feature"]):
            att["nodes_treeids"].append(ti)
            att["nodes_nodeids"].append(i)
            if f < 0:
                att["nodes_featureids"].append(0)
                att["nodes_values"].append(0.0)
                att["nodes_modes"].append("LEAF")
                att["nodes_truenodeids"].append(0)
                att["nodes_falsenodeids"].append(0)
                att["nodes_missing_value_tracks_true"].append(0)
                att["target_treeids"].append(ti)
                att["target_nodeids"].append(i)
                att["target_ids"].append(0)
                att["target_weights"].append(float(t["value"][i]))
                continue
            nan_kinds.setdefault(f, set()).add(t["nan_to_zero"][i])
            att["nodes_featureids"].append(int(f))
            att["nodes_values"].append(_floor_f32(t["threshold"][i]))
            att["nodes_modes"].append("BRANCH_LEQ")
            att["nodes_truenodeids"].append(int(t["left"][i]))
            att["nodes_falsenodeids"].append(int(t["right"][i]))
            att["nodes_missing_value_tracks_true"].append(int(t["default_left"][i]))
    for f, kinds in nan_kinds.items():
        if len(kinds) > 1:
            raise ModelError(f"{name}: feature {trees['feature_names'][f]} mixes missing-value "
                             "rules across splits; cannot export to ONNX")
        nan_zero[f] = 1 in kinds
    mask = helper.make_tensor("nan_zero_mask", TensorProto.BOOL, [d], nan_zero.tolist())
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    nodes = [
        helper.make_node("IsNaN", ["X"], ["isnan"]),
        helper.make_node("And", ["isnan", "nan_zero_mask"], ["to_zero"]),
        helper.make_node("Where", ["to_zero", "zero", "X"], ["Xc"]),
        helper.make_node("TreeEnsembleRegressor", ["Xc"], ["raw"], domain="ai.onnx.ml",
                         n_targets=1, aggregate_function="SUM", post_transform="NONE", **att),
        helper.make_node("Sigmoid", ["raw"], ["probability"]),
    ]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, d])],
        [helper.make_tensor_value_info("raw", TensorProto.FLOAT, [None, 1]),
         helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None, 1])],
        initializer=[mask, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("ai.onnx.ml", 1)],
                              producer_name="nomade")
    model.ir_version = 8
    model.metadata_props.add(key="feature_names", value=",".join(trees["feature_names"]))
    return model.SerializeToString()
