"""Job discovery and cgroup readers on a captured v1 tree and documented v2 / hybrid layouts."""

from pathlib import Path

from nomade.recorder import cgroups

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "cgroup"
V1, V2, HYB = FIX / "v1_slurm_job_local_vm", FIX / "v2_slurm_2205_nfs_lustre", FIX / "hybrid_systemd_v1_slurm"


def jobs_of(case: Path):
    return cgroups.find_job_cgroups(cgroups.find_hierarchies(case / "cgroup"))


def test_v1_captured_slurm_layout():
    hier = cgroups.find_hierarchies(V1 / "cgroup")
    assert {h.version for h in hier} == {1}
    assert {c for h in hier for c in h.controllers} >= {"memory", "cpuacct", "cpuset", "freezer"}
    jobs = jobs_of(V1)
    assert list(jobs) == ["999"]                         # sshd.service is not a job
    jc = jobs["999"]
    assert cgroups.job_pids(jc) == {10416}
    mem = cgroups.read_memory(jc)
    assert mem.limit_bytes == 300 * 1024 * 1024 and mem.usage_bytes > 0
    assert mem.working_set_bytes <= mem.usage_bytes
    assert cgroups.read_cpu_s(jc) > 0
    assert cgroups.read_cpuset_count(jc) == 2


def test_v2_slurm_2205_layout():
    hier = cgroups.find_hierarchies(V2 / "cgroup")
    assert len(hier) == 1 and hier[0].version == 2 and hier[0].has("memory")
    jobs = jobs_of(V2)
    assert sorted(jobs) == ["4242", "4243"]
    jc = jobs["4242"]
    assert cgroups.job_pids(jc) == {501, 601, 602, 603}   # every step, every task
    mem = cgroups.read_memory(jc)
    assert (mem.usage_bytes, mem.limit_bytes, mem.peak_bytes) == (734003200, 1073741824, 800000000)
    assert mem.working_set_bytes == 734003200 - 100000000 - 34003200   # minus file cache
    assert cgroups.read_cpu_s(jc) == 123.456789
    assert cgroups.read_cpuset_count(jc) == 8
    assert cgroups.read_memory(jobs["4243"]).limit_bytes is None     # "max"


def test_hybrid_v1_controllers_with_empty_unified():
    hier = cgroups.find_hierarchies(HYB / "cgroup")
    kinds = {(h.path.name, h.version) for h in hier}
    assert ("unified", 2) in kinds and ("memory", 1) in kinds and ("cpu,cpuacct", 1) in kinds
    assert not any(h.path.name in ("cpu", "cpuacct") for h in hier)   # symlinks not walked twice
    jobs = jobs_of(HYB)
    assert list(jobs) == ["77"]
    jc = jobs["77"]
    assert cgroups.job_pids(jc) == {801, 802}            # freezer's tasks file counts too
    mem = cgroups.read_memory(jc)
    assert mem.limit_bytes is None                       # v1 "unlimited" huge number
    assert mem.usage_bytes == 209715200
    assert cgroups.read_cpu_s(jc) == 5.0
    assert cgroups.read_cpuset_count(jc) == 2


def test_missing_root_and_depth_limit(tmp_path):
    assert cgroups.find_hierarchies(tmp_path / "nope") == []
    deep = tmp_path / "cg"
    (deep / "memory" / "a" / "b" / "c" / "job_5").mkdir(parents=True)
    (deep / "memory" / "cgroup.procs").write_text("")
    hier = cgroups.find_hierarchies(deep)
    assert list(cgroups.find_job_cgroups(hier)) == ["5"]
    assert cgroups.find_job_cgroups(hier, max_depth=2) == {}


def test_proc_environ_fallback():
    found = cgroups.scan_proc_for_jobs(V2 / "proc")
    assert found["4300"] == {700}
    assert found["4242"] == {601, 602, 603}
    assert all(701 not in pids for pids in found.values())


def test_cpulist_count():
    assert cgroups.cpulist_count("0-3,8,10-11\n") == 7
    assert cgroups.cpulist_count("") == 0
    assert cgroups.cpulist_count("bogus") == 0


REAL = FIX / "v1_slurm_2205_real_batch_job"


def test_real_slurm_2205_batch_job_captured_on_the_ci_cluster():
    """sbatch --mem=300M on the tests/slurm cluster (task/cgroup + proctrack/cgroup, v1):
    slurm_<node>/uid_0/job_2/step_batch/task_0 in memory and freezer only (ConstrainCores=no)."""
    jobs = jobs_of(REAL)
    assert list(jobs) == ["2"]
    jc = jobs["2"]
    assert cgroups.job_pids(jc) == {13029, 13033, 13034}     # slurmstepd, the script, python3
    mem = cgroups.read_memory(jc)
    assert mem.limit_bytes == 300 * 1024 * 1024
    assert cgroups.read_cpu_s(jc) is None                     # no cpuacct cgroup for the job
    assert cgroups.read_cpuset_count(jc) is None
