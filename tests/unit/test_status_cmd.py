"""`nomade disk` and `nomade status` on stores filled through store.metrics.write_cycle
(docs/monitoring.md "Status and disk commands")."""

import json

import pytest
from click.testing import CliRunner

from nomade.analysis import ACCELERATING, Analysis
from nomade.cli.main import cli
from nomade.collectors.base import Metric
from nomade.errors import NomadeError
from nomade.store import metrics as sm
from nomade.store.db import open_store

DAY = 86400.0
HOUR = 3600.0
NOW = 1.7646e9
SIZE = 10e12


def scratch_used(days):
    """/scratch (10 TB): 50 % now, +100 GB/day, +10 GB/day^2."""
    return 0.5 * SIZE + 100e9 * days + 5e9 * days * days


def fill(store, with_everything=True):
    for h in range(-72, 1):
        ts = NOW + h * HOUR
        disk = []
        for mount, used in (("/scratch", scratch_used(h / 24.0)), ("/home", 0.2 * SIZE)):
            lab = {"mount": mount, "fstype": "xfs"}
            disk += [Metric.of("disk.size_bytes", SIZE, "fs1", **lab),
                     Metric.of("disk.used_bytes", used, "fs1", **lab),
                     Metric.of("disk.free_bytes", SIZE - used, "fs1", **lab),
                     Metric.of("disk.inodes_total", 1e6, "fs1", **lab),
                     Metric.of("disk.inodes_used", 2.5e5, "fs1", **lab)]
        sm.write_cycle(store, "c1", "disk", disk, ts)
    sm.record_run(store, "disk", NOW, True, "", 0.01, 10)
    if not with_everything:
        return
    sm.write_cycle(store, "c1", "queue", [
        Metric.of("queue.pending", 12, partition="cpu"), Metric.of("queue.running", 30, partition="cpu"),
        Metric.of("queue.pending", 3, partition="gpu"), Metric.of("queue.running", 4, partition="gpu")], NOW)
    sm.write_cycle(store, "c1", "nodes", [
        Metric.of("nodes.state", 1, node="n01", state="idle", reason=""),
        Metric.of("nodes.state", 1, node="n02", state="drained", reason="bad DIMM|slot 3\nx",
                  reason_user="root", reason_time="2026-12-01T10:00:00"),
        Metric.of("nodes.state", 1, node="n03", state="mixed", reason="")], NOW)
    # an old drain that was cleared: an older cycle, must not show
    sm.write_cycle(store, "c1", "nodes", [Metric.of("nodes.state", 1, node="n01", state="drained",
                                                    reason="old")], NOW - DAY)
    sm.write_cycle(store, "c1", "nodestats", [
        Metric.of("node.psi_cpu_some", 5.0, "n01", window="avg10"),
        Metric.of("node.psi_cpu_some", 25.0, "n02", window="avg10"),
        Metric.of("node.psi_cpu_some", 99.0, "n02", window="interval"),
        Metric.of("node.psi_io_some", 1.0, "n01", window="avg10")], NOW)
    sm.write_cycle(store, "c1", "licenses", [
        Metric.of("license.server_up", 1, server="27000@lic", type="flexlm"),
        Metric.of("license.server_up", 0, server="5053@rlm1", type="rlm"),
        Metric.of("license.issued", 10, server="27000@lic", feature="matlab"),
        Metric.of("license.in_use", 7, server="27000@lic", feature="matlab"),
        Metric.of("license.held", 1, server="27000@lic", feature="matlab", user="bob", host="n1")], NOW)
    sm.record_run(store, "gpu", NOW, False, "no nvidia driver", 0.0, 0, state="skipped")
    sm.record_run(store, "queue", NOW, False, "squeue timed out after 30 s", 30.0, 0)


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "data" / "nomade.db"
    path.parent.mkdir()
    with open_store(path) as store:
        fill(store)
    return path


def test_other_clusters_never_mix(store_path):
    with open_store(store_path) as store:
        assert Analysis(store, cluster="c2").status().filesystems is None
    res = CliRunner().invoke(cli, ["--data-dir", str(store_path.parent), "disk", "/scratch"],
                             env={"NOMADE_CLUSTER": "c2"})
    assert res.exit_code == 1 and isinstance(res.exception, NomadeError)


