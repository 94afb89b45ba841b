"""Memory projection: smoothed value, rate and acceleration over the last samples, and the time
until a limit is reached by linear and quadratic extrapolation.

The smoothing is a least-squares quadratic over a sliding window (the Savitzky-Golay idea, with
uneven sample times allowed): value, first and second derivative are read off the fitted curve at
the newest sample. Pure Python; a window is a handful of points.
"""

import math
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple


QUADRATIC_MIN_POINTS = 6


@dataclass(frozen=True)
class Projection:
    n: int
    value: float               # smoothed, same unit as the input (MiB)
    rate: float                # per second
    accel: float               # per second^2
    limit: float
    ttl_linear_s: Optional[float]     # None: never (not growing)
    ttl_quadratic_s: Optional[float]  # None: the fitted curve never reaches the limit
    rising_fraction: float     # share of consecutive differences in the window that are > 0
    consistent: bool

    @property
    def ttl_s(self) -> Optional[float]:
        """The estimate used for warnings: quadratic when it reaches the limit, else linear unless
        growth is clearly slowing down."""
        if self.ttl_quadratic_s is not None:
            return self.ttl_quadratic_s
        return self.ttl_linear_s if self.accel >= 0 else None

    def as_dict(self) -> Dict[str, object]:
        d = asdict(self)
        d["ttl_s"] = self.ttl_s
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def fit_derivatives(points: Sequence[Tuple[float, float]]) -> Tuple[float, float, float]:
    """(value, rate, acceleration) at the last point of a least-squares polynomial fit
    (quadratic with >= 6 points, linear with 2-5, constant with 1). Fewer than 6 points give
    a quadratic too much freedom: noise becomes acceleration."""
    if not points:
        raise ValueError("no points")
    t0 = points[-1][0]
    xs = [t - t0 for t, _ in points]
    ys = [v for _, v in points]
    if len(points) >= QUADRATIC_MIN_POINTS and _spread(xs) > 0:
        c = _lstsq(xs, ys, 3)
        if c is not None:
            return c[0], c[1], 2.0 * c[2]
    if len(points) >= 2 and _spread(xs) > 0:
        c = _lstsq(xs, ys, 2)
        if c is not None:
            return c[0], c[1], 0.0
    return ys[-1], 0.0, 0.0


def project(points: Sequence[Tuple[float, float]], limit: float, window: int = 8,
            min_points: int = 4, min_growth: float = 0.0) -> Optional[Projection]:
    """Project the series (time s, value) against ``limit``. None when there is too little data.
    ``consistent``: at least ``min_points`` points, positive rate, most steps rising, and the
    window grew by more than ``min_growth``."""
    pts = list(points)[-window:]
    if len(pts) < 2 or limit is None or limit <= 0:
        return None
    value, rate, accel = fit_derivatives(pts)
    diffs = [b[1] - a[1] for a, b in zip(pts, pts[1:])]
    rising = sum(1 for d in diffs if d > 0) / len(diffs)
    growth = pts[-1][1] - pts[0][1]
    consistent = len(pts) >= min_points and rate > 0 and rising >= 0.6 and growth > min_growth
    return Projection(n=len(pts), value=value, rate=rate, accel=accel, limit=limit,
                      ttl_linear_s=time_to_limit_linear(value, rate, limit),
                      ttl_quadratic_s=time_to_limit_quadratic(value, rate, accel, limit),
                      rising_fraction=rising, consistent=consistent)


def time_to_limit_linear(value: float, rate: float, limit: float) -> Optional[float]:
    if value >= limit:
        return 0.0
    if rate <= 0:
        return None
    return (limit - value) / rate


def time_to_limit_quadratic(value: float, rate: float, accel: float, limit: float) -> Optional[float]:
    """Smallest t >= 0 with value + rate t + accel t^2 / 2 = limit, or None."""
    if value >= limit:
        return 0.0
    a, b, c = 0.5 * accel, rate, value - limit
    if abs(a) < 1e-12:
        return time_to_limit_linear(value, rate, limit)
    disc = b * b - 4 * a * c
    if disc < 0:
        return None
    sq = math.sqrt(disc)
    roots = [r for r in ((-b - sq) / (2 * a), (-b + sq) / (2 * a)) if r >= 0]
    return min(roots) if roots else None


def _spread(xs: List[float]) -> float:
    return max(xs) - min(xs)


def _lstsq(xs: List[float], ys: List[float], k: int) -> Optional[List[float]]:
    """Coefficients c[0..k-1] of sum c_j x^j minimising squared error (normal equations)."""
    scale = _spread(xs) or 1.0
    u = [x / scale for x in xs]           # scaled for conditioning
    m = [[sum(ui ** (i + j) for ui in u) for j in range(k)] for i in range(k)]
    rhs = [sum(y * ui ** i for ui, y in zip(u, ys)) for i in range(k)]
    sol = _solve(m, rhs)
    if sol is None:
        return None
    return [c / scale ** j for j, c in enumerate(sol)]


def _solve(m: List[List[float]], b: List[float]) -> Optional[List[float]]:
    n = len(b)
    a = [row[:] + [b[i]] for i, row in enumerate(m)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[piv][col]) < 1e-12:
            return None
        a[col], a[piv] = a[piv], a[col]
        for r in range(n):
            if r != col:
                f = a[r][col] / a[col][col]
                for cc in range(col, n + 1):
                    a[r][cc] -= f * a[col][cc]
    return [a[i][n] / a[i][i] for i in range(n)]
