"""Job profiles: a Gaussian mixture with diagonal covariances fitted by EM to the z-scored
behaviour vectors, the number of profiles chosen by BIC, seeded. numpy only.

Missing features are marginalised out (a diagonal Gaussian's density over the known features
only), never treated as 0. Each profile is named from its distinguishing features (component
mean |z| >= ``NAME_Z``; "very" from ``VERY_Z``), e.g. "high local write, low CPU". The mixture is also the generative
model of the analysis: a job whose log-likelihood per known feature is below the
``anomaly_percentile`` of the jobs it was fitted on is an anomaly."""

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..scoring.neighbours import Z_CLIP, fit_scaler
from .vectors import NODE_METRICS

LOG2PI = math.log(2 * math.pi)
VAR_FLOOR = 1e-3
NAME_Z = 0.5
VERY_Z = 1.5
TRAIT_SHARE = 0.75
MIN_PER_PROFILE = 10     # no more profiles than fitted jobs / this
CONTEXT = frozenset(NODE_METRICS)   # the node's statistics while the job ran: not fitted
FIT_SAMPLE = 20000
INIT_SAMPLE = 4000


@dataclass
class Mixture:
    weights: np.ndarray      # (K,)
    means: np.ndarray        # (K, d) in z units
    vars: np.ndarray         # (K, d)
    loglik: float = 0.0
    bic: float = 0.0
    iterations: int = 0

    @property
    def k(self) -> int:
        return int(self.weights.shape[0])

    def joint(self, Z: np.ndarray, M: np.ndarray, BC=None) -> np.ndarray:
        """log(weight_c) + log N(z_obs | c) per row and component (n, K). ``BC``: (M*Z, M*Z*Z)
        when the caller has them."""
        A = M
        B, C = BC if BC is not None else (M * Z, M * Z * Z)
        inv = 1.0 / self.vars
        const = (np.log(self.vars) + LOG2PI + self.means ** 2 * inv).T
        ll = -0.5 * (A @ const + C @ inv.T - 2.0 * (B @ (self.means * inv).T))
        return ll + np.log(np.maximum(self.weights, 1e-300))[None, :]

    def score(self, Z: np.ndarray, M: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(component per row, log-likelihood per row)."""
        J = self.joint(Z, M)
        mx = J.max(axis=1, keepdims=True)
        ll = (mx + np.log(np.exp(J - mx).sum(axis=1, keepdims=True)))[:, 0]
        return np.argmax(J, axis=1), ll


def prepare(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Z-scores (clipped, 0 where missing) and the mask of known values, float64."""
    M = np.isfinite(X).astype(np.float64)
    with np.errstate(invalid="ignore"):
        Z = (np.asarray(X, dtype=np.float64) - mean) / std
    Z = np.clip(np.nan_to_num(Z, nan=0.0, posinf=0.0, neginf=0.0), -Z_CLIP, Z_CLIP)
    return Z, M


def fit_em(Z: np.ndarray, M: np.ndarray, k: int, seed: int, max_iter: int = 150,
           tol: float = 1e-4, init: Optional[Mixture] = None) -> Mixture:
    n, d = Z.shape
    if init is None:
        rng = np.random.default_rng(seed)
        mix = Mixture(np.full(k, 1.0 / k), _plus_plus(Z, k, rng), np.ones((k, d)))
    else:
        mix = Mixture(init.weights.copy(), init.means.copy(), init.vars.copy())
    prev = -np.inf
    ll = 0.0
    BC = (M * Z, M * Z * Z)
    mix.iterations = 0
    for _ in range(max_iter):
        mix.iterations += 1
        J = mix.joint(Z, M, BC)
        mx = J.max(axis=1, keepdims=True)
        R = np.exp(J - mx)
        tot = R.sum(axis=1, keepdims=True)
        ll = float((mx[:, 0] + np.log(tot[:, 0])).sum())
        R /= tot
        Nk = R.T @ M + 1e-9                                  # (K, d) known-value weight
        mix.means = (R.T @ BC[0]) / Nk
        mix.vars = np.maximum((R.T @ BC[1]) / Nk - mix.means ** 2, VAR_FLOOR)
        mix.weights = np.maximum(R.sum(axis=0) / n, 1e-12)
        if (ll - prev) / n < tol:             # nats per row
            break
        prev = ll
    mix.loglik = ll
    params = k * 2 * d + (k - 1)
    mix.bic = -2.0 * ll + params * math.log(max(n, 2))
    return mix


def _plus_plus(Z: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeds."""
    n = Z.shape[0]
    centres = [Z[rng.integers(n)]]
    d2 = ((Z - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else None
        c = Z[rng.choice(n, p=p)]
        centres.append(c)
        d2 = np.minimum(d2, ((Z - c) ** 2).sum(axis=1))
    return np.array(centres)


def split_starts(mix: Mixture) -> List[Mixture]:
    """Starts with one component more: each component of ``mix`` in turn split in two along its
    widest feature (means one standard deviation either side, a quarter of the variance there,
    half the weight each). Random starts alone miss a split that one feature carries when others
    are noisy, e.g. two kinds of jobs told apart by memory use alone among noisy node statistics."""
    out = []
    for c in range(mix.k):
        j = int(np.argmax(mix.vars[c]))
        sd = math.sqrt(float(mix.vars[c, j]))
        means = np.vstack([mix.means, mix.means[c:c + 1]])
        means[c, j] -= sd
        means[-1, j] += sd
        var = np.vstack([mix.vars, mix.vars[c:c + 1]])
        var[c, j] = var[-1, j] = max(float(mix.vars[c, j]) / 4.0, VAR_FLOOR)
        weights = np.append(mix.weights, mix.weights[c] / 2.0)
        weights[c] /= 2.0
        out.append(Mixture(weights, means, var))
    return out


@dataclass
class Profile:
    id: int
    name: str
    size: int
    failure_rate: Optional[float]          # among labelled jobs; None without any
    by_class: Dict[str, int] = field(default_factory=dict)
    traits: List[Tuple[str, float]] = field(default_factory=list)   # (feature, mean z)

    def as_dict(self) -> Dict[str, object]:
        return {"id": self.id, "name": self.name, "size": self.size, "failure_rate": self.failure_rate,
                "by_class": dict(self.by_class), "traits": [{"feature": f, "z": round(z, 3)} for f, z in self.traits]}


@dataclass
class ProfileModel:
    """The fitted mixture with its scaler, names and anomaly threshold."""
    names: Tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    mixture: Mixture
    labels: List[str]
    anomaly_threshold: float
    bic_by_k: Dict[int, float]
    cols: Tuple[int, ...] = ()       # columns of the behaviour vector the mixture uses

    def assign(self, X: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Profile id per row, and log-likelihood per known feature (the anomaly score: lower is
        stranger)."""
        Z, M = prepare(X[:, list(self.cols)] if self.cols else X, self.mean, self.std)
        out_c = np.empty(X.shape[0], dtype=np.int64)
        out_l = np.empty(X.shape[0])
        for s in range(0, X.shape[0], 200000):
            c, ll = self.mixture.score(Z[s:s + 200000], M[s:s + 200000])
            out_c[s:s + 200000] = c
            out_l[s:s + 200000] = ll / np.maximum(M[s:s + 200000].sum(axis=1), 1.0)
        return out_c, out_l


def fit_profiles(X: np.ndarray, names: Sequence[str], *, max_k: int = 8, seed: int = 0,
                 anomaly_percentile: float = 1.0, sample: int = FIT_SAMPLE,
                 n_init: int = 3) -> ProfileModel:
    """Fit mixtures with 1..max_k components to (a seeded sample of) X and keep the one with the
    lowest BIC. Per k: ``n_init`` seeded starts and the ``split_starts`` of the k-1 fit, each a
    short EM run on a small subsample, the best refined on the sample; the search stops once BIC
    has risen twice in a row. Features without
    two distinct known values are left out, and so are the node statistics (``CONTEXT``): every
    job on a node at a moment shares them, so they group jobs by when they ran, not by what they
    did (on the test cluster a moment of I/O wait took a profile of its own and merged the
    CPU-bound jobs with the idle ones); the network and the hotspots keep them. Components are
    ordered by weight, largest first."""
    cols = [j for j in range(X.shape[1]) if names[j] not in CONTEXT
            and np.unique(X[np.isfinite(X[:, j]), j][:100000]).size > 1]
    if not cols:
        cols = [0]
    Xc = X[:, cols]
    mean, std = fit_scaler(Xc)
    mean, std = mean.astype(np.float64), std.astype(np.float64)
    rng = np.random.default_rng(seed)
    rows = rng.choice(X.shape[0], size=sample, replace=False) if X.shape[0] > sample else np.arange(X.shape[0])
    Z, M = prepare(Xc[rows], mean, std)
    sub = np.arange(Z.shape[0]) if Z.shape[0] <= INIT_SAMPLE else rng.choice(Z.shape[0], INIT_SAMPLE, replace=False)
    best: Optional[Mixture] = None
    bic: Dict[int, float] = {}
    rises = 0
    prev: Optional[Mixture] = None
    for k in range(1, max(1, min(max_k, Z.shape[0] // MIN_PER_PROFILE)) + 1):
        starts = [fit_em(Z[sub], M[sub], k, seed + 100 * k + r, max_iter=40) for r in range(n_init)]
        if prev is not None:
            starts += [fit_em(Z[sub], M[sub], k, seed, max_iter=40, init=s) for s in split_starts(prev)]
        start = max(starts, key=lambda m: m.loglik)
        mix = prev = fit_em(Z, M, k, seed, init=start)
        bic[k] = mix.bic
        if best is None or mix.bic < best.bic:
            best, rises = mix, 0
        else:
            rises += 1
            if rises >= 2:
                break
    if best is None:
        raise ValueError("fit_profiles: no rows to fit")
    order = np.argsort(-best.weights, kind="stable")
    best = Mixture(best.weights[order], best.means[order], best.vars[order], best.loglik, best.bic,
                   best.iterations)
    used = tuple(names[j] for j in cols)
    model = ProfileModel(used, mean, std, best, _names(best.means, used), 0.0, bic, tuple(cols))
    _, ll = model.assign(X[rows])
    model.anomaly_threshold = float(np.percentile(ll, anomaly_percentile)) if ll.size else float("-inf")
    return model


def traits(means_row: np.ndarray, names: Sequence[str], limit: int = 3) -> List[Tuple[str, float]]:
    """The features that distinguish a component: |mean z| >= NAME_Z and >= TRAIT_SHARE of the
    largest, at most ``limit``, largest first."""
    order = np.argsort(-np.abs(means_row), kind="stable")
    top = abs(float(means_row[order[0]])) if order.size else 0.0
    floor = max(NAME_Z, TRAIT_SHARE * top)
    return [(names[j], float(means_row[j])) for j in order[:limit] if abs(means_row[j]) >= floor]


def _level(z: float) -> str:
    word = "high " if z > 0 else "low "
    return "very " + word if abs(z) >= VERY_Z else word


def _names(means: np.ndarray, names: Sequence[str]) -> List[str]:
    from .vectors import LABELS
    out: List[str] = []
    for c in range(means.shape[0]):
        t = traits(means[c], names)
        name = ", ".join(_level(z) + LABELS.get(f, f) for f, z in t) or "typical"
        if name in out:
            name = f"{name} ({c})"
        out.append(name)
    return out


def summarize(model: ProfileModel, assigned: np.ndarray, y: np.ndarray,
              outcome: Sequence[Optional[str]]) -> List[Profile]:
    """Per profile: size, failure rate among labelled jobs, jobs per outcome class, traits."""
    out = []
    for c in range(model.mixture.k):
        rows = np.nonzero(assigned == c)[0]
        lab = y[rows]
        n_lab = int((lab >= 0).sum())
        by: Dict[str, int] = {}
        for i in rows:
            key = outcome[i] or "unknown"
            by[key] = by.get(key, 0) + 1
        out.append(Profile(c, model.labels[c], int(rows.size),
                           float((lab == 1).sum()) / n_lab if n_lab else None, dict(sorted(by.items())),
                           traits(model.mixture.means[c], model.names)))
    return out
