"""Score with a bundle's stacked ensemble (bundle format 2, docs/models.md): the base models'
ONNX graphs, their runtime inputs (history features, the neighbour bank, the per-user sequence
table), the stacking weights and the calibration - all read from the bundle, nothing pickled.

    risk = calibration(sigmoid(intercept + sum_m w_m * (raw_m - mu_m) / sd_m))

with raw_m = logit(p_m) for probability models (GBDT, GNN, LSTM) and log1p(err) for the
autoencoder's reconstruction error. Explanations (``contributions``) split that stacked logit:
the GBDT's term exactly into its per-feature path contributions (times w/sd), every other base's
term as one pseudo-feature named for what it measures. The base "lite" is the Lua model's trees on
the Lua model's features (request + lite history tables). Runtime-safe: stdlib, numpy,
onnxruntime.
"""

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import ModelError
from .bundle import Bundle
from .neighbours import NeighbourBank
from .sequences import SequenceTable
from .trees import TreeEnsemble

EPS = 1e-6
# what a non-tree base model's share of the stacked logit stands for, in reasons
BASE_REASONS = {"gnn": "similar_past_jobs", "lstm": "recent_job_sequence",
                "autoencoder": "unusual_request"}


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def stack_input(output: np.ndarray, is_probability: bool) -> np.ndarray:
    """What the stacker sees of a base model's output: the logit of a probability, log1p of a
    raw score (the autoencoder's reconstruction error). Training and scoring both use this."""
    if is_probability:
        return logit(output)
    return np.log1p(np.maximum(np.asarray(output, dtype=np.float64), 0.0))


