"""One sampling pass over the node's running jobs -> ``JobSample`` records.

The sampler keeps per-process counters between passes. A process is identified by (pid,
starttime): when a PID is reused the starttime changes and the new process starts from zero,
so deltas are never negative. Counters of processes that exited between two passes are lost
after their last sample (the cgroup's CPU counter still includes them). Interval lengths come
from ``time.monotonic`` so wall-clock jumps do not distort rates.
"""

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set, Tuple

from . import cgroups, procfs
from .gpu import GpuProbe
from .mounts import MountTable, read_mount_table, read_nfs_counters, read_process_mount_table
from .sample import JobSample

MB = 1024.0 * 1024.0
LOG = logging.getLogger(__name__)
BY_CGROUP = "cgroup"
BY_ENVIRON = "proc-environ"   # root on a node without job cgroups: SLURM_JOB_ID of each process
_IO_KEYS = ("rchar", "wchar", "read_bytes", "write_bytes")


@dataclass
class _Proc:
    starttime: int
    cpu_s: float
    io: Tuple[int, int, int, int]
    fds: Dict[Tuple[str, str], bool] = field(default_factory=dict)   # (fd, target) -> writable


@dataclass
class _Job:
    procs: Dict[int, _Proc] = field(default_factory=dict)
    totals: Dict[str, float] = field(default_factory=dict)   # cumulative counters since first seen
    last_mono: Optional[float] = None
    last_cpu_s: Optional[float] = None
    last_ts: Optional[float] = None
    cpus: Optional[int] = None
    cpus_known: bool = False


@dataclass
class SamplerPaths:
    proc: Path = procfs.PROC
    cgroup: Path = cgroups.CGROUP_ROOT


