"""One sampling pass over replayed trees: deltas, efficiency, attribution and robustness
(processes exiting, PID reuse, clock jumps)."""

import shutil
from pathlib import Path

import pytest

from nomade.recorder import procfs
from nomade.recorder.sampler import Sampler, SamplerPaths, allocated_cpus

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "cgroup"


class Clocks:
    def __init__(self, wall=1_700_000_000.0, mono=100.0):
        self.wall, self.mono = wall, mono

    def step(self, dt, wall_dt=None):
        self.mono += dt
        self.wall += dt if wall_dt is None else wall_dt


def tree(tmp_path, case):
    dst = tmp_path / case
    shutil.copytree(FIX / case, dst, symlinks=True)
    return dst


def sampler(root, clocks):
    return Sampler("node1", "c1", SamplerPaths(proc=root / "proc", cgroup=root / "cgroup"),
                   clock=lambda: clocks.wall, mono=lambda: clocks.mono)


def set_io(root, pid, **vals):
    p = root / "proc" / str(pid) / "io"
    io = procfs.parse_io(p.read_text())
    io.update(vals)
    p.write_text("".join(f"{k}: {v}\n" for k, v in io.items()))


def set_stat(root, pid, utime=None, starttime=None):
    p = root / "proc" / str(pid) / "stat"
    text = p.read_text()
    rp = text.rfind(")")
    head, rest = text[:rp + 2], text[rp + 2:].split()
    if utime is not None:
        rest[11] = str(utime)
    if starttime is not None:
        rest[19] = str(starttime)
    p.write_text(head + " ".join(rest) + "\n")


V1_CPU = "cgroup/cpuacct/slurm/uid_0/job_999/cpuacct.usage"


def test_cpu_efficiency_uses_cgroup_cpu_and_monotonic_time(tmp_path):
    root, clk = tree(tmp_path, "v1_slurm_job_local_vm"), Clocks()
    s = sampler(root, clk)
    (root / V1_CPU).write_text("10000000000\n")
    first = s.sample()[0]
    assert first.cpu_eff is None and first.cpu_time_s == 10.0 and first.extra["cpus"] == 2
    clk.step(10.0)
    (root / V1_CPU).write_text("20000000000\n")                 # +10 cpu s in 10 s on 2 cpus
    second = s.sample()[0]
    assert second.cpu_eff == pytest.approx(0.5)
    assert second.ts == pytest.approx(first.ts + 10.0)


def test_io_deltas_accumulate_and_split_by_fs(tmp_path):
    root, clk = tree(tmp_path, "v1_slurm_job_local_vm"), Clocks()
    s = sampler(root, clk)
    a = s.sample()[0]
    assert a.write_bytes == 5851713
    # the process writes to a file on / (ext4) and one on /dev/shm: the bytes bound for a device
    # (write_bytes 3907584; tmpfs never counts there) are local's, the rest of wchar is tmpfs's
    assert a.write_local_bytes == 3907584
    assert a.extra["write_tmpfs_bytes"] == 5851713 - 3907584
    clk.step(30)
    set_io(root, 10416, wchar=5851713 + 1000)           # 1000 more bytes, none for a device
    b = s.sample()[0]
    assert b.write_bytes == 5851713 + 1000
    assert b.write_local_bytes == 3907584
    assert b.extra["write_tmpfs_bytes"] == 5851713 - 3907584 + 1000
    clk.step(30)
    set_io(root, 10416, wchar=5851713 + 3000, write_bytes=3907584 + 9000)   # mmap'd pages: more
    c = s.sample()[0]                                    # than wchar for the device, capped at it
    assert c.write_local_bytes == 3907584 + 2000 and c.extra["write_tmpfs_bytes"] == b.extra["write_tmpfs_bytes"]


def test_pid_reuse_starts_a_new_process_no_negative_delta(tmp_path):
    root, clk = tree(tmp_path, "v1_slurm_job_local_vm"), Clocks()
    s = sampler(root, clk)
    a = s.sample()[0]
    clk.step(30)
    set_stat(root, 10416, utime=1, starttime=99999)     # same pid, another process
    set_io(root, 10416, wchar=10, rchar=20, write_bytes=0, read_bytes=0)
    b = s.sample()[0]
    assert b.write_bytes == a.write_bytes + 10
    assert b.read_bytes == a.read_bytes + 20
    assert b.extra["proc_cpu_s"] >= a.extra["proc_cpu_s"]


