"""Local polynomial regression at the newest sample: value, first and second derivative of a
series (t, v) with their standard errors.

Time is shifted to the newest sample (tau = t - t_newest <= 0) and scaled by the window's span
before the normal equations are formed, so squares of epoch seconds never meet floating point
(1.7e9 s squared has no digits left for a day's change). Weights: ``"uniform"`` (the
Savitzky-Golay idea with uneven times allowed) or ``"tricube"`` (local regression: a sample's
weight falls with its age, (1 - (age / h)^3)^3, h = 1.1 x the span so the oldest still counts).
Pure Python: a fit is a 3 x 3 system; the recorder imports this without numpy.

Standard errors use the sandwich form for weighted least squares with equal-variance noise,
Cov = s^2 A^-1 B A^-1 with A = X'WX, B = X'W^2X and s^2 the weighted residual variance with the
fitted coefficients' degrees of freedom removed (Kish's effective sample size).
"""

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

Point = Tuple[float, float]
QUADRATIC_MIN_POINTS = 6


@dataclass(frozen=True)
class LocalFit:
    """The fitted curve v(tau) = value + rate tau + accel tau^2 / 2 around ``t`` (the newest
    sample's time). Units: the input's unit, per second, per second squared."""

    t: float
    n: int
    degree: int
    span_s: float
    value: float
    rate: float
    accel: float
    sigma: float                 # residual standard deviation (noise), input unit
    value_se: float
    rate_se: float
    accel_se: float
    cov: Tuple[Tuple[float, ...], ...]   # covariance of (value, rate, accel/2) in seconds

    def at(self, tau: float) -> float:
        """The fitted curve ``tau`` seconds after the newest sample."""
        return self.value + self.rate * tau + 0.5 * self.accel * tau * tau

    def sd_at(self, tau: float) -> float:
        """Standard error of the fitted curve at ``tau`` (grows with the extrapolation)."""
        x = (1.0, tau, tau * tau)[:len(self.cov)]
        var = sum(x[i] * self.cov[i][j] * x[j] for i in range(len(x)) for j in range(len(x)))
        return math.sqrt(max(var, 0.0))


def fit_local(points: Sequence[Point], degree: Optional[int] = None,
              weights: str = "uniform") -> LocalFit:
    """Fit ``points`` (sorted by time, at least one). ``degree`` None: 2 with >= 6 points, 1 with
    2-5, 0 with one (a quadratic through a handful of points turns noise into acceleration).
    A degree the points cannot carry (fewer distinct times) falls back to a lower one."""
    if not points:
        raise ValueError("no points")
    t0 = points[-1][0]
    taus = [t - t0 for t, _ in points]
    ys = [v for _, v in points]
    span = max(taus) - min(taus)
    if degree is None:
        degree = 2 if len(points) >= QUADRATIC_MIN_POINTS else 1
    ws = _weights(taus, span, weights)
    for k in range(min(degree, len(points) - 1, _distinct(taus) - 1), -1, -1):
        if k > 0 and span <= 0:
            continue
        fit = _wls(taus, ys, ws, k + 1, span or 1.0)
        if fit is not None:
            coef, cov, sigma = fit
            return _local_fit(t0, len(points), k, span, coef, cov, sigma)
    raise ValueError("singular fit")  # unreachable: a constant always fits


def _local_fit(t0: float, n: int, k: int, span: float, coef: List[float],
               cov: List[List[float]], sigma: float) -> LocalFit:
    c = coef + [0.0] * (3 - len(coef))
    se = [math.sqrt(max(cov[i][i], 0.0)) for i in range(len(coef))] + [0.0] * (3 - len(coef))
    return LocalFit(t=t0, n=n, degree=k, span_s=span, value=c[0], rate=c[1], accel=2.0 * c[2],
                    sigma=sigma, value_se=se[0], rate_se=se[1], accel_se=2.0 * se[2],
                    cov=tuple(tuple(row) for row in cov))


def _weights(taus: List[float], span: float, kind: str) -> List[float]:
    if kind == "uniform" or span <= 0:
        return [1.0] * len(taus)
    if kind != "tricube":
        raise ValueError(f"unknown weights {kind!r}")
    h = 1.1 * span
    return [(1.0 - (abs(x) / h) ** 3) ** 3 for x in taus]


def _distinct(xs: List[float]) -> int:
    return len(set(xs))


def _wls(xs: List[float], ys: List[float], ws: List[float], k: int,
         scale: float) -> Optional[Tuple[List[float], List[List[float]], float]]:
    """Weighted least squares of y on (1, u, ..., u^(k-1)), u = x / scale; coefficients and their
    covariance returned in x's units. One pass gathers the power sums (X'WX and X'W^2X are Hankel
    matrices of sum w u^e and sum w^2 u^e), a second the residuals (never from the expanded sum
    of squares, which cancels catastrophically on an exact fit of large values)."""
    m = 2 * k - 1
    sw_pow, sw2_pow, rhs = [0.0] * m, [0.0] * m, [0.0] * k
    for x, y, w in zip(xs, ys, ws):
        u, p, w2 = x / scale, 1.0, w * w
        for e in range(m):
            sw_pow[e] += w * p
            sw2_pow[e] += w2 * p
            if e < k:
                rhs[e] += w * y * p
            p *= u
    a = [[sw_pow[i + j] for j in range(k)] for i in range(k)]
    ainv = _inverse(a)
    if ainv is None:
        return None
    c = [sum(ainv[i][j] * rhs[j] for j in range(k)) for i in range(k)]
    ss = 0.0
    for x, y, w in zip(xs, ys, ws):
        u = x / scale
        fitted = 0.0
        for ci in reversed(c):          # Horner
            fitted = fitted * u + ci
        ss += w * (y - fitted) ** 2
    sw, sw2 = sw_pow[0], sw2_pow[0]
    n_eff = sw * sw / sw2 if sw2 > 0 else 0.0
    dof = n_eff - k
    sigma2 = (ss / sw) * n_eff / dof if dof > 0 else 0.0
    b = [[sw2_pow[i + j] for j in range(k)] for i in range(k)]
    cov_u = _mul(_mul(ainv, b), ainv)
    coef = [ci / scale ** i for i, ci in enumerate(c)]
    cov = [[sigma2 * cov_u[i][j] / scale ** (i + j) for j in range(k)] for i in range(k)]
    return coef, cov, math.sqrt(sigma2)


def _mul(a: List[List[float]], b: List[List[float]]) -> List[List[float]]:
    n = len(a)
    return [[sum(a[i][m] * b[m][j] for m in range(n)) for j in range(n)] for i in range(n)]


def _inverse(m: List[List[float]]) -> Optional[List[List[float]]]:
    """Gauss-Jordan with partial pivoting; None when (numerically) singular."""
    n = len(m)
    a = [row[:] + [1.0 if i == j else 0.0 for j in range(n)] for i, row in enumerate(m)]
    biggest = max(abs(v) for row in m for v in row) or 1.0
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[piv][col]) < 1e-12 * biggest:
            return None
        a[col], a[piv] = a[piv], a[col]
        d = a[col][col]
        a[col] = [v / d for v in a[col]]
        for r in range(n):
            if r != col and a[r][col] != 0.0:
                f = a[r][col]
                a[r] = [v - f * pc for v, pc in zip(a[r], a[col])]
    return [row[n:] for row in a]
