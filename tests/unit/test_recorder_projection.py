"""Memory projection (smoothed value, rate, acceleration; linear and quadratic time to limit)
and the early-warning policy, tested numerically."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nomade.recorder import warning as warning_mod
from nomade.recorder.projection import (fit_derivatives, project, time_to_limit_linear,
                                        time_to_limit_quadratic)
from nomade.recorder.sample import JobSample
from nomade.recorder.warning import EarlyWarning, Notifier, WarningPolicy


def test_linear_growth_exact():
    pts = [(1000 + 0.5 * i, 50 + 10 * i) for i in range(8)]     # 20 MiB/s
    p = project(pts, 200)
    assert p.rate == pytest.approx(20) and p.accel == pytest.approx(0, abs=1e-9)
    assert p.ttl_linear_s == pytest.approx(4.0) and p.ttl_s == pytest.approx(4.0)
    assert p.consistent


def test_quadratic_growth_is_earlier_than_linear():
    pts = [(float(t), 50 + 3 * t * t) for t in range(8)]         # accel 6 MiB/s^2
    p = project(pts, 500)
    assert p.value == pytest.approx(197) and p.rate == pytest.approx(42) and p.accel == pytest.approx(6)
    assert p.ttl_quadratic_s == pytest.approx(12.2474 - 7, abs=1e-3)
    assert p.ttl_quadratic_s < p.ttl_linear_s
    assert p.ttl_s == p.ttl_quadratic_s


def test_uneven_sample_times():
    ts = [0, 1, 3, 3.5, 7, 8]
    v, r, a = fit_derivatives([(t, 5 + 2 * t) for t in ts])
    assert (v, r, a) == (pytest.approx(21), pytest.approx(2), pytest.approx(0, abs=1e-9))


def test_flat_noisy_and_shrinking_series_do_not_warn():
    rnd = random.Random(7)
    flat = [(float(t), 500 + rnd.uniform(-2, 2)) for t in range(10)]
    assert not project(flat, 1000, min_growth=10).consistent
    shrinking = [(float(t), 900 - 5 * t) for t in range(10)]
    p = project(shrinking, 1000)
    assert not p.consistent and p.ttl_linear_s is None


def test_decelerating_growth_that_levels_off_has_no_quadratic_hit():
    pts = [(float(t), 100 + 40 * t - 2 * t * t) for t in range(8)]  # peaks at 300 at t=10
    p = project(pts, 1000)
    assert p.ttl_quadratic_s is None and p.ttl_s is None


def test_time_to_limit_edges():
    assert time_to_limit_linear(10, 0, 100) is None
    assert time_to_limit_linear(100, 1, 100) == 0.0
    assert time_to_limit_quadratic(0, 0, 2, 100) == pytest.approx(10)
    assert time_to_limit_quadratic(0, 10, 0, 100) == pytest.approx(10)
    assert project([(0.0, 1.0)], 10) is None
    assert project([(0.0, 1.0), (1.0, 2.0)], 0) is None


@settings(max_examples=60, deadline=None)
@given(v0=st.floats(0, 1e4), rate=st.floats(0.01, 100), dt=st.floats(0.5, 60), n=st.integers(4, 12))
def test_linear_projection_recovers_rate(v0, rate, dt, n):
    pts = [(i * dt, v0 + rate * i * dt) for i in range(n)]
    limit = pts[-1][1] + 1000
    p = project(pts, limit, window=n)
    assert p.rate == pytest.approx(rate, rel=1e-6, abs=1e-6)
    assert p.ttl_linear_s == pytest.approx(1000 / rate, rel=1e-5)


# ---------------------------------------------------------------------- early warning

def grow(job="7", n=10, dt=1.0, start=50.0, step=10.0, limit=200.0):
    return [JobSample(job_id=job, node="n1", ts=1000 + i * dt, cluster="c", cg_mem_mb=start + step * i,
                      cg_mem_limit_mb=limit, extra={"cg_ws_mb": start + step * i}) for i in range(n)]


def test_warns_once_per_job_before_the_limit():
    ew = EarlyWarning(WarningPolicy(threshold_s=900))
    events = []
    for s in grow():
        events += [(s.ts, e) for e in ew.observe([s])]
    assert len(events) == 1
    ts, ev = events[0]
    assert ev.kind == "memory_projection" and ev.job_id == "7"
    assert ts == 1003.0                                   # as soon as 4 consistent samples exist
    assert ev.detail["ttl_s"] == pytest.approx(12.0)           # 80 of 200 MiB at 10 MiB/s
    assert "hit the limit" in ev.detail["message"]


def test_no_warning_without_limit_or_far_from_it():
    ew = EarlyWarning(WarningPolicy(threshold_s=900))
    for s in grow(limit=None):
        assert ew.observe([s]) == []
    ew = EarlyWarning(WarningPolicy(threshold_s=60))
    for s in grow(step=0.01, limit=100000):             # ~16 days away
        assert ew.observe([s]) == []


def test_series_scorer_hook_gets_the_series():
    seen = []

    def scorer(series):
        seen.append(len(series))
        return 0.9 if len(series) >= 3 else 0.1
    ew = EarlyWarning(WarningPolicy(threshold_s=0.0001), series_scorer=scorer)
    kinds = [e.kind for s in grow(n=5) for e in ew.observe([s])]
    assert kinds == ["series_risk"] and seen == [1, 2, 3, 4, 5]


def test_notifier_fires_once_per_job_and_survives_failures(tmp_path, monkeypatch):
    calls = []

    def fake_run(argv, timeout, **kw):
        calls.append(argv)
    monkeypatch.setattr(warning_mod, "run_command", fake_run)
    n = Notifier("/usr/bin/notify-admin --to 'ops team'", tmp_path)
    ew = EarlyWarning()
    events = [e for s in grow() for e in ew.observe([s])]
    n.notify(events[0])
    n.notify(events[0])
    Notifier("/usr/bin/notify-admin --to 'ops team'", tmp_path).notify(events[0])  # after a restart
    assert len(calls) == 1 and calls[0][:3] == ["/usr/bin/notify-admin", "--to", "ops team"]
    assert calls[0][3:5] == ["7", "memory_projection"] and events[0].notified

    from nomade.errors import SlurmCommandError

    def failing(argv, timeout, **kw):
        raise SlurmCommandError(argv, 1, "boom")
    monkeypatch.setattr(warning_mod, "run_command", failing)
    ev2 = [e for s in grow(job="8") for e in ew.observe([s])][0]
    Notifier("notify", tmp_path).notify(ev2)
    assert not ev2.notified and "boom" in ev2.detail["notify_error"]


def test_notifier_markers_are_private(tmp_path, monkeypatch):
    import os
    monkeypatch.setattr(warning_mod, "run_command", lambda argv, timeout, **kw: None)
    old = os.umask(0o022)
    try:
        ew = EarlyWarning()
        ev = [e for s in grow() for e in ew.observe([s])][0]
        Notifier("notify", tmp_path / "spool").notify(ev)
    finally:
        os.umask(old)
    markers = list((tmp_path / "spool" / "notified").iterdir())
    assert len(markers) == 1 and markers[0].stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "spool" / "notified").stat().st_mode & 0o777 == 0o700
