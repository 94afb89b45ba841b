"""nomade.analysis on analytic series with known answers (docs/monitoring.md "Trend analysis").

Tolerances: exact polynomials (linear, quadratic) are recovered to 1e-6 relative (the fit is
exact; what is left is rounding after shifting time to the newest sample); series with noise
from a fixed seed to the tolerance stated in each test, derived from the noise level; the
exponential is not a polynomial, so only its ordering (true < quadratic < linear) is asserted."""

import math
import random

import pytest

from nomade.analysis import (ACCELERATING, DECELERATING, GROWING, SHRINKING, STABLE, UNKNOWN,
                             analyse)
from nomade.analysis.limits import crossing_band, time_to_limit_quadratic
from nomade.analysis.regression import fit_local
from nomade.analysis.samples import prepare, reset_indexes
from nomade.analysis.words import disk_sentence, human_bytes, human_duration

DAY = 86400.0
HOUR = 3600.0
T0 = 1.7646e9          # epoch seconds: squares of these would lose a day's change in a float
TB = 1e12


def disk_percent(t_days):
    """A disk at 50 % now, growing 1 %/day, accelerating 0.1 %/day^2."""
    return 50.0 + 1.0 * t_days + 0.05 * t_days ** 2


QUAD_FULL_DAYS = (-1.0 + math.sqrt(1.0 + 4 * 0.05 * 50.0)) / (2 * 0.05)      # 23.166 days


def hourly(f, days=14, t_end=T0):
    return [(t_end + h * HOUR, f(h / 24.0)) for h in range(-days * 24, 1)]


def test_disk_50_percent_accelerating_full_from_the_quadratic_root():
    tr = analyse(hourly(disk_percent), limit=100.0, unit="%")
    assert tr.trend == ACCELERATING
    assert tr.value == pytest.approx(50.0, rel=1e-9)
    assert tr.rate_per(DAY) == pytest.approx(1.0, rel=1e-6)
    assert tr.accel_per(DAY) == pytest.approx(0.1, rel=1e-6)
    assert tr.ttl_quadratic_s / DAY == pytest.approx(QUAD_FULL_DAYS, rel=1e-6)
    assert tr.ttl_s == tr.ttl_quadratic_s
    assert tr.ttl_linear_s / DAY == pytest.approx(50.0, rel=1e-6)
    assert tr.rate_unit == "%/s" and tr.accel_unit == "%/s^2"


def test_disk_noisy_with_fixed_seed():
    """Noise 0.2 % (sd) on hourly samples over 14 days: time to full within 5 % (the band's
    half-width is ~3 %), and the band contains the true root."""
    rnd = random.Random(20261203)
    pts = [(t, v + rnd.gauss(0, 0.2)) for t, v in hourly(disk_percent)]
    tr = analyse(pts, limit=100.0, unit="%")
    assert tr.trend == ACCELERATING
    assert tr.noise == pytest.approx(0.2, rel=0.25)
    assert tr.ttl_s / DAY == pytest.approx(QUAD_FULL_DAYS, rel=0.05)
    assert tr.ttl_earliest_s <= QUAD_FULL_DAYS * DAY <= tr.ttl_latest_s
    assert tr.ttl_earliest_s < tr.ttl_s < tr.ttl_latest_s


def test_linear_exact_with_epoch_times_and_bytes():
    pts = [(T0 + i * 60.0, 0.5 * TB + 15e9 / DAY * i * 60.0) for i in range(-2000, 1)]   # 15 GB/day
    tr = analyse(pts, limit=TB, unit="B")
    assert tr.trend == GROWING
    assert tr.rate_per(DAY) == pytest.approx(15e9, rel=1e-6)
    assert tr.ttl_s / DAY == pytest.approx(0.5 * TB / 15e9, rel=1e-6)
    assert tr.ttl_linear_s == pytest.approx(tr.ttl_s)


