"""The alert engine's states and memory (issue 15, items 2 and 4): hysteresis, hold times,
restarts, acknowledgements, silences, no-data, resolution, a dead channel kept and retried, the
prediction rules, the black-hole rule."""

import json

import pytest

from nomade.alerts.channels.base import Channel
from nomade.alerts.engine import Engine
from nomade.alerts.notification import DeliveryError
from nomade.alerts.rules import RuleSet, rules_from_doc
from nomade.collectors.base import Metric
from nomade.config import load_config
from nomade.store import alerts as sa
from nomade.store import metrics as sm
from nomade.store.db import open_store

T0 = 1_800_000_000.0


class Fake(Channel):
    name = "fake"

    def __init__(self, name="fake", dead=False):
        self.name, self.dead, self.got = name, dead, []

    def send(self, group, timeout_s):
        if self.dead:
            raise DeliveryError(f"{self.name}: connection refused")
        self.got.append(group)


@pytest.fixture
def env(tmp_path, store_target):
    cfg = load_config(None, {"data_dir": str(tmp_path)})
    store = open_store(store_target)           # SQLite, then PostgreSQL (tests/pg_fixture.py)
    yield cfg, store
    store.close()


def rules(text):
    try:
        import tomllib
    except ImportError:                         # Python 3.9
        import tomli as tomllib
    return RuleSet(rules_from_doc(tomllib.loads(text), "test.toml"))


DISK = """
[[rule]]
name = "disk_full"
metric = "disk.used_bytes"
divide_by = "disk.size_bytes"
scale = 100.0
unless = "disk.read_only"
threshold = 85
clear = 80
unit = "percent"
key_labels = ["mount"]
summary = "{mount} {value_words} full"
"""


def engine(cfg, store, text=DISK, channels=None, **kw):
    e = Engine(cfg, store, rules=rules(text), channels=channels if channels is not None else [Fake()], **kw)
    e.backoff_s = (0.0,)
    return e


def disk(store, t, used, size=100.0, ro=0, mount="/scratch"):
    sm.write_cycle(store, "local", "disk", [
        Metric.of("disk.used_bytes", used, mount=mount, fstype="ext4"),
        Metric.of("disk.size_bytes", size, mount=mount, fstype="ext4"),
        Metric.of("disk.read_only", ro, mount=mount, fstype="ext4")], t)
    sm.record_run(store, "disk", t, True, "", 0.01, 3)


def statuses(e):
    return [(n.status, n.severity) for g in e.channels()[0].got for n in g.notifications]


def test_flapping_input_produces_one_alert(env):
    cfg, store = env
    e = engine(cfg, store)
    for i, used in enumerate([50, 86, 84, 86, 83, 86, 84, 86]):
        disk(store, T0 + 60 * i, used)
        e.evaluate(now=T0 + 60 * i)
    assert statuses(e) == [("firing", "warning")]
    assert len(sa.list_alerts(store)) == 1
    disk(store, T0 + 600, 70)
    e.evaluate(now=T0 + 600)
    assert statuses(e) == [("firing", "warning"), ("resolved", "warning")]
    assert sa.list_alerts(store)[0]["state"] == "resolved"


def test_hold_time_delays_firing(env):
    cfg, store = env
    e = engine(cfg, store, DISK + 'for = "5m"\n')
    for i in range(5):
        disk(store, T0 + 60 * i, 90)
        e.evaluate(now=T0 + 60 * i)
    assert statuses(e) == []
    assert list(sa.open_alerts(store).values())[0]["state"] == "pending"
    disk(store, T0 + 300, 90)
    e.evaluate(now=T0 + 300)
    assert statuses(e) == [("firing", "warning")]


def test_pending_that_clears_leaves_nothing(env):
    cfg, store = env
    e = engine(cfg, store, DISK + 'for = "5m"\n')
    disk(store, T0, 90)
    e.evaluate(now=T0)
    disk(store, T0 + 60, 10)
    e.evaluate(now=T0 + 60)
    assert sa.open_alerts(store) == {} and sa.list_alerts(store) == [] and statuses(e) == []


def test_restart_while_firing_resends_nothing(env):
    cfg, store = env
    e1 = engine(cfg, store)
    disk(store, T0, 90)
    e1.evaluate(now=T0)
    assert statuses(e1) == [("firing", "warning")]
    e2 = engine(cfg, store)                     # a new daemon over the same store
    for i in range(1, 5):
        disk(store, T0 + 60 * i, 90)
        e2.evaluate(now=T0 + 60 * i)
    assert statuses(e2) == []
    disk(store, T0 + 600, 10)
    e2.evaluate(now=T0 + 600)
    assert statuses(e2) == [("resolved", "warning")]   # it still remembers the firing alert


