"""ZFS: zpool list/status replayed from captured-format fixtures, ARC hit ratio from two
arcstats samples, hostile text, zpool failing, and the skip where ZFS is absent."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from nomade.collectors import zfs
from nomade.collectors.base import CollectContext, CollectorSkipped
from nomade.errors import SlurmCommandError

MON = Path(__file__).resolve().parents[1] / "fixtures" / "monitoring"
LIST = (MON / "zpool_list_Hp_tank_online_scratch_degraded.txt").read_text()
STATUS = (MON / "zpool_status_p_scratch_degraded_cksum_errors.txt").read_text()


def _run(argv, timeout, **kw):
    assert timeout > 0 and argv[0] == "/sbin/zpool"
    return SimpleNamespace(stdout=LIST if argv[1] == "list" else STATUS, rc=0)


def _ctx(proc: Path, run=_run, zpool="/sbin/zpool"):
    return CollectContext(settings={"zpool": zpool} if zpool else {}, run=run, proc=proc,
                          hostname="fs2")


def test_parse_zpool_list():
    pools = zfs.parse_zpool_list(LIST)
    assert [p["name"] for p in pools] == ["tank", "scratch"]          # garbage and "-" rows skipped
    assert pools[0]["size"] == 7980049350656 and pools[1]["capacity"] == 99
    assert pools[1]["health"] == "DEGRADED"


def test_parse_zpool_status_vdev_errors():
    rows = zfs.parse_zpool_status(STATUS)
    faulted = [r for r in rows if r[2] == "FAULTED"]
    assert faulted == [("scratch", "ata-ST2000DM008-2FR102_ZFL0A1B3", "FAULTED", 3, 17, 42)]
    assert ("tank", "sdb", "ONLINE", 0, 0, 2 ** 64 - 1) in rows
    assert not any(r[1] in ("logs", "spares", "sdz") for r in rows)


def test_collector_metrics_and_arc_hit_ratio():
    collector = zfs.ZfsCollector()
    ctx = _ctx(MON / "proc_zfs_arc_sample_a")
    first = {(m.metric, m.label("pool"), m.label("vdev")): m for m in collector.collect(ctx)}
    assert first[("zfs.zpool_responding", "", "")].value == 1
    assert first[("zfs.pool_healthy", "tank", "")].value == 1
    assert first[("zfs.pool_healthy", "scratch", "")].value == 0
    assert first[("zfs.pool_healthy", "scratch", "")].label("health") == "DEGRADED"
    assert first[("zfs.vdev_cksum_errors", "scratch", "ata-ST2000DM008-2FR102_ZFL0A1B3")].value == 42
    assert first[("zfs.arc_size_bytes", "", "")].value == 4294967296
    assert ("zfs.arc_hit_ratio", "", "") not in first                 # the first sample primes
    ctx.proc = MON / "proc_zfs_arc_sample_b"
    second = {m.metric: m.value for m in collector.collect(ctx)}
    assert second["zfs.arc_hit_ratio"] == pytest.approx(90000 / 100000)


def test_arc_counter_reset_gives_no_ratio():
    collector = zfs.ZfsCollector()
    ctx = _ctx(MON / "proc_zfs_arc_sample_b")
    collector.collect(ctx)
    ctx.proc = MON / "proc_zfs_arc_sample_a"
    assert "zfs.arc_hit_ratio" not in {m.metric for m in collector.collect(ctx)}


def test_zpool_failing_is_recorded_not_raised(tmp_path):
    def failing(argv, timeout, **kw):
        raise SlurmCommandError(argv, None, "", message="zpool timed out after 30 s")
    metrics = zfs.ZfsCollector().collect(_ctx(tmp_path, run=failing))
    assert [(m.metric, m.value) for m in metrics] == [("zfs.zpool_responding", 0.0)]


def test_hostile_text():
    assert zfs.parse_zpool_list("ev\x1bil\t1\t1\t1\t1\t1\tONLINE\n\t1\t1\t1\t1\t1\tONLINE\n"
                                "x\t99999999999999999999999\t1\t1\t1\t1\tONLINE\n") == []
    status = ("  pool: p\nconfig:\n\n\tNAME STATE READ WRITE CKSUM\n\tp ONLINE 0 0 0\n"
              "\tsd\x1ba ONLINE 0 0 0\n\tsdb ONLINE x 0 0\n\tsdc ONLINE -1 0 0\n\n"
              "\tsdd ONLINE 5 5 5\n")                                # after the table: ignored
    assert zfs.parse_zpool_status(status) == [("p", "p", "ONLINE", 0, 0, 0)]
    assert zfs.parse_zpool_status("\tNAME STATE READ WRITE CKSUM\n\tx ONLINE 1 1 1\n") == []
    assert zfs.parse_arcstats("hits 4 x\nmisses 4 -1\nsize 4 10\n\x00\n") == {"size": 10}


def test_skipped_where_zfs_is_absent(tmp_path, monkeypatch):
    monkeypatch.setattr(zfs.shutil, "which", lambda name: None)
    with pytest.raises(CollectorSkipped, match="ZFS not installed"):
        zfs.ZfsCollector().collect(_ctx(tmp_path, zpool=None))