def test_counters_going_backwards_without_reuse_are_clamped(tmp_path):
    root, clk = tree(tmp_path, "v1_slurm_job_local_vm"), Clocks()
    s = sampler(root, clk)
    a = s.sample()[0]
    clk.step(30)
    set_io(root, 10416, wchar=0)
    set_stat(root, 10416, utime=0)
    (root / V1_CPU).write_text("1\n")                  # cgroup recreated: cpu counter reset
    b = s.sample()[0]
    assert b.write_bytes == a.write_bytes
    assert b.cpu_eff is None                           # a negative interval is not reported


def test_wall_clock_going_back_keeps_ts_increasing(tmp_path):
    root, clk = tree(tmp_path, "v1_slurm_job_local_vm"), Clocks()
    s = sampler(root, clk)
    (root / V1_CPU).write_text("0\n")
    a = s.sample()[0]
    clk.step(30, wall_dt=-3600)                        # NTP step back one hour
    (root / V1_CPU).write_text("30000000000\n")
    b = s.sample()[0]
    assert b.ts > a.ts
    assert b.cpu_eff == pytest.approx(0.5)             # from the monotonic interval


def test_process_listed_but_exited_is_skipped(tmp_path):
    root, clk = tree(tmp_path, "v2_slurm_2205_nfs_lustre"), Clocks()
    samples = {x.job_id: x for x in sampler(root, clk).sample()}
    assert samples["4242"].extra["nprocs"] == 3        # 501 is in cgroup.procs but gone from /proc
    shutil.rmtree(root / "proc" / "602")                # exits between two passes
    s2 = sampler(root, clk)
    assert {x.job_id: x for x in s2.sample()}["4242"].extra["nprocs"] == 2


def test_process_exiting_between_stat_and_io(tmp_path, monkeypatch):
    root, clk = tree(tmp_path, "v2_slurm_2205_nfs_lustre"), Clocks()
    real = procfs.read_io

    def vanishing(pid, r):
        return None if pid == 601 else real(pid, r)
    monkeypatch.setattr(procfs, "read_io", vanishing)
    job = {x.job_id: x for x in sampler(root, clk).sample()}["4242"]
    assert job.extra["nprocs"] == 3 and job.write_bytes == 2 * 5851713


def test_v2_attribution_network_tmpfs_and_cwd(tmp_path):
    root, clk = tree(tmp_path, "v2_slurm_2205_nfs_lustre"), Clocks()
    job = {x.job_id: x for x in sampler(root, clk).sample()}["4242"]
    w = 5851713
    # 601: NFS stdout + Lustre checkpoint open for writing -> network; 602: /dev/shm -> tmpfs;
    # 603: nothing open, cwd on GPFS -> network (charged by cwd)
    assert job.write_network_bytes == 2 * w
    assert job.extra["write_tmpfs_bytes"] == w
    assert job.write_local_bytes == 0
    assert job.extra["write_by_cwd_bytes"] == w
    assert job.extra["cpus"] == 8                       # SLURM_CPUS_ON_NODE beats the cpuset
    assert job.cg_mem_limit_mb == 1024.0
    assert job.memory_mb == pytest.approx((734003200 - 134003200) / 2 ** 20, abs=0.01)
    assert job.extra["node_nfs_write_bytes"] == 52432896


def test_proc_fallback_without_job_cgroups(tmp_path):
    root, clk = tree(tmp_path, "v2_slurm_2205_nfs_lustre"), Clocks()
    shutil.rmtree(root / "cgroup")
    (root / "cgroup").mkdir()
    jobs = {x.job_id: x for x in sampler(root, clk).sample()}
    assert set(jobs) == {"4242", "4300"}
    assert jobs["4300"].extra["source"] == "proc-environ" and jobs["4300"].cg_mem_mb is None


def test_ended_job_state_is_dropped(tmp_path):
    root, clk = tree(tmp_path, "v1_slurm_job_local_vm"), Clocks()
    s = sampler(root, clk)
    s.sample()
    for p in (root / "cgroup").glob("*/slurm/uid_0/job_999"):
        shutil.rmtree(p)
    shutil.rmtree(root / "proc" / "10416")             # the job ended: cgroups and processes gone
    assert s.sample() == [] and s.jobs == {}