def test_repeat_interval_then_ack_stops_repeats(env):
    cfg, store = env
    e = engine(cfg, store)
    disk(store, T0, 90)
    e.evaluate(now=T0)
    t = T0 + 4 * 3600 + 1                       # warning repeats every 4 h by default
    disk(store, t, 90)
    e.evaluate(now=t)
    assert statuses(e) == [("firing", "warning")] * 2
    aid = list(sa.open_alerts(store).values())[0]["id"]
    assert sa.ack(store, aid, t, None, "root", "looking at it")
    for k in range(2, 5):
        disk(store, t + k * 4 * 3600, 90)
        e.evaluate(now=t + k * 4 * 3600)
    assert len(statuses(e)) == 2
    disk(store, t + 20 * 3600, 10)
    e.evaluate(now=t + 20 * 3600)
    assert statuses(e)[-1] == ("resolved", "warning")


def test_ack_with_expiry_repeats_after_it(env):
    cfg, store = env
    e = engine(cfg, store)
    disk(store, T0, 90)
    e.evaluate(now=T0)
    aid = list(sa.open_alerts(store).values())[0]["id"]
    sa.ack(store, aid, T0, T0 + 5 * 3600, "root", "")
    disk(store, T0 + 4.5 * 3600, 90)
    e.evaluate(now=T0 + 4.5 * 3600)
    assert len(statuses(e)) == 1
    disk(store, T0 + 5.5 * 3600, 90)
    e.evaluate(now=T0 + 5.5 * 3600)
    assert len(statuses(e)) == 2


def test_silence_stops_notifications_until_it_ends(env):
    cfg, store = env
    e = engine(cfg, store)
    sa.add_silence(store, {"rule": "disk_full", "mount": "/scratch"}, T0, T0 + 3600, "root", "")
    disk(store, T0, 90)
    e.evaluate(now=T0)
    disk(store, T0 + 1800, 90, mount="/home")       # another mount is not silenced
    disk(store, T0 + 1800, 90)
    e.evaluate(now=T0 + 1800)
    got = [n.labels["mount"] for g in e.channels()[0].got for n in g.notifications]
    assert got == ["/home"]
    disk(store, T0 + 3700, 90)
    disk(store, T0 + 3700, 90, mount="/home")
    e.evaluate(now=T0 + 3700)
    got = [n.labels["mount"] for g in e.channels()[0].got for n in g.notifications]
    assert got == ["/home", "/scratch"]


def test_read_only_filesystem_is_not_alerted(env):
    cfg, store = env
    e = engine(cfg, store)
    disk(store, T0, 99, ro=1)
    e.evaluate(now=T0)
    assert statuses(e) == []


def test_collector_that_stops_reporting_raises_nodata(env):
    cfg, store = env
    text = DISK + """
[[rule]]
name = "collector_down"
kind = "collector"
threshold = 0
summary = "collector {collector} {problem}"
"""
    e = engine(cfg, store, text)
    disk(store, T0, 90)
    e.evaluate(now=T0)
    assert statuses(e) == [("firing", "warning")]
    e.evaluate(now=T0 + 3600)                   # nothing written for an hour (interval 300 s)
    got = [(n.rule, n.status) for g in e.channels()[0].got for n in g.notifications]
    assert ("disk_full", "nodata") in got and ("collector_down", "nodata") in got
    states = {r["rule"]: r["state"] for r in sa.open_alerts(store).values()}
    assert states == {"disk_full": "nodata", "collector_down": "nodata"}   # never a silent resolve
    words = sorted(n.summary for g in e.channels()[0].got for n in g.notifications if n.status == "nodata")
    assert words == ["collector disk has not reported for 1 hour",
                     "no data from disk for 1 hour; last: /scratch 90% full"]
    disk(store, T0 + 3660, 90)
    e.evaluate(now=T0 + 3660)
    states = {r["rule"]: r["state"] for r in sa.open_alerts(store).values()}
    assert states == {"disk_full": "firing"}


