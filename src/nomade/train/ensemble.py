"""The ensemble: base models stacked by a logistic regression learned on a LATER time window than
the base models' training data, then calibrated.

fit(train):
  1. cut the labelled training rows by submit time: the first (1 - stack_frac) is the base-fit
     part A (only jobs whose outcome was known before the cut), the rest the stack window B;
  2. fit every base model on A, predict B;
  3. on B: logistic regression on the standardised base outputs (probabilities -> logit; raw
     scores such as reconstruction error -> log1p) with a ridge penalty that pulls the weights
     toward EQUAL weights (``STACK_SHRINK`` per row) = mode "stacked". On the shared traces,
     freely learned weights chased the stack window's quirks and lost to equal weights in the
     following window (docs/evaluation.md, "Stacking"); the shrunk weights keep what B says
     firmly and no more. With fewer than ``min_stack_pos`` positives (or negatives) in B: the
     original design's fixed weights (gnn 0.4, lstm 0.35, autoencoder 0.25 share half of the
     weight, gbdt the other half; renormalised over the models present) = "fallback-weights";
  4. calibration of the stacked output on B: Platt by default (``calibration="auto"`` chooses
     Platt or isotonic by Brier score on B's second half);
  5. with ``refit_bases`` the base models are refitted on A + B for prediction.
"""

from typing import Dict, List, Optional

import numpy as np

from ..errors import ModelError
from ..features.matrix import FeatureMatrix
from .base import TrainedModel
from ..scoring.ensemble import Calibration, stack_input
from .calibration import choose_calibrator, fit_iso, fit_logistic, fit_platt, identity

FALLBACK_NEURAL = {"gnn": 0.4, "lstm": 0.35, "autoencoder": 0.25}
MIN_STACK_POSITIVES = 200
ROW_META = ("outcome_time", "lite_X")   # per-row arrays in FeatureMatrix.meta, subset with the rows
STACK_SHRINK = 1.0     # ridge strength (per row) toward equal stacking weights
CALIBRATIONS = ("platt", "isotonic", "auto")


def subset(fm: FeatureMatrix, idx: np.ndarray) -> FeatureMatrix:
    """fm.rows(idx) that also subsets the per-row arrays kept in meta."""
    sub = fm.rows(idx)
    for key in ROW_META:
        if key in fm.meta and np.shape(fm.meta[key])[:1] == (len(fm),):
            sub.meta[key] = np.asarray(fm.meta[key])[idx]
    return sub


def time_cut(fm: FeatureMatrix, frac_after: float):
    """(A rows, B rows, cut time): labelled rows split by submit time; A keeps only jobs whose
    outcome was known before the cut."""
    lab = np.flatnonzero(fm.y >= 0)
    if len(lab) < 50:
        raise ModelError(f"only {len(lab)} labelled jobs to train on; ingest more history")
    cut = float(np.quantile(fm.submit_time[lab], 1.0 - frac_after))
    known = fm.outcome_time()
    a = lab[(fm.submit_time[lab] < cut) & (known[lab] < cut)]
    b = lab[fm.submit_time[lab] >= cut]
    return a, b, cut


