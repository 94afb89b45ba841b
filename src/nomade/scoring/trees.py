"""Gradient-boosted trees as plain arrays: evaluation and exact per-feature contributions.

The trees come from LightGBM's ``dump_model()`` flattened by ``flatten_lightgbm_dump`` into the
``nomade-trees-1`` JSON form stored in bundles (``trees_<model>.json``). Semantics follow
LightGBM's numerical decision: a NaN feature goes the node's default direction when the node's
missing type is NaN, is replaced by 0.0 when it is None; then ``x <= threshold`` goes left.

Contributions use the path-based (Saabas) decomposition: every node carries the count-weighted
mean of its leaves; walking root -> leaf, each split credits (value(child) - value(node)) to its
feature. Per tree this telescopes to leaf - root, so ``bias + sum(contributions) == raw margin``
exactly (up to float rounding). It is not TreeSHAP: credit depends on the split order.

Runtime-safe: stdlib + numpy only.
"""

import math
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from ..errors import ModelError

TREES_FORMAT = "nomade-trees-1"
CHUNK = 4096
SINGLE_EXPLAIN_MAX = 16   # up to this many rows, contributions by walking each tree in Python


def _flatten_tree(root: Mapping[str, Any]) -> Dict[str, list]:
    feature: List[int] = []
    threshold: List[float] = []
    left: List[int] = []
    right: List[int] = []
    default_left: List[int] = []
    nan_to_zero: List[int] = []
    value: List[float] = []
    count: List[float] = []

    def visit(node: Mapping[str, Any]) -> int:
        i = len(feature)
        for lst, v in ((feature, -1), (threshold, 0.0), (left, -1), (right, -1), (default_left, 0),
                       (nan_to_zero, 0), (value, 0.0), (count, 0.0)):
            lst.append(v)
        if "leaf_value" in node or "split_feature" not in node:
            value[i] = float(node.get("leaf_value", 0.0))
            count[i] = float(node.get("leaf_count", 1) or 1)
            return i
        mt = node.get("missing_type", "None")
        if mt not in ("None", "NaN"):
            raise ModelError(f"tree node with missing_type {mt!r} is not supported; "
                             "train without zero_as_missing")
        if node.get("decision_type", "<=") != "<=":
            raise ModelError("categorical tree splits are not supported; encode categories as numbers")
        feature[i] = int(node["split_feature"])
        threshold[i] = float(node["threshold"])
        default_left[i] = 1 if node.get("default_left") else 0
        nan_to_zero[i] = 1 if mt == "None" else 0
        left[i] = visit(node["left_child"])
        right[i] = visit(node["right_child"])
        cl, cr = count[left[i]], count[right[i]]
        count[i] = cl + cr
        value[i] = (cl * value[left[i]] + cr * value[right[i]]) / (cl + cr) if cl + cr > 0 else 0.0
        return i

    visit(root)
    return {"feature": feature, "threshold": threshold, "left": left, "right": right,
            "default_left": default_left, "nan_to_zero": nan_to_zero, "value": value}


def flatten_lightgbm_dump(dump: Mapping[str, Any]) -> Dict[str, Any]:
    """LightGBM ``dump_model()`` -> the ``nomade-trees-1`` JSON object."""
    if dump.get("num_class", 1) != 1:
        raise ModelError("only binary/regression tree models can be flattened")
    trees = [_flatten_tree(t["tree_structure"]) for t in dump["tree_info"]]
    return {"format": TREES_FORMAT, "feature_names": list(dump["feature_names"]),
            "objective": str(dump.get("objective", "binary")).split(" ")[0], "trees": trees}