def test_collector_failure_is_an_error_state(env):
    cfg, store = env
    e = engine(cfg, store, """
[[rule]]
name = "collector_down"
kind = "collector"
threshold = 0
summary = "collector {collector} {problem}"
""")
    sm.record_run(store, "disk", T0, True, "", 0.1, 3)
    sm.record_run(store, "disk", T0 + 60, False, "OSError: boom\nline", 0.1, 0)
    e.evaluate(now=T0 + 61)
    [n] = [n for g in e.channels()[0].got for n in g.notifications]
    assert n.status == "error" and "boom" in n.summary and "\n" not in n.summary


def test_dead_channel_is_kept_and_retried_while_the_other_delivers(env):
    cfg, store = env
    good, dead = Fake("good"), Fake("dead", dead=True)
    e = engine(cfg, store, channels=[good, dead])
    disk(store, T0, 90)
    res = e.evaluate(now=T0)
    assert len(good.got) == 1
    assert {d["channel"]: d["ok"] for d in res.deliveries} == {"good": True, "dead": False}
    [u] = sa.undelivered(store)
    assert u["channel"] == "dead" and "refused" in u["error"] and not u["done"]
    e.evaluate(now=T0 + 10)                     # not due yet (backoff)
    assert sa.undelivered(store)[0]["attempts"] == u["attempts"]
    dead.dead = False
    res = e.evaluate(now=T0 + 400)
    assert [(d["channel"], d["ok"]) for d in res.deliveries] == [("dead", True)]
    assert len(dead.got) == 1 and len(good.got) == 1 and sa.undelivered(store) == []


def test_cooldown_delays_a_refire(env):
    cfg, store = env
    e = engine(cfg, store)
    disk(store, T0, 90)
    e.evaluate(now=T0)
    disk(store, T0 + 60, 10)
    e.evaluate(now=T0 + 60)
    disk(store, T0 + 120, 90)
    e.evaluate(now=T0 + 120)                    # warning cooldown 15 min: waits
    assert statuses(e) == [("firing", "warning"), ("resolved", "warning")]
    disk(store, T0 + 1000, 90)
    e.evaluate(now=T0 + 1000)
    assert statuses(e)[-1] == ("firing", "warning")


def test_disk_projection_fires_with_words(env):
    cfg, store = env
    text = """
[[rule]]
name = "disk_fill"
metric = "disk.used_bytes"
measure = "ttl"
limit_metric = "disk.size_bytes"
op = "<"
levels = { warning = 259200, critical = 86400 }
window = "72h"
unit = "seconds"
key_labels = ["mount"]
summary = "{mount} {percent} full, full in about {value_words} {pace}"
"""
    e = engine(cfg, store, text)
    size = 1e12
    for h in range(0, 48, 2):                   # accelerating use: 2 days of samples
        t = T0 + h * 3600
        disk(store, t, 0.3 * size + 0.00015 * size * h * h, size=size)
    e.evaluate(now=T0 + 46 * 3600)
    [n] = [n for g in e.channels()[0].got for n in g.notifications]
    assert n.status == "firing" and "full in about" in n.summary and "acceleration" in n.summary


def test_bad_rule_at_runtime_is_an_error_alert_and_others_go_on(env, monkeypatch):
    cfg, store = env
    from nomade.alerts import evaluate
    def boom(p, rule, w):
        raise ValueError("broken\ninput")
    monkeypatch.setitem(evaluate.KINDS, "blackhole", boom)
    e = engine(cfg, store, DISK + """
[[rule]]
name = "bh"
kind = "blackhole"
threshold = 0
""")
    disk(store, T0, 90)
    e.evaluate(now=T0)
    got = sorted((n.rule, n.status) for g in e.channels()[0].got for n in g.notifications)
    assert got == [("bh", "error"), ("disk_full", "firing")]


PRED = """
[[rule]]
name = "high_risk_job"
kind = "high_risk"
severity = "info"
threshold = 0.6
send_resolved = false
summary = "job {job_id} of {user} scored {value_words} risk ({level}) at {stage}"

[[rule]]
name = "early_warning"
kind = "early_warning"
threshold = 0
send_resolved = false
summary = "{message}"
"""


def _score(store, job, risk, t):
    from nomade.store.scores import Score, write_score
    with store.transaction() as conn:
        write_score(conn, Score("local", job, "submit", "v1", risk, "HIGH", "[]", t))


