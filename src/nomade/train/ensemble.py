"""The ensemble: base models stacked by a logistic regression learned on a LATER time window than
the base models' training data, then calibrated.

fit(train):
  1. cut the labelled training rows by submit time: the first (1 - stack_frac) is the base-fit
     part A (only jobs whose outcome was known before the cut), the rest the stack window B;
  2. fit every base model on A, predict B;
  3. on B: logistic regression on the standardised base outputs (probabilities -> logit; raw
     scores such as reconstruction error -> log1p) with NON-NEGATIVE weights and an L1 penalty
     (linear on non-negative weights: it sets weak weights to exactly 0) plus a small ridge, =
     mode "stacked". The penalty's strength is chosen by time-ordered validation on B (B in
     ``VAL_CHUNKS`` time slices: fit on the earlier ones, log-loss on the next, averaged); then
     bases are removed one at a time while removing one does not worsen that validated log-loss
     by more than ``DROP_SE`` standard errors of the per-row difference (and ``DROP_TOL``): a base
     that does not help gets weight 0 (``zeroed``). With
     fewer than ``min_stack_pos`` positives (or negatives) in B: the original design's fixed
     weights (gnn 0.4, lstm 0.35, autoencoder 0.25 share half of the weight, gbdt the other half;
     renormalised over the models present) = "fallback-weights";
  4. calibration of the stacked output on B: Platt by default (``calibration="auto"`` chooses
     Platt or isotonic by Brier score on B's second half);
  5. with ``refit_bases`` the base models are refitted on A + B for prediction.

``use_single(name, why)`` turns a fitted ensemble into one base alone (weight 1 on it, 0 on the
others, recalibrated on B) = mode "single-base": what the publish gate chooses when the ensemble
does not beat its best base on the most recent window (nomade.train.publish_gate.choose_primary).
"""

from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..errors import ModelError
from ..features.matrix import FeatureMatrix
from .base import TrainedModel
from ..scoring.ensemble import Calibration, stack_input
from .calibration import choose_calibrator, fit_iso, fit_logistic, fit_platt, identity

FALLBACK_NEURAL = {"gnn": 0.4, "lstm": 0.35, "autoencoder": 0.25}
MIN_STACK_POSITIVES = 200
ROW_META = ("outcome_time", "lite_X")   # per-row arrays in FeatureMatrix.meta, subset with the rows
STRENGTHS = (0.0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2)   # L1 strengths (per row) tried by validation
RIDGE = 1e-4           # a small fixed ridge (per row) keeps the fit unique
VAL_CHUNKS = 4         # time slices of the stack window for the validation
DROP_TOL = 1e-4        # a base must lower the validated log-loss by more than this ...
DROP_SE = 2.0          # ... and by more than this many standard errors of the per-row difference
MIX = (0.0, 0.25, 0.5, 0.75, 1.0)   # fitted-weight shares tried against equal weights
CALIBRATIONS = ("platt", "isotonic", "auto")


def fit_nonneg_logistic(Z: np.ndarray, y: np.ndarray, l1: float, l2: float = RIDGE):
    """Logistic regression with weights >= 0 (the intercept free), minimising the mean log-loss
    + ``l1`` * sum(w) + ``l2`` * |w|^2 (L-BFGS-B). Returns (coef, intercept)."""
    from scipy.optimize import minimize

    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = Z.shape
    prior = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))

    def loss(theta):
        w, b = theta[:d], theta[d]
        z = Z @ w + b
        # log(1 + e^z) - y z, stable
        ll = np.logaddexp(0.0, z) - y * z
        p = np.exp(-np.logaddexp(0.0, -z))
        g = np.empty(d + 1)
        r = (p - y) / n
        g[:d] = Z.T @ r + l1 + 2 * l2 * w
        g[d] = r.sum()
        return float(ll.mean() + l1 * w.sum() + l2 * (w @ w)), g

    x0 = np.concatenate([np.full(d, 0.1), [np.log(prior / (1 - prior))]])
    res = minimize(loss, x0, jac=True, method="L-BFGS-B",
                   bounds=[(0.0, None)] * d + [(None, None)], options={"maxiter": 500})
    w = np.where(res.x[:d] < 1e-10, 0.0, res.x[:d])
    return w, float(res.x[d])


def _row_losses(y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z) - y * z


def validated_losses(Z: np.ndarray, y: np.ndarray, cols: List[int], l1: float,
                     chunks: int = VAL_CHUNKS) -> np.ndarray:
    """Per-row log-loss of the stack on ``cols`` fitted on the earlier time slices of (Z, y)
    (rows in time order) and scored on the next one, for every slice that can be judged."""
    out = []
    for tr, va in _time_slices(y, chunks):
        w, b = fit_nonneg_logistic(Z[tr][:, cols], y[tr], l1)
        out.append(_row_losses(y[va], Z[va][:, cols] @ w + b))
    return np.concatenate(out) if out else np.full(1, np.inf)