def onnx_session(bundle: Bundle, name: str, threads: int = 1):
    """An onnxruntime session for one graph of the bundle. One thread by default: hooks score one
    job, and a second thread only adds wake-up latency; batch scoring may ask for more."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(bundle.read_bytes(name), sess_options=opts,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 (onnxruntime raises its own types for bad graphs)
        raise ModelError(f"bundle {bundle.path}: {name} is not a loadable ONNX graph ({exc})",
                         hint="the bundle is damaged; roll back or retrain") from None


class StageFeatures:
    """The feature rows of one stage (``submit`` or ``start``) from the bundle's history state
    (and, at start, its start context)."""

    def __init__(self, bundle: Bundle, stage: str, history_file: str, context_file: Optional[str]):
        from ..features.history import HistoryState
        from ..features.start import StartContext

        self.stage = stage
        self.history = HistoryState.from_json(bundle.read_bytes(history_file).decode())
        self.context = StartContext.from_json(bundle.json(context_file)) if context_file else None
        if stage == "start" and self.context is None:
            raise ModelError(f"bundle {bundle.path}: the start stage has no start context",
                             hint="retrain with this nomade (`nomade train`)")

    def moment(self, req: Mapping[str, Any]) -> float:
        key = "start_time" if self.stage == "start" else "submit_time"
        t = req.get(key)
        if t is None or t != t:
            t = req.get("submit_time")
        return float(t) if t is not None and t == t else 0.0

    def rows(self, requests: Sequence[Mapping[str, Any]]) -> Tuple[np.ndarray, np.ndarray]:
        """(X float64 (n, d), scoring moments (n,))."""
        X, ts = [], []
        for r in requests:
            t = self.moment(r)
            f = self.history.features_for(dict(r), t)
            if self.context is not None:
                f.extend(self.context.extras(dict(r), t))
            X.append(f)
            ts.append(t)
        return np.asarray(X, dtype=np.float64).reshape(len(requests), -1), np.asarray(ts)


class LiteRows:
    """The Lua model's feature rows (request + per-user lite history tables; request only for
    the site-independent ``lite`` inputs), for the base "lite" and for format-1 bundles."""

    def __init__(self, bundle: Bundle, history_file: str, with_history: bool = True):
        from .lite_features import LiteHistory

        self.history = LiteHistory.from_json(bundle.json(history_file))
        self.with_history = with_history

    def rows(self, requests: Sequence[Mapping[str, Any]],
             recent: Optional[Sequence[float]] = None) -> np.ndarray:
        """``recent``: submissions in the last hour per request, used where the request carries
        no ``recent_submits`` (job_submit.lua counts them; Python callers may not know)."""
        out = []
        for i, r in enumerate(requests):
            req = dict(r)
            if recent is not None and req.get("recent_submits") is None:
                req["recent_submits"] = recent[i]
            out.append(self.history.features(req, self.with_history))
        return np.asarray(out, dtype=np.float64).reshape(len(out), -1)


class BaseModel:
    """One base model of a stack: ``output(X, users, moments)`` -> its prediction."""

    KINDS = ("gbdt", "lite", "gnn", "lstm", "autoencoder")

    def __init__(self, bundle: Bundle, name: str, spec: Mapping[str, Any], threads: int = 1):
        self.name = name
        self.kind = spec["kind"]
        if self.kind not in self.KINDS:
            raise ModelError(f"bundle {bundle.path}: model {name} has unknown kind {self.kind!r}",
                             hint="upgrade nomade or retrain")
        self.session = onnx_session(bundle, spec["file"], threads)
        self.trees = TreeEnsemble(bundle.json(spec["trees"])) if self.kind in ("gbdt", "lite") else None
        self.lite = LiteRows(bundle, spec["history"]) if self.kind == "lite" else None
        arrays = {n[:-4]: bundle.array(n) for n in spec.get("arrays", [])}
        self.bank = NeighbourBank.from_arrays(arrays, spec["array_prefix"]) if self.kind == "gnn" else None
        self.table = SequenceTable.from_arrays(arrays, spec["array_prefix"]) if self.kind == "lstm" else None

    def output(self, X: np.ndarray, users: Sequence[str], moments: np.ndarray) -> np.ndarray:
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        if self.kind in ("gbdt", "lite"):
            out = self.session.run(["probability"], {"X": X32})[0][:, 0]
        elif self.kind == "gnn":
            out = self.session.run(["p"], {"X": X32, "NBR_MEAN": self.bank.aggregate(X32)})[0]
        elif self.kind == "lstm":
            seq = self.table.sequences(list(users), moments)
            out = self.session.run(["p"], {"SEQ": seq, "X": X32})[0]
        else:
            out = self.session.run(["err"], {"X": X32})[0]
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def raw(self, output: np.ndarray) -> np.ndarray:
        return stack_input(output, self.kind != "autoencoder")


class Calibration:
    """A calibration map as the manifest stores it: ``{kind: platt, a, b}`` (on the logit),
    ``{kind: isotonic, x, y}`` (knots, plus a tiny slope so that ties never erase the ranking) or
    ``{kind: identity}``. The one implementation: nomade.train.calibration fits these."""

    TIE_SLOPE = 1e-4
    KINDS = ("platt", "isotonic", "identity")

    def __init__(self, spec: Mapping[str, Any]):
        self.kind = spec.get("kind", "identity")
        if self.kind not in self.KINDS:
            raise ModelError(f"unknown calibration kind {self.kind!r}", hint="upgrade nomade or retrain")
        if self.kind == "platt":
            self.spec = {"kind": "platt", "a": float(spec["a"]), "b": float(spec["b"])}
        elif self.kind == "isotonic":
            self.spec = {"kind": "isotonic", "x": [float(v) for v in spec["x"]],
                         "y": [float(v) for v in spec["y"]]}
        else:
            self.spec = {"kind": "identity"}
        self._xy = (np.asarray(self.spec["x"]), np.asarray(self.spec["y"])) if self.kind == "isotonic" else None

    def to_json(self) -> Dict[str, Any]:
        return dict(self.spec)

    def __call__(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        if self.kind == "platt":
            z = self.spec["a"] * logit(p) + self.spec["b"]
            return 1 / (1 + np.exp(-np.clip(z, -35, 35)))
        if self.kind == "isotonic":
            return (1 - self.TIE_SLOPE) * np.interp(p, *self._xy) + self.TIE_SLOPE * p
        return p


class StackEval:
    """One batch through a stack: the stage's feature rows, each base's own input rows and its
    term of the stacked logit."""

    def __init__(self, X: np.ndarray, inputs: List[np.ndarray], terms: np.ndarray):
        self.X, self.inputs, self.terms = X, inputs, terms


class StackedScorer:
    """One stage's ensemble, loaded from the manifest's ``ensemble.stacks[name]``."""

    def __init__(self, bundle: Bundle, name: str, spec: Mapping[str, Any], threads: int = 1):
        self.name = name
        self.stage = spec["stage"]
        self.mode = spec.get("mode", "stacked")
        self.base_names = list(spec["bases"])
        models = bundle.models
        for b in self.base_names:
            if b not in models:
                raise ModelError(f"bundle {bundle.path}: stack {name} names base model {b!r} "
                                 "that the bundle does not have", hint="retrain the model")
        self.bases = [BaseModel(bundle, b, models[b], threads) for b in self.base_names]
        own = [models[b] for b in self.base_names if models[b]["kind"] != "lite"]
        if not own:
            raise ModelError(f"bundle {bundle.path}: stack {name} has no model on the {self.stage} "
                             "features", hint="retrain with a gbdt, gnn, lstm or autoencoder base")
        self.features = StageFeatures(bundle, self.stage, own[0]["history"], own[0].get("context"))
        self.coef = np.asarray(spec["coef"], dtype=np.float64)
        self.intercept = float(spec["intercept"])
        self.mu = np.asarray(spec["mu"], dtype=np.float64)
        self.sd = np.asarray(spec["sd"], dtype=np.float64)
        self.calibration = Calibration(spec["calibration"])
        if not (len(self.coef) == len(self.mu) == len(self.sd) == len(self.bases)):
            raise ModelError(f"bundle {bundle.path}: stack {name} has {len(self.bases)} bases but "
                             f"{len(self.coef)} weights", hint="retrain the model")

    def evaluate(self, requests: Sequence[Mapping[str, Any]]) -> StackEval:
        X, moments = self.features.rows(requests)
        users = [r.get("user") or "" for r in requests]
        inputs, cols = [], []
        recent = None
        for b in self.bases:
            if b.kind == "lite":
                if recent is None:   # submissions in the last hour, as far as the bundle knows
                    recent = [self.features.history.submissions(u, float(t))[0]
                              for u, t in zip(users, moments)]
                xb = b.lite.rows(requests, recent)
            else:
                xb = X
            inputs.append(xb)
            cols.append(b.raw(b.output(xb, users, moments)))
        Z = (np.stack(cols, axis=1) - self.mu) / self.sd
        return StackEval(X, inputs, Z * self.coef)

    def risk(self, ev: StackEval) -> np.ndarray:
        z = ev.terms.sum(axis=1) + self.intercept
        return self.calibration(1 / (1 + np.exp(-np.clip(z, -35, 35))))

    def contributions(self, ev: StackEval) -> Tuple[List[str], np.ndarray, np.ndarray]:
        """Reason names, (n, r) contributions to the stacked logit and (n, r) the values they
        stand for: each tree model's term split into its per-feature path contributions (exact:
        they sum to its margin minus the trees' bias; scaled by w/sd), every other base's term
        as one pseudo-feature (its value: NaN - a model output is not a feature value). The same
        feature in two tree models (gbdt and lite) appears once, with the summed contribution."""
        n = len(ev.X)
        names: List[str] = []
        index: Dict[str, int] = {}
        parts: List[Tuple[int, np.ndarray, np.ndarray]] = []
        for j, b in enumerate(self.bases):
            if b.trees is not None:
                xb = ev.inputs[j]
                c = b.trees.explain(xb) * (self.coef[j] / self.sd[j])
                cols, vals = c.T, xb.T
                feats = b.trees.feature_names
            else:
                cols, vals = ev.terms[:, j][None, :], np.full((1, n), np.nan)
                feats = [BASE_REASONS.get(b.kind, b.kind)]
            for f, cc, vv in zip(feats, cols, vals):
                if f not in index:
                    index[f] = len(names)
                    names.append(f)
                parts.append((index[f], cc, vv))
        contrib = np.zeros((n, len(names)))
        values = np.full((n, len(names)), np.nan)
        for i, cc, vv in parts:
            contrib[:, i] += cc
            values[:, i] = np.where(np.isnan(values[:, i]), vv, values[:, i])
        return names, contrib, values


def stack_specs(manifest: Mapping[str, Any]) -> Dict[str, Mapping[str, Any]]:
    return dict(manifest.get("ensemble", {}).get("stacks", {}))


def describe(manifest: Mapping[str, Any]) -> str:
    """One line on what the bundle's ensemble is (for reports and `nomade models list`)."""
    stacks = stack_specs(manifest)
    if not stacks:
        return "single model"
    return "; ".join(f"{n}: {s['single_base']['base']} alone (the ensemble did not beat it)"
                     if s.get("single_base") else
                     f"{n}: {s.get('mode')} over {', '.join(s['bases'])} ({s['calibration'].get('kind')})"
                     for n, s in stacks.items())

