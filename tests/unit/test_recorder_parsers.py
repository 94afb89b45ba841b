"""procfs and mount-table parsers, on captured and documented inputs."""

from pathlib import Path

import pytest

from nomade.recorder import mounts, procfs

FIX = Path(__file__).resolve().parents[1] / "fixtures"
V1 = FIX / "cgroup" / "v1_slurm_job_local_vm"
V2 = FIX / "cgroup" / "v2_slurm_2205_nfs_lustre"


def test_stat_comm_with_spaces_and_parens():
    st = procfs.parse_stat((FIX / "proc" / "stat_comm_with_spaces_and_parens").read_text())
    assert st.pid == 4711 and st.comm == "my (weird) prog" and st.state == "R"
    assert (st.utime_ticks, st.stime_ticks, st.starttime_ticks, st.rss_pages) == (250, 50, 123456, 1000)
    assert st.cpu_s == pytest.approx(300 / procfs.CLK_TCK)


def test_stat_garbage_is_none():
    assert procfs.parse_stat("") is None
    assert procfs.parse_stat("12 (x) S 1 2") is None


def test_captured_process_readers():
    root = V1 / "proc"
    st = procfs.read_stat(10416, root)
    assert st.comm == "python3" and st.starttime_ticks == 71168
    io = procfs.read_io(10416, root)
    assert io["wchar"] == 5851713 and io["write_bytes"] == 3907584
    env = procfs.read_environ(10416, root)
    assert env["SLURM_JOB_ID"] == "999" and env["SLURM_CPUS_ON_NODE"] == "2"
    assert procfs.read_cwd(10416, root) == "/tmp"
    files = dict(procfs.read_open_files(10416, root))
    # /dev/null and the pipe are skipped; both data files are open for writing
    assert files == {"/tmp/nomF_out_999.dat": True, "/dev/shm/nomF_shm_999.dat": True}
    assert procfs.read_status(10416, root)["Name"] == "python3"


def test_vanished_process_reads_as_none(tmp_path):
    assert procfs.read_stat(123, tmp_path) is None
    assert procfs.read_io(123, tmp_path) is None
    assert procfs.read_environ(123, tmp_path) is None
    assert procfs.read_cwd(123, tmp_path) is None
    assert procfs.read_open_files(123, tmp_path) == []


@pytest.mark.parametrize("exc", [PermissionError(13, "Permission denied"),
                                 ProcessLookupError(3, "No such process")])
def test_denied_or_exiting_process_reads_as_none(monkeypatch, exc):
    def boom(*a, **k):
        raise exc
    monkeypatch.setattr("builtins.open", boom)
    monkeypatch.setattr(procfs.os, "open", boom)
    assert procfs.read_io(10416, V1 / "proc") is None
    assert procfs.read_stat(10416, V1 / "proc") is None
    assert procfs.read_environ(10416, V1 / "proc") is None


def test_process_exiting_during_read(monkeypatch):
    def esrch(fd, n):
        raise ProcessLookupError(3, "No such process")
    monkeypatch.setattr(procfs.os, "read", esrch)
    assert procfs.read_io(10416, V1 / "proc") is None


def test_fd_cache_reuses_and_prunes():
    cache = {}
    first = procfs.read_open_files(601, V2 / "proc", cache)
    assert ("1", "/home/alice/slurm-4242.out") in cache
    cache[("4", "/home/alice/input.csv")] = True          # a cached answer is used as is
    again = dict(procfs.read_open_files(601, V2 / "proc", cache))
    assert again["/home/alice/input.csv"] is True and len(first) == len(again)
    cache[("99", "/gone")] = False
    procfs.read_open_files(601, V2 / "proc", cache)
    assert ("99", "/gone") not in cache


def test_read_only_fds_are_not_writable():
    files = dict(procfs.read_open_files(601, V2 / "proc"))
    assert files["/home/alice/input.csv"] is False
    assert files["/home/alice/slurm-4242.out"] is True     # O_WRONLY|O_APPEND
    assert files["/scratch/alice/ckpt.h5"] is True         # O_RDWR


def test_mountinfo_classification_and_longest_prefix():
    table = mounts.MountTable(mounts.parse_mountinfo((V2 / "proc" / "self" / "mountinfo").read_text()))
    assert table.kind_of("/home/alice/x") == "network"        # nfs4
    assert table.kind_of("/scratch/alice/ckpt.h5") == "network"  # lustre
    assert table.kind_of("/gpfs/proj/a") == "network"
    assert table.kind_of("/dev/shm/buf") == "tmpfs"
    assert table.kind_of("/tmp/x") == "local"                 # xfs on /tmp, not / (ext4)
    assert table.find("/tmp/x").fstype == "xfs"
    assert table.find("/homework").mount_point == "/"         # prefix match is by path component
    assert table.kind_of("/proc/1/io") == "pseudo"
    assert table.find("/mnt/with space/f").fstype == "ext4"   # \040 unescaped


def test_captured_mountinfo_of_this_machine():
    table = mounts.read_mount_table(V1 / "proc")
    assert table.kind_of("/tmp/nomF_out_999.dat") == "local"
    assert table.kind_of("/dev/shm/nomF_shm_999.dat") == "tmpfs"


def test_mountstats_nfs_bytes():
    stats = mounts.read_nfs_counters(V2 / "proc")
    assert stats == {"/home": {"read_bytes": 1048576, "write_bytes": 52428800 + 4096,
                               "server_read_bytes": 1048576, "server_write_bytes": 52432896}}


def test_mountstats_unreadable_or_malformed(tmp_path):
    assert mounts.read_nfs_counters(tmp_path) is None
    assert mounts.parse_mountstats((FIX / "proc" / "mountstats_malformed_bytes").read_text()) == {}
    assert mounts.read_mount_table(tmp_path).find("/x") is None
    # device lines cut after "fstype" or "on" (found by mutating the captured files): no mount,
    # no IndexError; the whole line after them still counts
    cut = mounts.parse_mountstats((FIX / "proc" / "mountstats_cut_device_lines").read_text())
    assert cut == {"/c": {"read_bytes": 4, "write_bytes": 6, "server_read_bytes": 5, "server_write_bytes": 6}}


@pytest.mark.parametrize("fstype,kind", [("nfs", "network"), ("nfs4", "network"), ("lustre", "network"),
                                         ("gpfs", "network"), ("beegfs", "network"), ("tmpfs", "tmpfs"),
                                         ("ext4", "local"), ("xfs", "local"), ("overlay", "local"),
                                         ("cgroup2", "pseudo")])
def test_fs_kind(fstype, kind):
    assert mounts.fs_kind(fstype) == kind
