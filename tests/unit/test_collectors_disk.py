"""Disk usage (a real tmpfs when root), hung mounts, repquota output in its ext4 and XFS forms,
hostile quota text, and the Open OnDemand quota file."""

import json
import os
import stat
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from nomade.collectors import disk
from nomade.collectors.base import CollectContext
from nomade.errors import SlurmCommandError

MON = Path(__file__).resolve().parents[1] / "fixtures" / "monitoring"


def _proc_with_mountinfo(tmp_path: Path, lines: str) -> Path:
    root = tmp_path / "proc"
    (root / "self").mkdir(parents=True)
    (root / "self" / "mountinfo").write_text(lines)
    return root


MOUNTINFO = ("22 1 253:0 / / rw,relatime - ext4 /dev/mapper/vg0-root rw\n"
             "23 22 253:1 / /home rw,relatime - ext4 /dev/mapper/vg0-home rw,usrquota\n"
             "24 22 8:33 / /my\\040scratch rw - xfs /dev/sdc rw\n")


def _runner(stdout: str = "", exc: Exception = None, calls: list = None):
    def run(argv, timeout, **kw):
        if calls is not None:
            calls.append((list(argv), timeout, kw))
        if exc is not None:
            raise exc
        return SimpleNamespace(stdout=stdout, rc=0)
    return run


def _ctx(proc: Path, run, **settings):
    return CollectContext(settings=settings, run=run, now=lambda: 1_800_000_000.0, proc=proc,
                          hostname="fs1")


def _values(metrics):
    return {(m.metric, m.label("mount"), m.label("name")): m.value for m in metrics}


# ---- usage --------------------------------------------------------------------------------

def test_usage_of_this_machines_root(tmp_path):
    metrics = disk.DiskCollector().collect(_ctx(Path("/proc"), _runner(), quotas=False))
    got = _values(metrics)
    assert got[("disk.responding", "/", "")] == 1
    assert got[("disk.size_bytes", "/", "")] >= got[("disk.free_bytes", "/", "")] > 0
    assert got[("disk.inodes_total", "/", "")] >= got[("disk.inodes_used", "/", "")]
    assert got[("disk.read_only", "/", "")] in (0, 1)
    assert {m.host for m in metrics} == {"fs1"} and all(m.label("fstype") for m in metrics)


@pytest.fixture
def tmpfs_8m(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    point = tmp_path / "tmpfs mnt"            # a space: /proc/self/mountinfo escapes it as \040
    point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(point)],
                          capture_output=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    yield point
    subprocess.run(["umount", str(point)], capture_output=True, timeout=30)


def test_usage_of_a_real_tmpfs_filled_with_a_file(tmpfs_8m):
    (tmpfs_8m / "fill").write_bytes(b"\0" * (3 * 1024 * 1024))
    metrics = disk.DiskCollector().collect(_ctx(Path("/proc"), _runner(), quotas=False,
                                                filesystems=[str(tmpfs_8m)]))
    got = _values(metrics)
    mount = str(tmpfs_8m)
    assert got[("disk.size_bytes", mount, "")] == 8 * 1024 * 1024
    assert 3 * 1024 * 1024 <= got[("disk.used_bytes", mount, "")] < 4 * 1024 * 1024
    assert got[("disk.free_bytes", mount, "")] == pytest.approx(5 * 1024 * 1024, abs=1024 * 1024)
    assert got[("disk.read_only", mount, "")] == 0
    assert {m.label("fstype") for m in metrics} == {"tmpfs"}


def test_hung_mount_is_not_responding_and_never_hangs():
    release = threading.Event()

    def hanging_statvfs(path):
        release.wait(30)
        return os.statvfs("/")

    pending = {}
    started = time.monotonic()
    assert disk.timed_statvfs("/nfs/hung", 0.2, pending, hanging_statvfs) == ("hung", None)
    assert disk.timed_statvfs("/nfs/hung", 0.2, pending, hanging_statvfs) == ("hung", None)
    assert time.monotonic() - started < 5
    assert len(pending) == 1                     # the second cycle started no second thread
    release.set()
    pending["/nfs/hung"].done.wait(5)
    status, result = disk.timed_statvfs("/nfs/hung", 5, pending, os.statvfs)
    assert status == "error" and pending == {}   # answered again (here: no such path)


def test_hung_mount_metric_from_the_collector(tmp_path, monkeypatch):
    proc = _proc_with_mountinfo(tmp_path, MOUNTINFO)
    monkeypatch.setattr(disk, "timed_statvfs", lambda path, timeout, pending: ("hung", None))
    metrics = disk.DiskCollector().collect(_ctx(proc, _runner(), quotas=False,
                                                filesystems=["/home"]))
    assert [(m.metric, m.value, m.label("fstype")) for m in metrics] == [("disk.responding", 0.0, "ext4")]