def test_prediction_events_fire_once_and_the_owner_gets_the_early_warning(env, tmp_path):
    cfg = load_config(None, {"data_dir": str(tmp_path), "alerts.notify_job_owner": True,
                             "alerts.owner_email_domain": "example.org"})
    store = env[1]
    e = engine(cfg, store, PRED)
    _score(store, "81233", 0.3, T0)
    _score(store, "81234", 0.9, T0)
    from nomade.jobrecord import JobRecord
    from nomade.store.jobs import upsert_jobs
    upsert_jobs(store, [JobRecord(cluster="local", job_id="81235", user="carol", uid=1003)], "test")
    from nomade.store.recorder import add_events
    detail = {"ttl_s": 720.0, "message": "x\nForged: line"}
    add_events(store, [("local", "81235", "c12", "memory_projection", T0, json.dumps(detail), 0)])
    e.evaluate(now=T0 + 5, kinds=("high_risk", "early_warning"))
    e.evaluate(now=T0 + 65, kinds=("high_risk", "early_warning"))
    notes = [n for g in e.channels()[0].got for n in g.notifications]
    assert sorted(n.rule for n in notes) == ["early_warning", "high_risk_job"]
    hr = [n for n in notes if n.rule == "high_risk_job"][0]
    assert "81234" in hr.summary and "90%" in hr.summary and hr.owner_email is None
    ew = [n for n in notes if n.rule == "early_warning"][0]
    assert ew.summary == "carol's job 81235 on c12 will hit its memory limit in about 12 minutes"
    assert ew.owner_email == "carol@example.org" and hr.owner_email is None    # the user's own warning
    e.evaluate(now=T0 + 2 * 86400, kinds=("high_risk", "early_warning"))   # out of the window
    assert len([n for g in e.channels()[0].got for n in g.notifications]) == 2   # resolved silently
    assert sa.open_alerts(store) == {}


def test_blackhole_node(env):
    cfg, store = env
    from nomade.jobrecord import JobRecord
    from nomade.store.jobs import upsert_jobs
    recs = []
    for i in range(40):     # a month of mostly fine jobs on c01 and c02
        recs.append(JobRecord(cluster="local", job_id=str(100 + i), user="alice", partition="cpu",
                              state="COMPLETED" if i % 10 else "FAILED", is_final=True, alloc_nodes=1,
                              node_list="c01" if i % 2 else "c02", end_time=T0 - 86400 * (1 + i % 20)))
    for i in range(6):      # now c01 kills everything
        recs.append(JobRecord(cluster="local", job_id=str(200 + i), user="bob", partition="cpu",
                              state="FAILED", is_final=True, alloc_nodes=1, node_list="c01",
                              end_time=T0 - 600))
    upsert_jobs(store, recs, "test")
    e = engine(cfg, store, """
[[rule]]
name = "blackhole"
kind = "blackhole"
severity = "critical"
threshold = 0
window = "2h"
params = { min_jobs = 5, factor = 3.0, min_rate = 0.5, usual_days = 30 }
summary = "{kind} {name}: {value_words} failed (usually {usual})"
""")
    e.evaluate(now=T0)
    got = [(n.labels["kind"], n.labels["name"]) for g in e.channels()[0].got for n in g.notifications]
    assert ("node", "c01") in got and ("node", "c02") not in got


def test_hostile_labels_stay_one_line(env):
    cfg, store = env
    e = engine(cfg, store, """
[[rule]]
name = "node_down"
metric = "nodes.state"
labels = { state = "~(down|drain|fail)" }
op = ">="
threshold = 1
key_labels = ["node"]
summary = "node {node} {state}: {reason}"
""")
    reason = "ECC errors\nSubject: forged\x1b[31m {0.__class__} %s"
    sm.write_cycle(store, "local", "nodes", [
        Metric.of("nodes.state", 1, node="c12", state="idle+drain", reason=reason),
        Metric.of("nodes.state", 1, node="c13", state="idle", reason="")], T0)
    e.evaluate(now=T0)
    [n] = [n for g in e.channels()[0].got for n in g.notifications]
    assert n.labels["node"] == "c12" and "\n" not in n.summary
    assert n.summary.startswith("node c12 idle+drain: ECC errors Subject: forged") and "{0.__class__}" in n.summary
    sm.write_cycle(store, "local", "nodes", [        # the drain is cleared: its series stops
        Metric.of("nodes.state", 1, node="c12", state="idle", reason=""),
        Metric.of("nodes.state", 1, node="c13", state="idle", reason="")], T0 + 120)
    e.evaluate(now=T0 + 120)                           # the nodes collector's next run (120 s)
    assert [n.status for g in e.channels()[0].got for n in g.notifications] == ["firing", "resolved"]