class Sampler:
    """Call ``sample()`` once per interval; it returns one JobSample per running job."""

    def __init__(self, node: str, cluster: str = "", paths: Optional[SamplerPaths] = None,
                 gpu: Optional[GpuProbe] = None, proc_fallback: bool = True,
                 clock: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic,
                 euid: Callable[[], int] = os.geteuid):
        self.node, self.cluster = node, cluster
        self.paths = paths or SamplerPaths()
        self.gpu = gpu
        self.proc_fallback = proc_fallback
        self.clock, self.mono, self.euid = clock, mono, euid
        self.jobs: Dict[str, _Job] = {}
        self.attribution = BY_CGROUP      # how processes were attributed to jobs in the last pass
        self._said: Set[str] = set()

    # ------------------------------------------------------------------ discovery
    def discover(self) -> Dict[str, Tuple[Optional[cgroups.JobCgroups], Set[int]]]:
        """Running jobs and their PIDs. A process belongs to a job through its cgroup only; a
        process's environment (which its user controls) decides only for root on a node where
        Slurm keeps no job cgroups at all."""
        hier = cgroups.find_hierarchies(self.paths.cgroup)
        found = cgroups.find_job_cgroups(hier)
        if found or not self.proc_fallback or cgroups.has_slurm_cgroups(hier):
            self.attribution = BY_CGROUP
            return {jid: (jc, cgroups.job_pids(jc)) for jid, jc in found.items()}
        if self.euid() != 0:
            self.attribution = BY_CGROUP
            self._say_once("no-cgroups", "no job cgroups on this node and not running as root: "
                                         "no process can be attributed to a job")
            return {}
        self.attribution = BY_ENVIRON
        self._say_once(BY_ENVIRON, "no job cgroups on this node: attributing processes to jobs by "
                                   "SLURM_JOB_ID in their environment, which users can set")
        return {jid: (None, pids) for jid, pids in cgroups.scan_proc_for_jobs(self.paths.proc).items()}

    def _say_once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            LOG.warning("nomade record: %s", message)

    # ------------------------------------------------------------------ one pass
    def sample(self) -> List[JobSample]:
        now_mono, now_wall = self.mono(), self.clock()
        own_mounts = read_mount_table(self.paths.proc)
        ns_tables: Dict[str, MountTable] = {}
        nfs = read_nfs_counters(self.paths.proc)
        gpu_by_pid = self.gpu.by_pid() if self.gpu is not None else {}
        out = []
        discovered = self.discover()
        for jid in list(self.jobs):
            if jid not in discovered:
                del self.jobs[jid]
        for jid in sorted(discovered, key=lambda j: int(j) if j.isdigit() else 0):
            jc, pids = discovered[jid]
            state = self.jobs.setdefault(jid, _Job())
            mounts = own_mounts
            for pid in sorted(pids):
                mounts = read_process_mount_table(pid, self.paths.proc, ns_tables, own_mounts)
                if mounts is not own_mounts:
                    break
            s = self._sample_job(jid, jc, pids, state, mounts, now_mono, now_wall, gpu_by_pid)
            if nfs is not None:
                s.extra["node_nfs_read_bytes"] = sum(v["read_bytes"] for v in nfs.values())
                s.extra["node_nfs_write_bytes"] = sum(v["write_bytes"] for v in nfs.values())
            out.append(s)
        return out

    def _sample_job(self, jid, jc, pids, state: _Job, mounts: MountTable, now_mono, now_wall,
                    gpu_by_pid) -> JobSample:
        root = self.paths.proc
        ts = now_wall
        if state.last_ts is not None and state.last_mono is not None and ts <= state.last_ts:
            ts = state.last_ts + max(now_mono - state.last_mono, 1e-3)   # wall clock went back
        s = JobSample(job_id=jid, node=self.node, ts=round(ts, 3), cluster=self.cluster)
        s.extra["source"] = BY_CGROUP if jc is not None else BY_ENVIRON
        rss, proc_cpu_delta, nprocs = 0, 0.0, 0
        live: Dict[int, _Proc] = {}
        kinds_seen: Dict[str, int] = {}
        for pid in sorted(pids):
            st = procfs.read_stat(pid, root)
            if st is None:
                continue                                   # exited (or hidden) since listed
            if st.comm == "slurmstepd":
                continue                                   # Slurm's own step daemon, not the job's work
            io = procfs.read_io(pid, root) or {}
            cur = _Proc(st.starttime_ticks, st.cpu_s, tuple(int(io.get(k, 0)) for k in _IO_KEYS))
            prev = state.procs.get(pid)
            if prev is None or prev.starttime != cur.starttime:
                prev = _Proc(cur.starttime, 0.0, (0, 0, 0, 0))   # new process (or PID reused)
            cur.fds = prev.fds
            live[pid] = cur
            nprocs += 1
            rss += st.rss_bytes
            proc_cpu_delta += max(0.0, cur.cpu_s - prev.cpu_s)
            d = [max(0, c - p) for c, p in zip(cur.io, prev.io)]
            for k, v in zip(_IO_KEYS, d):
                state.totals[k] = state.totals.get(k, 0) + v
            if not state.cpus_known:
                self._learn_cpus(state, pid, jc)
            if d[1] > 0:
                self._attribute_writes(state, pid, cur, d[1], mounts, kinds_seen, storage=d[3])
        state.procs = live
        state.totals["proc_cpu_s"] = state.totals.get("proc_cpu_s", 0.0) + proc_cpu_delta
        if not state.cpus_known and jc is not None:
            state.cpus = cgroups.read_cpuset_count(jc)
            state.cpus_known = state.cpus is not None
        self._fill_cpu(s, state, jc, now_mono)
        self._fill_memory(s, jc, rss)
        self._fill_io(s, state, kinds_seen, nprocs)
        self._fill_gpu(s, live, gpu_by_pid)
        state.last_mono, state.last_ts = now_mono, s.ts
        return s

    def _learn_cpus(self, state: _Job, pid: int, jc) -> None:
        env = procfs.read_environ(pid, self.paths.proc)
        if not env:
            return
        n = allocated_cpus(env)
        if n:
            state.cpus, state.cpus_known = n, True

    def _attribute_writes(self, state: _Job, pid: int, proc: _Proc, dwchar: int, mounts: MountTable,
                          kinds_seen: Dict[str, int], storage: int = 0) -> None:
        """Split the process's Δwchar between the fs kinds of its files open for writing; with
        none open, charge the kind of its working directory (see docs/recorder.md). When tmpfs
        and a disk kind are both open, the kernel's Δwrite_bytes (``storage``: page-cache bytes
        bound for a device, never tmpfs) goes to the disk kinds and the rest to tmpfs; otherwise
        the split is equal. Only processes that wrote since the last pass are looked at."""
        files = procfs.read_open_files(pid, self.paths.proc, proc.fds)
        kinds = set()
        for path, writable in files:
            k = mounts.kind_of(path)
            if k is not None and k != "pseudo":
                kinds_seen[k] = kinds_seen.get(k, 0) + 1
                if writable:
                    kinds.add(k)
        how = "open_files"
        if not kinds:
            cwd = procfs.read_cwd(pid, self.paths.proc)
            k = mounts.kind_of(cwd) if cwd else None
            if k is not None and k != "pseudo":
                kinds, how = {k}, "cwd"
        if not kinds:
            state.totals["write_unattributed"] = state.totals.get("write_unattributed", 0) + dwchar
            return
        parts = {k: dwchar // len(kinds) for k in kinds}
        disks = sorted(kinds - {"tmpfs"})
        if "tmpfs" in kinds and disks:
            on_disk = min(max(storage, 0), dwchar)
            parts = {k: on_disk // len(disks) for k in disks}
            parts["tmpfs"] = dwchar - on_disk
        for k, share in parts.items():
            state.totals["write_" + k] = state.totals.get("write_" + k, 0) + share
        state.totals["write_by_" + how] = state.totals.get("write_by_" + how, 0) + dwchar

    def _fill_cpu(self, s: JobSample, state: _Job, jc, now_mono: float) -> None:
        cg_cpu = cgroups.read_cpu_s(jc) if jc is not None else None
        cpu = cg_cpu if cg_cpu is not None else state.totals["proc_cpu_s"]
        s.cpu_time_s = round(cpu, 3)
        s.extra["proc_cpu_s"] = round(state.totals["proc_cpu_s"], 3)
        s.extra["cpus"] = state.cpus
        if state.last_mono is not None and state.last_cpu_s is not None and state.cpus:
            dt = now_mono - state.last_mono
            dcpu = cpu - state.last_cpu_s
            if dt > 0 and dcpu >= 0:
                s.cpu_eff = round(dcpu / (dt * state.cpus), 4)
        state.last_cpu_s = cpu

    def _fill_memory(self, s: JobSample, jc, rss: int) -> None:
        s.rss_mb = round(rss / MB, 2)
        mem = cgroups.read_memory(jc) if jc is not None else None
        if mem is None:
            return
        if mem.usage_bytes is not None:
            s.cg_mem_mb = round(mem.usage_bytes / MB, 2)
        if mem.limit_bytes is not None:
            s.cg_mem_limit_mb = round(mem.limit_bytes / MB, 2)
        if mem.working_set_bytes is not None:
            s.extra["cg_ws_mb"] = round(mem.working_set_bytes / MB, 2)
        if mem.peak_bytes is not None:
            s.extra["cg_peak_mb"] = round(mem.peak_bytes / MB, 2)

    def _fill_io(self, s: JobSample, state: _Job, kinds_seen: Dict[str, int], nprocs: int) -> None:
        t = state.totals
        s.read_bytes, s.write_bytes = int(t.get("rchar", 0)), int(t.get("wchar", 0))
        s.write_local_bytes = int(t.get("write_local", 0))
        s.write_network_bytes = int(t.get("write_network", 0))
        s.extra.update({
            "nprocs": nprocs,
            "write_tmpfs_bytes": int(t.get("write_tmpfs", 0)),
            "write_unattributed_bytes": int(t.get("write_unattributed", 0)),
            "write_by_cwd_bytes": int(t.get("write_by_cwd", 0)),
            "storage_read_bytes": int(t.get("read_bytes", 0)),
            "storage_write_bytes": int(t.get("write_bytes", 0)),
            "open_files_by_fs": dict(sorted(kinds_seen.items())),
        })

    def _fill_gpu(self, s: JobSample, live: Dict[int, _Proc], gpu_by_pid) -> None:
        mine = [gpu_by_pid[p] for p in live if p in gpu_by_pid]
        if not mine:
            return
        s.gpu_mem_mb = round(sum(m for _d, m, _u in mine) / MB, 1)
        utils = {d: u for d, _m, u in mine if u is not None}
        if utils:
            s.gpu_util = round(sum(utils.values()) / len(utils), 1)


def allocated_cpus(env: Dict[str, str]) -> Optional[int]:
    """CPUs allocated to the job on this node from Slurm's environment, or None."""
    for key in ("SLURM_CPUS_ON_NODE", "SLURM_JOB_CPUS_PER_NODE"):
        raw = env.get(key, "")
        digits = ""
        for ch in raw:
            if not ch.isdigit():
                break
            digits += ch
        if digits and int(digits) > 0:
            return int(digits)
    return None