def test_disk_trend_from_the_store(store_path):
    with open_store(store_path) as store:
        d = Analysis(store).disk("/scratch/alice/run1")
        home = Analysis(store).disk("/home")
        with pytest.raises(NomadeError, match="no disk metrics for /nowhere"):
            Analysis(store).disk("/nowhere")
    assert d.mount == "/scratch" and d.used_percent == pytest.approx(50.0)
    assert d.trend.trend == ACCELERATING
    assert d.trend.rate_per(DAY) == pytest.approx(100e9, rel=1e-6)
    full_days = (-100 + (100 ** 2 + 4 * 5 * 5000) ** 0.5) / (2 * 5)                # 5e12 B to go
    assert d.trend.ttl_s / DAY == pytest.approx(full_days, rel=1e-6)
    assert d.inodes_used_percent == pytest.approx(25.0)
    assert d.sentence == ("/scratch: 50 % used, filling at 100 GB/day and accelerating: full in about "
                          f"{round(full_days)} days (linear: 50 days)")
    assert home.sentence == "/home: 20 % used, stable"


def run(store_path, *args):
    res = CliRunner().invoke(cli, ["--data-dir", str(store_path.parent), *args], env={"NOMADE_CLUSTER": "c1"})
    assert res.exit_code == 0, res.output
    return res.output


def test_disk_command_words_and_json(store_path):
    out = run(store_path, "disk", "/scratch")
    assert out.startswith("/scratch: 50 % used, filling at 100 GB/day and accelerating")
    assert "95 % band" in out
    d = json.loads(run(store_path, "disk", "/scratch", "--json", "--hours", "24"))
    assert d["mount"] == "/scratch" and d["trend"]["trend"] == "accelerating"
    assert d["trend"]["rate_per_day"] == pytest.approx(100e9, rel=1e-6) and d["window_s"] == DAY


def test_status_overview(store_path):
    out = run(store_path, "status")
    assert "/scratch: 50 % used" in out and "[##########..........]" in out
    assert "cpu" in out and "12" in out and "30" in out
    assert "3 nodes: " in out and "n02" in out and "bad DIMM|slot 3" in out and "old" not in out
    assert "node.psi_cpu_some" in out and "max    25.00 (n02)" in out
    assert "GPUs: no gpu collector wrote gpus metrics" in out
    assert "server 5053@rlm1 (rlm) DOWN" in out and "27000@lic (flexlm)" not in out
    assert "matlab               7 of 10    in use  (27000@lic)" in out and "bob" not in out
    assert "gpu          skipped  last run" in out and ": no nvidia driver" in out
    assert "queue        FAILED   last run" in out and "squeue timed out after 30 s" in out
    rep = json.loads(run(store_path, "status", "--json"))
    assert rep["queue"] == [{"partition": "cpu", "pending": 12, "running": 30},
                            {"partition": "gpu", "pending": 3, "running": 4}]
    assert rep["nodes"]["by_state"] == {"idle": 1, "drained": 1, "mixed": 1}
    assert rep["gpus"] is None and "gpus" in rep["omitted"]
    assert rep["collectors"]["disk"]["ok"] is True
    assert rep["licenses"]["features"] == [{"server": "27000@lic", "feature": "matlab", "issued": 10.0,
                                            "in_use": 7.0, "queued": None}]


def test_status_escapes_control_characters(store_path):
    out = run(store_path, "status")
    assert "bad DIMM|slot 3\\x0ax (root 2026-12-01T10:00:00)" in out


def test_status_on_an_empty_store_says_what_is_missing(tmp_path):
    open_store(tmp_path / "nomade.db").close()
    out = run(tmp_path / "nomade.db", "status")
    for line in ("Filesystems: no disk collector wrote filesystems metrics",
                 "Queue: no queue collector", "Collectors: no collector has run yet"):
        assert line in out


def test_an_empty_queue_is_empty_not_missing(tmp_path):
    """The queue collector ran and saw no job (it writes only queue.stuck then): the section says
    the queue is empty, not that no collector wrote it."""
    with open_store(tmp_path / "nomade.db") as store:
        sm.write_cycle(store, "c1", "queue", [Metric.of("queue.stuck", 0)], NOW)
    out = run(tmp_path / "nomade.db", "status")
    assert "Queue\n  empty: no job pending or running" in out
    rep = json.loads(run(tmp_path / "nomade.db", "status", "--json"))
    assert rep["queue"] == [] and "queue" not in rep["omitted"]


def test_disk_without_metrics_is_one_error_line(tmp_path):
    path = tmp_path / "nomade.db"
    with open_store(path) as store:
        fill(store, with_everything=False)
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "disk", "/nowhere"],
                             env={"NOMADE_CLUSTER": "c1"})
    assert res.exit_code == 1 and isinstance(res.exception, NomadeError)
    assert "filesystems collected: /home, /scratch" in res.exception.hint


def test_python_api_gives_plain_data(store_path):
    from nomade import Nomade
    with Nomade(overrides={"data_dir": str(store_path.parent), "cluster": "c1"}) as nm:
        d = nm.analysis.disk("/scratch")
    assert d.mount == "/scratch" and d.trend.trend == ACCELERATING
    assert json.loads(json.dumps(d.as_dict()))["sentence"] == d.sentence