class TreeEnsemble:
    """Evaluate a ``nomade-trees-1`` model: raw margins, probabilities, contributions."""

    def __init__(self, obj: Mapping[str, Any]):
        if obj.get("format") != TREES_FORMAT:
            raise ModelError(f"tree file format {obj.get('format')!r} is not {TREES_FORMAT}; "
                             "rebuild the bundle with this nomade")
        self.feature_names = list(obj["feature_names"])
        self.trees = obj["trees"]
        sizes = [len(t["feature"]) for t in self.trees]
        self._offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        cat = {k: np.concatenate([np.asarray(t[k]) for t in self.trees]) if self.trees else np.zeros(0)
               for k in ("feature", "threshold", "left", "right", "default_left", "nan_to_zero", "value")}
        off = np.repeat(self._offset, sizes)
        self.f = cat["feature"].astype(np.int64)
        self.thr = cat["threshold"].astype(np.float64)
        self.left = np.where(cat["left"] >= 0, cat["left"] + off, -1).astype(np.int64)
        self.right = np.where(cat["right"] >= 0, cat["right"] + off, -1).astype(np.int64)
        self.dleft = cat["default_left"].astype(bool)
        self.nan0 = cat["nan_to_zero"].astype(bool)
        self.value = cat["value"].astype(np.float64)
        self.bias = float(sum(t["value"][0] for t in self.trees))
        self._py = [(t["feature"], t["threshold"], t["left"], t["right"], t["default_left"],
                     t["nan_to_zero"], t["value"]) for t in self.trees]

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def _leaves(self, X: np.ndarray) -> np.ndarray:
        """(n, n_trees) global node index of each row's leaf."""
        n = X.shape[0]
        node = np.tile(self._offset, (n, 1))
        rows = np.arange(n)[:, None]
        while True:
            f = self.f[node]
            active = f >= 0
            if not active.any():
                return node
            fx = np.where(active, f, 0)
            x = X[rows, fx]
            isnan = np.isnan(x)
            x = np.where(isnan & self.nan0[node], 0.0, x)
            go_left = np.where(np.isnan(x), self.dleft[node], x <= self.thr[node])
            nxt = np.where(go_left, self.left[node], self.right[node])
            node = np.where(active, nxt, node)

    def raw(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return np.concatenate([np.zeros(0)] + [self.value[self._leaves(X[a:a + CHUNK])].sum(axis=1)
                                               for a in range(0, X.shape[0], CHUNK)])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        r = self.raw(X)
        return 1.0 / (1.0 + np.exp(-r))

    def contributions_one(self, x: Sequence[float]) -> Tuple[float, np.ndarray]:
        """(raw margin, per-feature contributions) for one row, by walking each tree in Python
        (fast for single jobs). raw == bias + contributions.sum()."""
        contrib = [0.0] * self.n_features
        raw = 0.0
        for feat, thr, le, ri, dl, n0, val in self._py:
            i = 0
            while feat[i] >= 0:
                v = x[feat[i]]
                if v != v:
                    if n0[i]:
                        v = 0.0
                if v != v:
                    j = le[i] if dl[i] else ri[i]
                else:
                    j = le[i] if v <= thr[i] else ri[i]
                contrib[feat[i]] += val[j] - val[i]
                i = j
            raw += val[i]
        return raw, np.asarray(contrib)

    def explain(self, X: np.ndarray) -> np.ndarray:
        """(n, d) per-feature contributions: a Python walk per row for a few rows (a single job
        in a hook: no batch set-up), the vectorised path sums for batches. Same numbers."""
        X = np.asarray(X, dtype=np.float64)
        if 0 < len(X) <= SINGLE_EXPLAIN_MAX:
            return np.vstack([self.contributions_one(list(x))[1] for x in X])
        return self.contributions(X)

    def _leaf_paths(self) -> np.ndarray:
        """(total nodes, d): for each leaf, the per-feature sum of value changes on its path."""
        if getattr(self, "_paths", None) is None:
            paths = np.zeros((len(self.f), self.n_features))
            for t, off in zip(self.trees, self._offset):
                stack = [(0, np.zeros(self.n_features))]
                while stack:
                    i, acc = stack.pop()
                    f = t["feature"][i]
                    if f < 0:
                        paths[off + i] = acc
                        continue
                    for j in (t["left"][i], t["right"][i]):
                        nxt = acc.copy()
                        nxt[f] += t["value"][j] - t["value"][i]
                        stack.append((j, nxt))
            self._paths = paths
        return self._paths

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(n, d) contributions for a batch: leaves found vectorised, then each tree adds its
        leaves' precomputed path sums."""
        X = np.asarray(X, dtype=np.float64)
        out = np.zeros((X.shape[0], self.n_features))
        if X.shape[0] == 0:
            return out
        paths = self._leaf_paths()
        for a in range(0, X.shape[0], CHUNK):  # bounded memory: (CHUNK, n_trees) index arrays
            leaves = self._leaves(X[a:a + CHUNK])
            part = out[a:a + CHUNK]
            for t in range(leaves.shape[1]):
                part += paths[leaves[:, t]]
        return out


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)
