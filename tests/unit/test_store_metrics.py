"""store.metrics: the monitoring time series - write one cycle, read series and latest values,
collector health, rollups and retention; two clusters never mix."""

import pytest

from nomade.collectors.base import Metric
from nomade.store import metrics as sm
from nomade.store.db import open_store

T0 = 1_700_000_000.0 - (1_700_000_000 % 3600)   # an hour boundary
DAY = 86400.0


@pytest.fixture()
def store(store_target):
    s = open_store(store_target)
    yield s
    s.close()


def disk(used, mount="/scratch", host="", ts=None):
    return Metric.of("disk.used_bytes", used, host=host, ts=ts, mount=mount)


def test_write_cycle_and_series_select_by_labels_and_window(store):
    for i in range(5):
        n = sm.write_cycle(store, "c1", "disk", [disk(100 + i), disk(7, mount="/home")], T0 + 60 * i)
        assert n == 2
    assert sm.series(store, "disk.used_bytes", cluster="c1", labels={"mount": "/scratch"}) == \
        [(T0 + 60 * i, 100.0 + i) for i in range(5)]
    assert sm.series(store, "disk.used_bytes", labels={"mount": "/scratch"}, since=T0 + 60, until=T0 + 120) == \
        [(T0 + 60, 101.0), (T0 + 120, 102.0)]
    assert len(sm.series(store, "disk.used_bytes")) == 10          # both mounts, merged in time order
    assert sm.series(store, "disk.used_bytes", labels={"mount": "/nope"}) == []
    assert sm.series(store, "no.such_metric") == []


def test_a_metric_with_its_own_time_and_a_repeated_write_replaces(store):
    sm.write_cycle(store, "c1", "disk", [disk(1, ts=T0 - 5)], T0)
    sm.write_cycle(store, "c1", "disk", [disk(2, ts=T0 - 5)], T0)
    assert sm.series(store, "disk.used_bytes") == [(T0 - 5, 2.0)]


def test_two_clusters_never_mix(store):
    sm.write_cycle(store, "c1", "disk", [disk(1)], T0)
    sm.write_cycle(store, "c2", "disk", [disk(2)], T0)
    assert sm.series(store, "disk.used_bytes", cluster="c1") == [(T0, 1.0)]
    assert sm.series(store, "disk.used_bytes", cluster="c2") == [(T0, 2.0)]
    assert [r.value for r in sm.latest(store, "disk.", cluster="c2")] == [2.0]


def test_latest_per_series_with_prefix_and_max_age(store):
    sm.write_cycle(store, "c1", "disk", [disk(1), disk(5, mount="/home")], T0)
    sm.write_cycle(store, "c1", "disk", [disk(2)], T0 + 60)
    sm.write_cycle(store, "c1", "nodes", [Metric.of("nodes.load", 3, host="n1")], T0 + 60)
    rows = sm.latest(store, "disk.", cluster="c1")
    assert [(r.metric, r.labels, r.host, r.ts, r.value) for r in rows] == [
        ("disk.used_bytes", {"mount": "/home"}, "", T0, 5.0),
        ("disk.used_bytes", {"mount": "/scratch"}, "", T0 + 60, 2.0)]
    metric, labels, host, ts, value = rows[0]                      # a plain tuple too
    assert metric == "disk.used_bytes" and labels == {"mount": "/home"}
    assert [r.labels for r in sm.latest(store, "disk.", max_age_s=30, now=T0 + 70)] == [{"mount": "/scratch"}]
    assert [r.host for r in sm.latest(store, "nodes.load")] == ["n1"]
    assert sm.latest(store, "zfs.") == []


def test_collector_health_last_run_and_last_success(store):
    sm.record_run(store, "disk", T0, True, "", 0.1, 3)
    sm.record_run(store, "disk", T0 + 60, False, "RuntimeError: boom", 0.2, 0)
    sm.record_run(store, "gpu", T0, False, "no nvidia driver", 0.0, 0, state="skipped")
    h = sm.collector_health(store)
    assert list(h) == ["disk", "gpu"]
    assert h["disk"] == {"last_run": T0 + 60, "ok": False, "state": "failed", "message": "RuntimeError: boom",
                         "duration_s": 0.2, "n_metrics": 0, "last_success": T0}
    assert h["gpu"]["last_success"] is None and h["gpu"]["state"] == "skipped"   # absent, not broken


def test_prune_rolls_old_samples_into_hours_and_queries_read_them(store):
    # two hours of minute samples ten days ago (values 0..119), then fresh ones
    old = T0 - 10 * DAY
    for i in range(120):
        sm.write_cycle(store, "c1", "disk", [disk(i)], old + 60 * i)
    sm.write_cycle(store, "c1", "disk", [disk(500)], T0)
    sm.record_run(store, "disk", old, True, "", 0.1, 1)
    sm.record_run(store, "disk", old + 60, False, "x", 0.1, 0)
    out = sm.prune(store, T0, raw_days=7, rollup_days=400)
    assert out["rolled_up"] == 120 and out["series_deleted"] == 0
    assert out["runs_deleted"] == 1                                  # the last success stays
    pts = sm.series(store, "disk.used_bytes", labels={"mount": "/scratch"})
    assert pts == [(old + 1800, 29.5), (old + 3600 + 1800, 89.5), (T0, 500.0)]
    assert sm.series(store, "disk.used_bytes", since=old + 3600, until=T0 - 1) == [(old + 5400, 89.5)]
    assert sm.collector_health(store)["disk"]["last_success"] == old
    # pruning again is a no-op; a rollup past rollup_days goes, and the empty series with it
    assert sm.prune(store, T0, 7, 400)["rolled_up"] == 0
    sm.write_cycle(store, "c1", "disk", [disk(1, mount="/tmp", ts=old)], old)
    sm.prune(store, T0, 7, 400)
    out = sm.prune(store, T0 + 30 * DAY, raw_days=7, rollup_days=20)
    assert out["hourly_deleted"] == 4 and out["series_deleted"] == 2        # everything is past 20 days
    assert sm.series(store, "disk.used_bytes", labels={"mount": "/tmp"}) == []


def test_rollups_merge_with_an_hour_already_rolled(store):
    old = T0 - 10 * DAY
    sm.write_cycle(store, "c1", "disk", [disk(10)], old + 10)
    sm.prune(store, T0, 7, 400)
    sm.write_cycle(store, "c1", "disk", [disk(20)], old + 20)     # late samples for that hour
    sm.write_cycle(store, "c1", "disk", [disk(30)], old + 30)
    sm.prune(store, T0, 7, 400)
    assert sm.series(store, "disk.used_bytes") == [(old + 1800, 20.0)]