def _time_slices(y: np.ndarray, chunks: int) -> Iterator[Tuple[slice, slice]]:
    """(earlier rows, next slice) for each of ``chunks`` time slices after the first that can be
    judged (the earlier rows hold both classes, the slice is not empty)."""
    edges = np.linspace(0, len(y), chunks + 1).astype(int)
    for k in range(1, chunks):
        tr, va = slice(0, edges[k]), slice(edges[k], edges[k + 1])
        if len(set(y[tr].tolist())) >= 2 and edges[k + 1] > edges[k]:
            yield tr, va


def _helps(without: np.ndarray, with_: np.ndarray) -> bool:
    """Does a base lower the validated log-loss by more than ``DROP_SE`` standard errors of the
    per-row difference (and by more than ``DROP_TOL``)?"""
    d = without - with_
    if not np.all(np.isfinite(d)):
        return bool(np.mean(with_) < np.mean(without))
    se = float(np.std(d) / np.sqrt(len(d))) if len(d) > 1 else 0.0
    return float(np.mean(d)) > max(DROP_TOL, DROP_SE * se)


def choose_stack(Z: np.ndarray, y: np.ndarray) -> Dict[str, object]:
    """The L1 strength and the bases kept, both by time-ordered validation on the stack window
    (rows in time order); then the weights fitted on the whole window. Returns coef (zeros for
    the bases left out), intercept, strength, the validated log-loss per strength and of the
    kept set."""
    d = Z.shape[1]
    everyone = list(range(d))
    losses = {l1: float(np.mean(validated_losses(Z, y, everyone, l1))) for l1 in STRENGTHS}
    l1 = min(STRENGTHS, key=lambda v: (losses[v], -v))   # ties: the stronger penalty
    kept = everyone
    cur = validated_losses(Z, y, kept, l1)
    while len(kept) > 1:   # drop the base whose removal costs least, while it does not help
        trials = []
        for j in kept:
            rest = [c for c in kept if c != j]
            trials.append((float(np.mean(validated_losses(Z, y, rest, l1))), j, rest))
        _, j, rest = min(trials, key=lambda t: t[0])
        without = validated_losses(Z, y, rest, l1)
        if _helps(without, cur):
            break
        kept, cur = rest, without
    # how far to trust the fitted weights: directions between them (alpha 1) and equal weights
    # over the skilled bases (alpha 0), each judged out of time with a rescale learned on the
    # earlier slices; the one-standard-error rule: the most equal mix whose validated log-loss is
    # within one standard error (of the per-row difference) of the best
    prior = rescaled_losses(Z, y, lambda Zt, yt: np.zeros(d))
    skilled = [j for j in everyone if j in kept or _helps(prior, validated_losses(Z, y, [j], 0.0))]
    rows = {a: rescaled_losses(Z, y, _mixed_direction(kept, l1, a, skilled)) for a in MIX}
    mixed = {a: float(np.mean(v)) for a, v in rows.items()}
    best = min(MIX, key=lambda a: (mixed[a], a))
    alpha = next(a for a in MIX if a == best or _within_one_se(rows[a], rows[best]))
    w, b = fit_nonneg_logistic(Z[:, kept], y, l1)
    coef = np.zeros(d)
    coef[kept] = w
    if not np.any(coef > 0):   # nothing positive: the best single base, unpenalised
        j = min(everyone, key=lambda c: float(np.mean(validated_losses(Z, y, [c], 0.0))))
        w, b = fit_nonneg_logistic(Z[:, [j]], y, 0.0)
        coef = np.zeros(d)
        coef[j] = max(float(w[0]), 1e-6)
        alpha = 1.0            # no base helped: nothing to mix
    if alpha < 1.0:
        u = _mix(coef, alpha, skilled)
        scale, b_mix = fit_logistic((Z @ u)[:, None], y, l2=1e-9)
        if float(scale[0]) > 0:
            coef, b = u * float(scale[0]), b_mix
        else:                  # the mixed direction ranks backwards here: keep the fitted weights
            alpha = 1.0
    return {"coef": coef, "intercept": b, "strength": l1, "alpha": alpha,
            "validated_log_loss": float(mixed[alpha]),
            "mix_validation": {f"{a:g}": round(v, 6) if np.isfinite(v) else None for a, v in mixed.items()},
            "validation": {f"{k:g}": (round(v, 6) if np.isfinite(v) else None) for k, v in losses.items()}}