def test_quadratic_exact_values_and_roots():
    pts = [(T0 + t, 50 + 3 * t * t) for t in range(-7, 1)]       # ends at t=0: value 50, rate 0
    fit = fit_local(pts)
    assert (fit.value, fit.rate, fit.accel) == (pytest.approx(50), pytest.approx(0, abs=1e-6),
                                                pytest.approx(6))
    assert time_to_limit_quadratic(50, 0, 6, 500) == pytest.approx(math.sqrt(450 / 3))


def test_quadratic_root_keeps_its_digits_when_acceleration_is_tiny():
    # 1e-20 acceleration next to rate 1: the schoolbook formula returns 0 or garbage here
    assert time_to_limit_quadratic(0.0, 1.0, 1e-20, 100.0) == pytest.approx(100.0, rel=1e-12)
    assert time_to_limit_quadratic(0.0, 1.0, -1e-20, 100.0) == pytest.approx(100.0, rel=1e-12)
    assert time_to_limit_quadratic(0.0, 10.0, -2.0, 100.0) is None           # peaks at 25
    assert time_to_limit_quadratic(0.0, -1.0, 2.0, 100.0) == pytest.approx((1 + math.sqrt(401)) / 2)


def test_exponential_quadratic_is_between_truth_and_linear():
    tau = 10 * DAY
    pts = [(T0 + h * HOUR, 10 * math.exp(h * HOUR / tau)) for h in range(-7 * 24, 1)]
    tr = analyse(pts, limit=100.0)
    true = tau * math.log(10.0)
    assert tr.trend == ACCELERATING
    assert tr.rate == pytest.approx(10 / tau, rel=0.05)    # a quadratic's slope at the window's end
    assert true < tr.ttl_quadratic_s < tr.ttl_linear_s
    assert tr.ttl_quadratic_s / true == pytest.approx(1.64, abs=0.05)


def test_classes():
    def cls(f, noise=0.0, seed=1):
        rnd = random.Random(seed)
        return analyse([(t, f(d) + rnd.gauss(0, noise)) for t, d in
                        ((T0 + h * HOUR, h / 24.0) for h in range(-7 * 24, 1))]).trend
    assert cls(lambda d: 500.0) == STABLE
    assert cls(lambda d: 500.0, noise=2.0) == STABLE
    assert cls(lambda d: 500 + 0.01 * d, noise=2.0) == STABLE        # 0.07 over the week << noise
    assert cls(lambda d: 500 + 10 * d, noise=2.0) == GROWING
    assert cls(lambda d: 500 + 10 * d + 2 * d * d, noise=2.0) == ACCELERATING
    assert cls(lambda d: 500 + 10 * d - 0.5 * d * d, noise=2.0) == DECELERATING
    assert cls(lambda d: 500 - 10 * d, noise=2.0) == SHRINKING
    assert analyse([(T0, 1.0), (T0 + 60, 2.0)]).trend == UNKNOWN
    assert analyse([]) is None


def test_pure_noise_is_rarely_called_a_trend():
    """z = 3: at most 2 % of 200 seeded noise-only weeks get a class other than stable."""
    wrong = 0
    for seed in range(200):
        rnd = random.Random(seed)
        pts = [(T0 + h * HOUR, 500 + rnd.gauss(0, 2.0)) for h in range(-7 * 24, 1)]
        wrong += analyse(pts).trend != STABLE
    assert wrong <= 4


def test_decelerating_that_levels_off_never_fills():
    tr = analyse([(T0 + h * HOUR, 100 + 40 * h / 24 - 2 * (h / 24) ** 2) for h in range(-100, 1)],
                 limit=1000.0)
    assert tr.trend == DECELERATING and tr.ttl_quadratic_s is None and tr.ttl_s is None
    assert tr.ttl_linear_s is not None


