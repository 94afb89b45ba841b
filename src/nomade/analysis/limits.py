"""Time until a fitted curve reaches a limit: the linear and the quadratic root, and the band
the fit's uncertainty puts around the quadratic one.

The quadratic root is the smallest t >= 0 with value + rate t + accel t^2 / 2 = limit, computed
with the cancellation-free form (q = -(b + sign(b) sqrt(b^2 - 4ac)) / 2, roots q/a and c/q): a
disk's acceleration in bytes/s^2 or percent/s^2 is tiny next to its rate, and the schoolbook
formula would lose every digit of the root that matters.
"""

import math
from typing import Callable, Optional, Tuple

from .regression import LocalFit

BAND_Z = 2.0          # the band: where the fit +/- 2 standard errors reaches the limit (~95 %)


def time_to_limit_linear(value: float, rate: float, limit: float) -> Optional[float]:
    if value >= limit:
        return 0.0
    if rate <= 0:
        return None
    return (limit - value) / rate


def time_to_limit_quadratic(value: float, rate: float, accel: float, limit: float) -> Optional[float]:
    """Smallest t >= 0 where the curve reaches ``limit`` (from below), or None when it never does."""
    if value >= limit:
        return 0.0
    a, b, c = 0.5 * accel, rate, value - limit          # c < 0
    if a == 0.0:
        return time_to_limit_linear(value, rate, limit)
    disc = b * b - 4.0 * a * c
    if disc < 0:
        return None
    q = -0.5 * (b + math.copysign(math.sqrt(disc), b))
    roots = [r for r in ((q / a) if a else None, (c / q) if q else None) if r is not None and r >= 0]
    return min(roots) if roots else None


def crossing_band(fit: LocalFit, limit: float, horizon_s: float,
                  z: float = BAND_Z) -> Tuple[Optional[float], Optional[float]]:
    """(earliest, latest): when the upper and the lower confidence curve of the fit
    (curve +/- z standard errors, the error growing as the curve is extrapolated) first reach
    ``limit`` within ``horizon_s``; None for a curve that does not reach it by then."""
    upper = _first_crossing(lambda s: fit.at(s) + z * fit.sd_at(s), limit, horizon_s)
    lower = _first_crossing(lambda s: fit.at(s) - z * fit.sd_at(s), limit, horizon_s)
    return upper, lower


def _first_crossing(f: Callable[[float], float], limit: float, horizon_s: float,
                    steps: int = 400) -> Optional[float]:
    """First time in [0, horizon] where f >= limit: a geometric grid (fine near now, coarse far
    out) to find the bracket, then bisection to a part in 10^6 of the time."""
    if f(0.0) >= limit:
        return 0.0
    if horizon_s <= 0:
        return None
    first = horizon_s * 1e-6
    ratio = (horizon_s / first) ** (1.0 / steps)
    lo, s = 0.0, first
    for _ in range(steps + 1):
        s = min(s, horizon_s)
        if f(s) >= limit:
            return _bisect(f, limit, lo, s)
        lo, s = s, s * ratio
    return None


def _bisect(f: Callable[[float], float], limit: float, lo: float, hi: float) -> float:
    for _ in range(60):
        if hi - lo <= 1e-6 * hi:
            break
        mid = 0.5 * (lo + hi)
        if f(mid) >= limit:
            hi = mid
        else:
            lo = mid
    return hi