def test_ingest_of_a_high_risk_score_raises_its_alert(env, tmp_path):
    from nomade.alerts.engine import after_prediction_ingest
    cfg, store = env
    lines = []
    import time as _time
    _score(store, "555", 0.95, _time.time() - 3 * 86400)       # older than alerts.event_window_h
    _score(store, "556", 0.97, _time.time())
    res = after_prediction_ingest(cfg, store, lines.append)     # no channel enabled: kept in the store
    assert res is not None and lines == []
    [a] = sa.list_alerts(store)
    assert a["rule"] == "high_risk_job" and a["labels"]["job_id"] == "556" and a["state"] == "firing"
    off = load_config(None, {"data_dir": str(tmp_path), "alerts.enabled": False})
    assert after_prediction_ingest(off, store, lines.append) is None


def test_an_ack_given_while_a_pass_runs_is_not_overwritten(env, monkeypatch):
    cfg, store = env
    e = engine(cfg, store)
    disk(store, T0, 90)
    e.evaluate(now=T0)
    aid = list(sa.open_alerts(store).values())[0]["id"]
    real = sa.open_alerts

    def read_then_ack(s):
        rows = real(s)                          # the pass has read the alert ...
        sa.ack(s, aid, T0 + 30, None, "root", "mine")   # ... when an admin acknowledges it
        return rows
    monkeypatch.setattr(sa, "open_alerts", read_then_ack)
    disk(store, T0 + 60, 97)                    # and the pass changes the row (its words)
    e.evaluate(now=T0 + 60)
    monkeypatch.setattr(sa, "open_alerts", real)
    row = sa.get_alert(store, aid)
    assert row["summary"] == "/scratch 97% full" and row["acked_by"] == "root" and row["ack_note"] == "mine"


def test_series_cache_follows_cycles_and_windows_match_the_store(env):
    from nomade.alerts.series import SeriesCache
    cfg, store = env
    cache = SeriesCache(store)
    for i in range(10):
        disk(store, T0 + 60 * i, 10 + i)
    cache.ensure(T0 + 540)
    [sid] = [r["id"] for r in cache.rows if r["metric"] == "disk.used_bytes"]
    first = cache.windows({sid: T0 + 120})[sid]
    assert [v for _, v in first] == [12, 13, 14, 15, 16, 17, 18, 19]
    for i in range(10, 14):                      # four more cycles, taken from memory
        t = T0 + 60 * i
        ms = [Metric.of("disk.used_bytes", 10 + i, mount="/scratch", fstype="ext4"),
              Metric.of("disk.size_bytes", 100.0, mount="/scratch", fstype="ext4"),
              Metric.of("disk.read_only", 0, mount="/scratch", fstype="ext4")]
        sm.write_cycle(store, "local", "disk", ms, t)
        cache.update("local", "disk", ms, t)
    assert not cache.stale
    row = cache.by_key[("local", "disk.used_bytes", "", sm.labels_text({"mount": "/scratch", "fstype": "ext4"}))]
    assert row["value"] == 23 and row["ts"] == T0 + 780
    got = cache.windows({sid: T0 + 400})[sid]
    assert got == sa.window_points(store, [sid], T0 + 400)[sid]
    cache.update("local", "disk", [Metric.of("disk.used_bytes", 1, mount="/new", fstype="ext4")], T0 + 840)
    assert cache.stale                           # a series it does not hold: read the store next time


def test_a_dead_channel_costs_one_groups_retries_per_pass(env):
    cfg, store = env
    calls = []

    class Counting(Fake):
        def send(self, group, timeout_s):
            calls.append(group.key)
            super().send(group, timeout_s)
    good, dead = Fake("good"), Counting("dead", dead=True)
    e = engine(cfg, store, DISK + DISK.replace('name = "disk_full"', 'name = "disk_full2"'), channels=[good, dead])
    disk(store, T0, 90)
    res = e.evaluate(now=T0)
    assert len(good.got) == 2 and len(calls) == e.attempts          # the second group was not tried
    assert sorted((d["channel"], d["ok"]) for d in res.deliveries) == [
        ("dead", False), ("dead", False), ("good", True), ("good", True)]
    assert len(sa.undelivered(store)) == 1 and len(sa.due_deliveries(store, T0 + 3600)) == 2
    dead.dead = False
    disk(store, T0 + 3600, 90)
    e.evaluate(now=T0 + 3600)
    assert len(dead.got) == 2 and sa.due_deliveries(store, T0 + 7200) == []