def _within_one_se(loss: np.ndarray, best: np.ndarray) -> bool:
    d = loss - best
    if len(d) < 2 or not np.all(np.isfinite(d)):
        return False
    return float(np.mean(d)) <= float(np.std(d) / np.sqrt(len(d)))


def _mix(fitted: np.ndarray, alpha: float, skilled: List[int]) -> np.ndarray:
    """alpha * the fitted weights (summing to 1) + (1 - alpha) * equal weights over the
    ``skilled`` bases (those kept, and those that alone beat the base rate out of time: a base
    that knows nothing never gets weight from the mix)."""
    equal = np.zeros(len(fitted))
    equal[skilled] = 1.0 / len(skilled)
    total = float(np.sum(fitted))
    unit = fitted / total if total > 0 else equal
    return alpha * unit + (1.0 - alpha) * equal


def _mixed_direction(cols: List[int], l1: float, alpha: float, skilled: List[int]):
    def direction(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _mix(_nonneg_direction(Z, y, cols, l1), alpha, skilled)
    return direction


def _nonneg_direction(Z: np.ndarray, y: np.ndarray, cols: List[int], l1: float) -> np.ndarray:
    w, _ = fit_nonneg_logistic(Z[:, cols], y, l1)
    u = np.zeros(Z.shape[1])
    u[cols] = w
    return u


def rescaled_losses(Z: np.ndarray, y: np.ndarray, direction, chunks: int = VAL_CHUNKS) -> np.ndarray:
    """Per-row log-loss, slice by slice in time order, of the weights ``direction(Z, y)`` fitted
    on the earlier slices, rescaled (scale and intercept of a one-column logistic regression on
    the earlier slices, as the calibration later does) and scored on the next slice."""
    out = []
    for tr, va in _time_slices(y, chunks):
        u = direction(Z[tr], y[tr])
        if not np.any(u != 0):
            out.append(_row_losses(y[va], np.full(len(y[va]), _logit(float(y[tr].mean())))))
            continue
        s, b = fit_logistic((Z[tr] @ u)[:, None], y[tr], l2=1e-9)
        out.append(_row_losses(y[va], (Z[va] @ u) * s[0] + b))
    return np.concatenate(out) if out else np.full(1, np.inf)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


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
                 calibration: str = "platt"):
        if calibration not in CALIBRATIONS:
            raise ModelError(f"unknown calibration {calibration!r}; use one of {', '.join(CALIBRATIONS)}")
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
        self.selection: Dict[str, object] = {}   # strength, validation and zeroed bases (stacked)
        self.single: Dict[str, str] = {}   # use_single: the base published alone and why

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
        if y.sum() >= self.min_stack_pos and (y == 0).sum() >= self.min_stack_pos:
            self.mode = "stacked"
            order = np.argsort(fb.submit_time, kind="stable")   # the validation is time-ordered
            pick = choose_stack(Z[order], y[order])
            self.coef, self.intercept = np.asarray(pick["coef"]), float(pick["intercept"])
            names = list(self.bases)
            self.selection = {"alpha": pick["alpha"], "mix_validation": pick["mix_validation"],
                              "strength": pick["strength"],
                              "validation": pick["validation"],
                              "validated_log_loss": round(float(pick["validated_log_loss"]), 6),
                              "zeroed": [n for n, w in zip(names, self.coef) if w <= 0]}
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

    def use_single(self, name: str, why: str) -> "StackedEnsemble":
        """Publish the base ``name`` alone: weight 1 on its standardised output, 0 on the other
        bases, recalibrated on the stack window (mode "single-base")."""
        names = list(self.bases)
        if name not in names:
            raise ModelError(f"no base {name!r} in this ensemble ({', '.join(names)})")
        coef = np.zeros(len(names))
        coef[names.index(name)] = 1.0
        self.coef, self.intercept, self.mode = coef, 0.0, "single-base"
        z = self._design(self.window_base) @ coef
        p = 1 / (1 + np.exp(-np.clip(z, -35, 35)))
        self.calibrator = self._calibrate(p, self.window_y)
        self.window_pred = self.calibrator(p)
        self.single = {"base": name, "reason": why}
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
            "calibration": self.calibrator.to_json(), "dropped": dict(self.dropped),
            "stack_window": {"jobs": int(len(self.window_y)), "failed": int(np.sum(self.window_y == 1))}}
        if self.selection:
            spec["selection"] = dict(self.selection)
        if self.single:
            spec["single_base"] = {"base": self.single["base"], "model": f"{self.single['base']}_{stage}",
                                   "reason": self.single["reason"]}
            spec["note"] = self.single["reason"]
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
                "min_stack_positives": self.min_stack_pos, "dropped": self.dropped,
                **({"selection": dict(self.selection)} if self.selection else {}),
                **({"single_base": dict(self.single)} if self.single else {})}


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