def test_watch_redraws_until_interrupted(store_path, monkeypatch):
    import nomade.cli.status_cmd as status_cmd
    naps = []

    def nap(seconds):
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(status_cmd.time, "sleep", nap)
    out = run(store_path, "status", "--watch", "5")
    assert naps == [5.0, 5.0] and out.count("Filesystems") == 2     # draw, nap, draw, Ctrl-C


def test_trend_reads_across_the_hourly_rollups(tmp_path):
    """Raw samples pruned into hourly averages (store.metrics.prune) still give the trend."""
    with open_store(tmp_path / "nomade.db") as store:
        lab = {"mount": "/scratch", "fstype": "xfs"}
        for m in range(-10 * 24 * 6, 1):                    # 10 days, every 10 minutes
            ts = NOW + m * 600.0
            sm.write_cycle(store, "c1", "disk", [Metric.of("disk.size_bytes", SIZE, "fs1", **lab),
                                                 Metric.of("disk.used_bytes", scratch_used(ts / DAY - NOW / DAY),
                                                           "fs1", **lab)], ts)
        sm.prune(store, NOW, raw_days=2, rollup_days=400)
        d = Analysis(store, cluster="c1").disk("/scratch", hours=8 * 24)
    assert d.trend.n > 2 * 24 * 6 + 100          # the raw 2 days (289 samples) and ~6 days of hours
    assert d.trend.trend == ACCELERATING
    assert d.trend.rate_per(DAY) == pytest.approx(100e9, rel=1e-3)       # hourly means of a curve
    assert d.trend.accel_per(DAY) == pytest.approx(10e9, rel=1e-2)


def test_hostile_mount_and_labels_are_escaped(tmp_path):
    with open_store(tmp_path / "nomade.db") as store:
        lab = {"mount": "/scr\x1b[2Jatch\n", "fstype": "xfs"}
        sm.write_cycle(store, "c1", "disk", [Metric.of("disk.size_bytes", SIZE, "fs1", **lab),
                                             Metric.of("disk.used_bytes", SIZE / 2, "fs1", **lab)], NOW)
        sm.write_cycle(store, "c1", "gpu", [Metric.of("gpu.util_pct", 50, "n\x07", gpu=0,
                                                      uuid="GPU-1", name="H200\r")], NOW)
    out = run(tmp_path / "nomade.db", "status")
    assert "/scr\\x1b[2Jatch\\x0a: 50 % used" in out and "n\\x07 gpu=0" in out
    assert "\x1b" not in out and "\x07" not in out and "GPU-1" not in out


def test_queue_nodes_licenses_sections(store_path):
    """`nomade queue`, `nodes`, `licenses`: one section of status in full (text escaped)."""
    with open_store(store_path) as store:
        sm.write_cycle(store, "c1", "queue", [
            Metric.of("queue.pending", 12, partition="cpu"), Metric.of("queue.running", 30, partition="cpu"),
            Metric.of("queue.pending_by_reason", 9, partition="cpu", reason="Priority"),
            Metric.of("queue.pending_by_reason", 3, partition="cpu", reason="Resources\x1b[2J"),
            Metric.of("queue.wait_p50_s", 600), Metric.of("queue.wait_p90_s", 7200),
            Metric.of("queue.wait_max_s", 3 * DAY), Metric.of("queue.stuck", 2)], NOW + 1)
        sm.write_cycle(store, "c1", "licenses", [
            Metric.of("license.server_up", 1, server="27000@lic", type="flexlm"),
            Metric.of("license.issued", 10, server="27000@lic", feature="matlab"),
            Metric.of("license.in_use", 7, server="27000@lic", feature="matlab"),
            Metric.of("license.expires_ts", 1798761600, server="27000@lic", feature="matlab")], NOW + 1)
    out = run(store_path, "queue")
    assert "cpu" in out and "9  Priority (cpu)" in out and "Resources\\x1b[2J" in out and "\x1b" not in out
    assert "2 stuck" in out and "median 10 min" in out and "longest 3 days" in out
    q = json.loads(run(store_path, "queue", "--json"))
    assert q["reasons"][0] == {"partition": "cpu", "reason": "Priority", "jobs": 9}
    out = run(store_path, "nodes")
    assert "n02" in out and "bad DIMM|slot 3\\x0ax" in out
    assert json.loads(run(store_path, "nodes", "--json"))["total"] == 3
    out = run(store_path, "licenses")
    assert "matlab" in out and "7 of 10" in out and "expires 2027-01-01" in out
    assert "server 27000@lic (flexlm) up" in out


def test_sections_without_metrics_say_what_to_do(tmp_path):
    path = tmp_path / "data" / "nomade.db"
    path.parent.mkdir()
    open_store(path).close()
    out = run(path, "licenses")
    assert "no licenses metrics yet" in out and "[collectors.licenses]" in out