@pytest.mark.parametrize("env,n", [({"SLURM_CPUS_ON_NODE": "4"}, 4),
                                   ({"SLURM_JOB_CPUS_PER_NODE": "16(x2)"}, 16),
                                   ({"SLURM_JOB_CPUS_PER_NODE": "8,4"}, 8),
                                   ({}, None), ({"SLURM_CPUS_ON_NODE": "x"}, None)])
def test_allocated_cpus(env, n):
    assert allocated_cpus(env) == n


def test_real_batch_job_skips_slurmstepd_and_uses_slurm_env(tmp_path):
    root, clk = tree(tmp_path, "v1_slurm_2205_real_batch_job"), Clocks()
    job = sampler(root, clk).sample()[0]
    assert job.job_id == "2" and job.extra["nprocs"] == 2      # slurm_script + python3
    assert job.extra["cpus"] == 1                              # SLURM_CPUS_ON_NODE
    assert job.cg_mem_limit_mb == 300.0
    assert job.write_local_bytes > 0 and job.extra["write_tmpfs_bytes"] > 0


def test_job_mount_namespace_is_used_for_attribution(tmp_path):
    """A job with a private mount namespace (job_container/tmpfs): its /tmp is a tmpfs there."""
    import os
    root, clk = tree(tmp_path, "v1_slurm_job_local_vm"), Clocks()
    own = (root / "proc" / "self" / "mountinfo").read_text()
    (root / "proc" / "10416" / "ns").mkdir()
    os.symlink("mnt:[4026532999]", root / "proc" / "10416" / "ns" / "mnt")
    (root / "proc" / "10416" / "mountinfo").write_text(
        own + "99 27 0:99 / /tmp rw,relatime - tmpfs tmpfs rw,size=1024k\n")
    job = sampler(root, clk).sample()[0]
    assert job.write_local_bytes == 0 and job.extra["write_tmpfs_bytes"] == 5851713


# ---------------------------------------------------------------- attribution: cgroups, not environ
def _without_jobs(root):
    """Slurm's cgroup tree with no job running now (slurmstepd.scope stays, job_* go)."""
    scope = root / "cgroup" / "system.slice" / "slurmstepd.scope"
    for d in scope.glob("job_*"):
        shutil.rmtree(d)


def test_environment_never_decides_where_job_cgroups_exist(tmp_path, caplog):
    root, clk = tree(tmp_path, "v2_slurm_2205_nfs_lustre"), Clocks()
    s = sampler(root, clk)
    jobs = {x.job_id: x for x in s.sample()}
    assert "4300" not in jobs                  # pid 700 says SLURM_JOB_ID=4300 outside any job cgroup
    assert all(x.extra["source"] == "cgroup" for x in jobs.values()) and s.attribution == "cgroup"
    _without_jobs(root)                        # no job now: still no environ scan
    assert s.sample() == [] and s.attribution == "cgroup"
    assert "SLURM_JOB_ID" not in caplog.text


def test_non_root_without_job_cgroups_attributes_nothing(tmp_path, caplog):
    root, clk = tree(tmp_path, "v2_slurm_2205_nfs_lustre"), Clocks()
    shutil.rmtree(root / "cgroup")
    (root / "cgroup").mkdir()
    s = Sampler("node1", "c1", SamplerPaths(proc=root / "proc", cgroup=root / "cgroup"),
                clock=lambda: clk.wall, mono=lambda: clk.mono, euid=lambda: 1000)
    with caplog.at_level("WARNING"):
        assert s.sample() == [] and s.sample() == []
    assert caplog.text.count("not running as root") == 1


def test_root_without_job_cgroups_says_it_uses_the_environment(tmp_path, caplog):
    root, clk = tree(tmp_path, "v2_slurm_2205_nfs_lustre"), Clocks()
    shutil.rmtree(root / "cgroup")
    (root / "cgroup").mkdir()
    s = Sampler("node1", "c1", SamplerPaths(proc=root / "proc", cgroup=root / "cgroup"),
                clock=lambda: clk.wall, mono=lambda: clk.mono, euid=lambda: 0)
    with caplog.at_level("WARNING"):
        jobs = {x.job_id: x for x in s.sample()}
        s.sample()
    assert set(jobs) == {"4242", "4300"} and s.attribution == "proc-environ"
    assert all(x.extra["source"] == "proc-environ" for x in jobs.values())
    assert caplog.text.count("SLURM_JOB_ID in their environment") == 1