class StackedEnsemble(TrainedModel):
    name = "ensemble"

    def __init__(self, bases: Dict[str, TrainedModel], stack_frac: float = 0.3,
                 min_stack_pos: int = MIN_STACK_POSITIVES, refit_bases: bool = True,
                 shrink: float = STACK_SHRINK, calibration: str = "platt"):
        if calibration not in CALIBRATIONS:
            raise ModelError(f"unknown calibration {calibration!r}; use one of {', '.join(CALIBRATIONS)}")
        self.shrink = shrink
        self.calibration = calibration
        self.bases = dict(bases)
        self.stack_frac = stack_frac
        self.min_stack_pos = min_stack_pos
        self.refit_bases = refit_bases
        self.mode = "stacked"
        self.coef = np.zeros(0)
        self.intercept = 0.0
        self.mu: Dict[str, float] = {}
        self.sd: Dict[str, float] = {}
        self.calibrator = identity()
        self.dropped: Dict[str, str] = {}
        self.window_pred: Optional[np.ndarray] = None   # calibrated outputs on the stack window
        self.window_y: Optional[np.ndarray] = None
        self.window_base: Dict[str, np.ndarray] = {}   # base outputs on the stack window

    # ---------------------------------------------------------------- transforms
    def _raw(self, name: str, p: np.ndarray) -> np.ndarray:
        return stack_input(p, getattr(self.bases[name], "is_probability", True))

    def _design(self, outs: Dict[str, np.ndarray]) -> np.ndarray:
        cols = [(self._raw(n, outs[n]) - self.mu[n]) / self.sd[n] for n in self.bases]
        return np.stack(cols, axis=1)

    def _fallback_weights(self) -> np.ndarray:
        neural = {n: w for n, w in FALLBACK_NEURAL.items() if n in self.bases}
        others = [n for n in self.bases if n not in neural]
        w = {}
        total_n = sum(neural.values())
        for n in neural:
            w[n] = (0.5 if others else 1.0) * neural[n] / total_n
        for n in others:
            w[n] = (0.5 if neural else 1.0) / len(others)
        return np.array([w[n] for n in self.bases])

    # ---------------------------------------------------------------- fit / predict
    def fit(self, train: FeatureMatrix, seed: int = 7) -> "StackedEnsemble":
        a, b, _ = time_cut(train, self.stack_frac)
        fa, fb = subset(train, a), subset(train, b)
        outs: Dict[str, np.ndarray] = {}
        for name in list(self.bases):
            try:
                self.bases[name].fit(fa, seed)
                outs[name] = self.bases[name].predict(fb)
            except ModelError as exc:
                self.dropped[name] = str(exc)
                del self.bases[name]
        if not self.bases:
            raise ModelError("no base model could be trained: " + "; ".join(self.dropped.values()))
        for n in self.bases:
            r = self._raw(n, outs[n])
            self.mu[n], self.sd[n] = float(np.mean(r)), float(np.std(r) or 1.0)
        Z = self._design(outs)
        y = fb.y.astype(np.int64)
        equal = np.full(len(self.bases), 1.0 / len(self.bases))
        if y.sum() >= self.min_stack_pos and (y == 0).sum() >= self.min_stack_pos:
            self.mode = "stacked"
            self.coef, self.intercept = fit_logistic(Z, y, l2=self.shrink, prior=equal)
        else:
            self.mode = "fallback-weights"
            self.coef, self.intercept = self._fallback_weights(), 0.0
        z = Z @ self.coef + self.intercept
        p = 1 / (1 + np.exp(-np.clip(z, -35, 35)))
        self.calibrator = self._calibrate(p, y)
        self.window_pred, self.window_y = self.calibrator(p), y
        self.window_base = outs
        if self.refit_bases:
            full = subset(train, np.flatnonzero(train.y >= 0))
            for name in self.bases:
                self.bases[name].fit(full, seed)
        return self

    def _calibrate(self, p: np.ndarray, y: np.ndarray) -> Calibration:
        if y.sum() < 5 or (y == 0).sum() < 5:
            return identity()
        if self.calibration == "auto":
            return choose_calibrator(p, y)
        return fit_platt(p, y) if self.calibration == "platt" else fit_iso(p, y)

    def base_outputs(self, fm: FeatureMatrix) -> Dict[str, np.ndarray]:
        return {n: m.predict(fm) for n, m in self.bases.items()}

    def combine(self, outs: Dict[str, np.ndarray]) -> np.ndarray:
        z = self._design(outs) @ self.coef + self.intercept
        return self.calibrator(1 / (1 + np.exp(-np.clip(z, -35, 35))))

    def predict(self, fm: FeatureMatrix) -> np.ndarray:
        return self.combine(self.base_outputs(fm))

    # ---------------------------------------------------------------- artifacts
    def stack_spec(self, stage: str) -> Dict[str, object]:
        """The manifest's ``ensemble.stacks.ensemble_<stage>`` (what scoring.ensemble loads);
        base model names carry the stage suffix, as in the bundle."""
        names = list(self.bases)
        spec: Dict[str, object] = {
            "stage": stage, "mode": self.mode, "bases": [f"{n}_{stage}" for n in names],
            "coef": [float(v) for v in self.coef], "intercept": float(self.intercept),
            "mu": [self.mu[n] for n in names], "sd": [self.sd[n] for n in names],
            "raw_score_bases": [f"{n}_{stage}" for n in names
                                if not getattr(self.bases[n], "is_probability", True)],
            "calibration": self.calibrator.to_json(), "shrink_to_equal": self.shrink,
            "dropped": dict(self.dropped),
            "stack_window": {"jobs": int(len(self.window_y)), "failed": int(np.sum(self.window_y == 1))}}
        if self.mode == "fallback-weights":
            spec["note"] = ("too few failures in the stack window to learn weights: the original "
                            "design's fixed weights (gnn 0.4, lstm 0.35, autoencoder 0.25, with the "
                            "tree models) are used")
        return spec

    def manifest(self) -> Dict[str, object]:
        return {"mode": self.mode, "bases": list(self.bases),
                "raw_score_bases": [n for n, m in self.bases.items()
                                    if not getattr(m, "is_probability", True)],
                "weights": {n: float(w) for n, w in zip(self.bases, self.coef)},
                "intercept": float(self.intercept), "calibration": self.calibrator.kind,
                "shrink_to_equal": self.shrink,
                "min_stack_positives": self.min_stack_pos, "dropped": self.dropped}


def _gbdt(threads: int) -> TrainedModel:
    from .models.gbdt import GBDTModel
    return GBDTModel(params={"num_threads": threads})


def _lite(threads: int) -> TrainedModel:
    """The Lua model's features and trees, uncalibrated (reads fm.meta['lite_X'])."""
    from ..scoring.lite_features import lite_names
    from .lite_model import LiteGBDT
    return LiteGBDT(lite_names(True), threads=threads, calibrated=False)


def _gnn(threads: int) -> TrainedModel:
    from .models.gnn import SimilarityGNN
    return SimilarityGNN()


def _lstm(threads: int) -> TrainedModel:
    from .models.lstm import SequenceLSTM
    return SequenceLSTM()


def _autoencoder(threads: int) -> TrainedModel:
    from .models.autoencoder import Autoencoder
    return Autoencoder()


BASE_FACTORIES = {"gbdt": _gbdt, "lite": _lite, "gnn": _gnn, "lstm": _lstm, "autoencoder": _autoencoder}
DEFAULT_BASES = tuple(BASE_FACTORIES)


def default_bases(names: Optional[List[str]] = None, threads: int = 1) -> Dict[str, TrainedModel]:
    """Fresh base models by name (default all of ``DEFAULT_BASES``). ``threads``: LightGBM
    threads of the tree models (1 is fastest on a busy 2-core machine: OpenMP spin-waits)."""
    out: Dict[str, TrainedModel] = {}
    for name in names or DEFAULT_BASES:
        if name not in BASE_FACTORIES:
            raise ModelError(f"unknown base model {name!r}; use some of {', '.join(BASE_FACTORIES)}")
        out[name] = BASE_FACTORIES[name](threads)
    return out
