"""NFS client statistics from /proc/self/mountstats: two captured-format samples, remounts,
hostile text, and the skips (no mountstats, no NFS mount)."""

import shutil
from pathlib import Path

import pytest

from nomade.collectors import nfs
from nomade.collectors.base import CollectContext, CollectorSkipped

MON = Path(__file__).resolve().parents[1] / "fixtures" / "monitoring"
SAMPLE_A = MON / "mountstats_nfs4_home_and_nfs3_ipv6_sample_a"
SAMPLE_B = MON / "mountstats_nfs4_home_and_nfs3_ipv6_sample_b"


def _proc(tmp_path: Path, name: str, source: Path = None, text: str = None) -> Path:
    root = tmp_path / name
    (root / "self").mkdir(parents=True)
    if source is not None:
        shutil.copy(source, root / "self" / "mountstats")
    if text is not None:
        (root / "self" / "mountstats").write_text(text)
    return root


def _ctx(proc: Path, times, **settings):
    clock = iter(times)
    return CollectContext(settings=settings, run=None, now=lambda: next(clock), proc=proc,
                          hostname="login1")


def _two_cycles(tmp_path, first: Path, second: Path, dt: float = 10.0):
    collector, ctx = nfs.NfsCollector(), _ctx(first, [50.0, 50.0 + dt])
    assert collector.collect(ctx) == []                      # the first sample primes
    ctx.proc = second
    return {(m.metric, m.label("mount"), m.label("op")): m for m in collector.collect(ctx)}


def test_parse_mounts_servers_and_ops():
    mounts = nfs.parse_nfs_ops(SAMPLE_A.read_text())
    assert set(mounts) == {"/home", "/mnt/scratch dir"}         # \040 decoded; proc/rootfs skipped
    assert mounts["/home"]["server"] == "nas01"
    assert mounts["/mnt/scratch dir"]["server"] == "fd00::10"
    assert mounts["/home"]["ops"]["READ"] == (1000, 1000, 3000)


def test_rates_rtt_and_retransmissions(tmp_path):
    got = _two_cycles(tmp_path, _proc(tmp_path, "a", SAMPLE_A), _proc(tmp_path, "b", SAMPLE_B))
    read = got[("nfs.ops_per_s", "/home", "READ")]
    assert read.value == pytest.approx(60.0) and read.label("server") == "nas01"
    assert read.host == "login1"
    assert got[("nfs.retrans_per_s", "/home", "READ")].value == pytest.approx(3.0)   # (630-600)/10
    assert got[("nfs.rtt_ms", "/home", "READ")].value == pytest.approx(1800 / 600)
    assert got[("nfs.ops_per_s", "/home", "GETATTR")].value == pytest.approx(60.0)
    assert got[("nfs.ops_per_s", "/home", "all")].value == pytest.approx(120.0)
    assert got[("nfs.read_bps", "/home", "")].value == pytest.approx(629145600 / 10)
    assert got[("nfs.write_bps", "/home", "")].value == 0.0
    assert ("nfs.rtt_ms", "/home", "WRITE") not in got          # no WRITE in the interval
    assert ("nfs.ops_per_s", "/home", "NULL") not in got        # not in the default op list
    assert got[("nfs.ops_per_s", "/mnt/scratch dir", "all")].value == 0.0


def test_counter_reset_after_remount_gives_no_rate(tmp_path):
    got = _two_cycles(tmp_path, _proc(tmp_path, "a", SAMPLE_B), _proc(tmp_path, "b", SAMPLE_A))
    assert ("nfs.ops_per_s", "/home", "READ") not in got
    assert ("nfs.ops_per_s", "/home", "all") not in got
    assert all(m.value >= 0 for m in got.values())


def test_server_change_primes_again(tmp_path):
    moved = SAMPLE_B.read_text().replace("nas01:/export/home", "nas02:/export/home")
    got = _two_cycles(tmp_path, _proc(tmp_path, "a", SAMPLE_A), _proc(tmp_path, "b", text=moved))
    assert not any(key[1] == "/home" for key in got)


def test_hostile_mountstats():
    text = ("device nas:/x mounted on /evil\\012name\x1b with fstype nfs4 statvers=1.1\n"
            "\tbytes:\t1 2 3 4 5 6 7 8\n\tper-op statistics\n"
            "\t        READ: 1 2 3 4 5 6 7 8 9\n"
            "\t     GETATTR: x 1 1 1 1 1 1 1\n"
            "\t    BAD OP: 1 1 1 1 1 1 1 1\n"
            "\t       WRITE: 18446744073709551616 1 1 1 1 1 1 1\n"
            "\t      COMMIT: -1 1 1 1 1 1 1 1\n"
            "\t        LOOKUP: 1 2\n"
            "device garbage line\n"
            "device a mounted on\n"
            "device b mounted on /b with fstype\n")
    mounts = nfs.parse_nfs_ops(text)
    assert list(mounts) == ["/evil\nname\x1b"]
    assert set(mounts["/evil\nname\x1b"]["ops"]) == {"READ", "WRITE"}
    assert nfs._clean("/evil\nname\x1b") == "/evil?name?"


def test_malformed_bytes_fixture_is_no_throughput(tmp_path):
    legacy = Path(__file__).resolve().parents[1] / "fixtures" / "proc" / "mountstats_malformed_bytes"
    got = _two_cycles(tmp_path, _proc(tmp_path, "a", legacy), _proc(tmp_path, "b", legacy))
    assert not any(key[0] in ("nfs.read_bps", "nfs.write_bps") for key in got)


def test_skipped_without_mountstats_or_nfs(tmp_path):
    with pytest.raises(CollectorSkipped, match="mountstats"):
        nfs.NfsCollector().collect(_ctx(tmp_path, [0.0]))
    local = _proc(tmp_path, "local", text="device /dev/sda1 mounted on / with fstype ext4\n")
    with pytest.raises(CollectorSkipped, match="no NFS mounts"):
        nfs.NfsCollector().collect(_ctx(local, [0.0]))