def test_missing_filesystem_gives_no_series(tmp_path):
    metrics = disk.DiskCollector().collect(_ctx(Path("/proc"), _runner(), quotas=False,
                                                filesystems=[str(tmp_path / "absent")]))
    assert metrics == []


# ---- quotas -------------------------------------------------------------------------------

def test_repquota_ext4_user_over_soft_limit():
    entries = disk.parse_repquota((MON / "repquota_ext4_user_over_soft_limit.txt").read_text())
    by = {(e.kind, e.name): e for e in entries}
    assert len(entries) == 7
    alice = by[("user", "alice")]
    assert (alice.used_kib, alice.soft_kib, alice.hard_kib, alice.used_files) == (563200, 512000, 1024000, 1201)
    assert by[("user", "bob")].soft_files == 100 and by[("user", "bob")].hard_files == 200
    assert by[("user", "carol")].used_files == 300                 # both grace columns
    assert by[("group", "physics")].hard_kib == 2500000
    assert alice.device == "/dev/mapper/vg0-home"


def test_repquota_raw_grace_and_xfs_forms():
    raw = disk.parse_repquota((MON / "repquota_p_raw_grace_ext4.txt").read_text())
    assert [(e.name, e.used_kib, e.used_files) for e in raw] == [("root", 16, 2), ("alice", 563200, 1201)]
    xfs = disk.parse_repquota((MON / "repquota_xfs_verbose_with_status.txt").read_text())
    assert [(e.kind, e.name) for e in xfs] == [("user", "#0"), ("user", "#1001"), ("user", "dave"),
                                                ("group", "#0"), ("group", "#1001")]
    assert xfs[2].used_kib == 579520


def test_repquota_hostile_text():
    text = (MON / "repquota_hostile_control_bytes_huge_numbers.txt").read_text()
    assert disk.parse_repquota(text) == []
    assert disk.parse_repquota("") == []
    assert disk.parse_repquota("alice -- 1 2 3 4 5 6\n") == []    # a row outside any report


def test_quota_metrics_mapped_to_mount_points(tmp_path):
    proc = _proc_with_mountinfo(tmp_path, MOUNTINFO)
    calls = []
    text = (MON / "repquota_ext4_user_over_soft_limit.txt").read_text()
    text += (MON / "repquota_xfs_verbose_with_status.txt").read_text()
    metrics = disk.DiskCollector().collect(_ctx(proc, _runner(text, calls=calls), filesystems=[]))
    got = _values(metrics)
    assert calls[0][0][0] == "repquota" and calls[0][1] > 0
    assert got[("quota.used_bytes", "/home", "alice")] == 563200 * 1024
    assert got[("quota.soft_bytes", "/home", "alice")] == 512000 * 1024
    assert got[("quota.hard_bytes", "/home", "alice")] == 1024000 * 1024
    assert got[("quota.used_files", "/home", "alice")] == 1201
    assert got[("quota.used_bytes", "/my scratch", "dave")] == 579520 * 1024
    assert {m.label("kind") for m in metrics} == {"user", "group"}


def test_repquota_absent_or_timed_out_still_reports_usage(tmp_path):
    exc = SlurmCommandError(["repquota"], None, "", message="repquota timed out after 60 s")
    metrics = disk.DiskCollector().collect(_ctx(Path("/proc"), _runner(exc=exc)))
    assert {m.metric for m in metrics} >= {"disk.size_bytes"}
    assert not any(m.metric.startswith("quota.") for m in metrics)


def test_ood_quota_file(tmp_path):
    proc = _proc_with_mountinfo(tmp_path, MOUNTINFO)
    target = tmp_path / "ood" / "quota.json"
    target.parent.mkdir()
    text = (MON / "repquota_ext4_user_over_soft_limit.txt").read_text()
    disk.DiskCollector().collect(_ctx(proc, _runner(text), filesystems=[], ood_quota_file=str(target)))
    doc = json.loads(target.read_text())
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert doc["version"] == 1 and doc["timestamp"] == 1_800_000_000
    users = {q["user"]: q for q in doc["quotas"]}
    assert set(users) == {"alice", "bob", "carol"}                 # no groups, no #uid, no unlimited
    assert users["alice"] == {"type": "user", "user": "alice", "path": "/home",
                              "total_block_usage": 563200, "block_limit": 1024000,
                              "total_file_usage": 1201, "file_limit": 0}
    assert not list(target.parent.glob(".*tmp"))


def test_module_defaults_match_declared_settings():
    from nomade import settings
    from nomade.collectors import nfs, nodestats

    for key, value in disk.DEFAULTS.items():
        assert settings.find(f"collectors.disk.{key}").default == value
    assert settings.find("collectors.nfs.ops").default == list(nfs.DEFAULT_OPS)
    assert (settings.find("collectors.nodestats.exclude_devices").default
            == nodestats.DEFAULT_EXCLUDE_DEVICES)
