"""The trend of one series: smoothed value, rate and acceleration with units, a trend class, and
the time until a limit (linear, quadratic, and the band around it).

Trend classes, decided relative to the series' own noise (sigma, the residual standard deviation
of the fit) with ``z`` = 3 by default (a pure-noise series is called growing, shrinking or
accelerating about 3 times in 1,000 instead of 1 in 20 with z = 2):

- a coefficient is **significant** when it is at least ``z`` standard errors from zero *and* the
  change it makes over the window is larger than the noise: |rate| x span > sigma for the rate,
  |accel| x span^2 / 2 > sigma for the acceleration (with a floor of 1e-9 x |value| so that an
  exact series' rounding errors never count);
- ``stable``: the rate is not significant; ``shrinking``: a significant negative rate;
  ``growing``: a significant positive rate with no significant acceleration;
  ``accelerating`` / ``decelerating``: a significant positive rate and a significant positive /
  negative acceleration; ``unknown``: fewer than 3 samples or no time between them.

The time to the limit reported as *the* estimate (``ttl_s``): the quadratic root when the
acceleration is significant (None when a decelerating curve levels off below the limit), else
the linear one. The band is where the fit +/- 2 standard errors (``band_z``, ~95 %) reaches the
limit (``limits.crossing_band``), within ``horizon_s``.
"""

from dataclasses import asdict, dataclass
from typing import Dict, Iterable, Optional

from .limits import crossing_band, time_to_limit_linear, time_to_limit_quadratic
from .regression import LocalFit, fit_local
from .samples import Point, prepare

STABLE, GROWING, ACCELERATING, DECELERATING, SHRINKING, UNKNOWN = (
    "stable", "growing", "accelerating", "decelerating", "shrinking", "unknown")
DAY = 86400.0
DEFAULT_HORIZON_S = 365 * DAY
REL_FLOOR = 1e-9


@dataclass(frozen=True)
class Trend:
    t: float                    # newest sample's time (epoch s); the derivatives are read there
    n: int
    span_s: float
    unit: str                   # the value's unit; rate is unit/s, accel unit/s^2
    value: float                # smoothed
    rate: float
    accel: float
    rate_se: float
    accel_se: float
    noise: float                # residual standard deviation, value's unit
    trend: str
    limit: Optional[float] = None
    ttl_linear_s: Optional[float] = None
    ttl_quadratic_s: Optional[float] = None
    ttl_s: Optional[float] = None
    ttl_earliest_s: Optional[float] = None
    ttl_latest_s: Optional[float] = None     # None: not within the horizon
    resets: int = 0
    max_gap_s: float = 0.0

    @property
    def rate_unit(self) -> str:
        return f"{self.unit}/s"

    @property
    def accel_unit(self) -> str:
        return f"{self.unit}/s^2"

    def rate_per(self, period_s: float) -> float:
        return self.rate * period_s

    def accel_per(self, period_s: float) -> float:
        return self.accel * period_s * period_s

    def as_dict(self) -> Dict[str, object]:
        d = asdict(self)
        d.update(rate_unit=self.rate_unit, accel_unit=self.accel_unit,
                 rate_per_day=self.rate_per(DAY), accel_per_day2=self.accel_per(DAY))
        return d


def analyse(points: Iterable[Point], limit: Optional[float] = None, *, unit: str = "",
            window_s: Optional[float] = None, resets: str = "cut", weights: str = "tricube",
            z: float = 3.0, band_z: float = 2.0,
            horizon_s: float = DEFAULT_HORIZON_S) -> Optional[Trend]:
    """The trend of ``points`` (epoch s, value) over the last ``window_s`` seconds (None: all),
    against ``limit`` when given. None when no sample is left."""
    prep = prepare(points, window_s=window_s, resets=resets)
    if not prep.points:
        return None
    fit = fit_local(prep.points, weights=weights)
    trend = classify(fit, z)
    out = dict(t=fit.t, n=fit.n, span_s=fit.span_s, unit=unit, value=fit.value, rate=fit.rate,
               accel=fit.accel, rate_se=fit.rate_se, accel_se=fit.accel_se, noise=fit.sigma,
               trend=trend, resets=prep.resets, max_gap_s=prep.max_gap_s)
    if limit is not None:
        out.update(_to_limit(fit, trend, limit, band_z, horizon_s))
    return Trend(**out)


def classify(fit: LocalFit, z: float = 3.0) -> str:
    if fit.n < 3 or fit.span_s <= 0:
        return UNKNOWN
    floor = max(fit.sigma, REL_FLOOR * max(abs(fit.value), 1e-300))
    rate_sig = _significant(fit.rate, fit.rate_se, abs(fit.rate) * fit.span_s, floor, z)
    accel_sig = fit.degree >= 2 and _significant(
        fit.accel, fit.accel_se, 0.5 * abs(fit.accel) * fit.span_s ** 2, floor, z)
    if not rate_sig:
        return STABLE
    if fit.rate < 0:
        return SHRINKING
    if accel_sig:
        return ACCELERATING if fit.accel > 0 else DECELERATING
    return GROWING


def _significant(coef: float, se: float, effect: float, floor: float, z: float) -> bool:
    return abs(coef) >= z * se and effect > floor


def _to_limit(fit: LocalFit, trend: str, limit: float, band_z: float,
              horizon_s: float) -> Dict[str, Optional[float]]:
    lin = time_to_limit_linear(fit.value, fit.rate, limit)
    quad = time_to_limit_quadratic(fit.value, fit.rate, fit.accel, limit)
    if trend in (ACCELERATING, DECELERATING):
        best = quad
    elif trend in (STABLE, SHRINKING, UNKNOWN):
        best = 0.0 if fit.value >= limit else None
    else:
        best = lin
    earliest, latest = crossing_band(fit, limit, horizon_s, band_z)
    return dict(limit=limit, ttl_linear_s=lin, ttl_quadratic_s=quad, ttl_s=best,
                ttl_earliest_s=earliest, ttl_latest_s=latest)

