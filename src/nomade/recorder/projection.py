"""Memory projection: smoothed value, rate and acceleration over the last samples, and the time
until a limit is reached by linear and quadratic extrapolation.

A thin adapter over ``nomade.analysis`` (the one derivative module, also behind ``nomade disk``
and ``nomade status``): a least-squares quadratic over a sliding window of samples, uniform
weights (the Savitzky-Golay idea with uneven sample times allowed), time shifted to the newest
sample; value, first and second derivative are read off the fitted curve there.
"""

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence, Tuple

from ..analysis.limits import time_to_limit_linear, time_to_limit_quadratic
from ..analysis.regression import QUADRATIC_MIN_POINTS, fit_local

__all__ = ["Projection", "project", "fit_derivatives", "time_to_limit_linear",
           "time_to_limit_quadratic", "QUADRATIC_MIN_POINTS"]


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
    fit = fit_local(list(points), weights="uniform")
    return fit.value, fit.rate, fit.accel


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