def test_irregular_sampling_and_gaps():
    rnd = random.Random(5)
    ts = sorted(T0 - rnd.uniform(0, 5 * DAY) for _ in range(300)) + [T0]
    ts = [t for t in ts if not (T0 - 3 * DAY < t < T0 - 1.5 * DAY)]      # a 36-hour hole
    tr = analyse([(t, disk_percent((t - T0) / DAY)) for t in ts], limit=100.0)
    assert tr.max_gap_s >= 1.5 * DAY
    assert tr.rate_per(DAY) == pytest.approx(1.0, rel=1e-6)
    assert tr.ttl_s / DAY == pytest.approx(QUAD_FULL_DAYS, rel=1e-6)


def test_window_keeps_the_recent_part():
    # shape changed 2 days ago: flat before, linear growth since
    pts = [(T0 + h * HOUR, 100.0 if h < -48 else 100.0 + 2.0 * (h + 48)) for h in range(-240, 1)]
    tr = analyse(pts, window_s=40 * HOUR)
    assert tr.rate * HOUR == pytest.approx(2.0, rel=1e-6) and tr.trend == GROWING


def test_gauge_reset_cuts_and_counter_reset_stitches():
    pts = [(T0 + i * 60.0, 5000.0 + 10 * i) for i in range(50)]
    pts += [(T0 + (50 + i) * 60.0, 20.0 + 10 * i) for i in range(30)]         # purged, refilling
    assert reset_indexes(pts) == [50]
    tr = analyse(pts, limit=10000.0)
    assert tr.resets == 1 and tr.n == 30 and tr.rate * 60 == pytest.approx(10.0)
    counter = [(T0 + i * 60.0, 100.0 * i) for i in range(1, 40)]
    counter += [(T0 + (40 + i) * 60.0, 100.0 * i) for i in range(0, 20)]      # restarted at 0
    stitched = prepare(counter, resets="stitch").points
    assert all(b[1] >= a[1] for a, b in zip(stitched, stitched[1:]))
    assert stitched[39][1] == 3900.0 and stitched[-1][1] == 3900.0 + 1900.0
    tr = analyse(counter, resets="stitch")      # one step of 0 where it restarted: 10 % slack
    assert tr.n == 59 and tr.resets == 1 and tr.rate * 60 == pytest.approx(100.0, rel=0.1)
    assert analyse(counter, resets="cut").n == 20


def test_unordered_duplicates_and_non_finite_are_cleaned():
    pts = [(T0 + 120, 3.0), (T0, 1.0), (T0 + 60, float("nan")), (T0 + 60, 2.0), (T0 + 60, 2.0),
           (float("inf"), 9.0)]
    prep = prepare(pts)
    assert prep.points == [(T0, 1.0), (T0 + 60, 2.0), (T0 + 120, 3.0)] and prep.dropped == 3


def test_band_of_an_exact_fit_is_the_root_itself():
    fit = fit_local(hourly(disk_percent))
    lo, hi = crossing_band(fit, 100.0, 365 * DAY)
    assert lo / DAY == pytest.approx(QUAD_FULL_DAYS, rel=1e-4)
    assert hi / DAY == pytest.approx(QUAD_FULL_DAYS, rel=1e-4)


def test_words():
    assert human_bytes(15e9) == "15 GB" and human_bytes(1.5e12) == "1.5 TB" and human_bytes(512) == "512 B"
    assert human_bytes(999.7e9) == "1.0 TB" and human_bytes(9.97e9) == "10 GB"
    assert human_duration(3 * DAY) == "3 days" and human_duration(5 * HOUR) == "5 hours"
    assert human_duration(None) == "never" and human_duration(0) == "now"
    pts = [(T0 + h * HOUR, TB * disk_percent(h / 24.0) / 100) for h in range(-14 * 24, 1)]
    tr = analyse(pts, limit=TB, unit="B")
    assert disk_sentence("/scratch", 50.0, tr) == (
        "/scratch: 50 % used, filling at 10 GB/day and accelerating: full in about 23 days "
        "(linear: 50 days)")
