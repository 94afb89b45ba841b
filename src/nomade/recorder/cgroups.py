"""Find running Slurm jobs' cgroups and read their CPU, memory and cpuset files.

Nothing here assumes one path layout. Hierarchies are found under ``root`` (cgroup v1: one
directory per controller, e.g. memory/ or cpu,cpuacct/; v2: root itself, or unified/ in hybrid
mode), then each hierarchy is searched for directories named ``job_<id>`` (Slurm 20.x-23.x v1:
``<ctrl>/slurm/uid_<uid>/job_<id>``, multiple-slurmd ``slurm_<node>/uid_<uid>/job_<id>``;
v2: ``system.slice/slurmstepd.scope/job_<id>``). Readers return None when a file is missing or
unreadable (jobs end, cgroups vanish, between any two reads).
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set

from .procfs import PROC, parse_environ

CGROUP_ROOT = Path("/sys/fs/cgroup")
JOB_DIR = re.compile(r"^job_(\d+)$")
SLURM_DIR = re.compile(r"^(slurm|slurm_[^/]+|slurmstepd\.scope)$")
MAX_DEPTH = 8
UNLIMITED = 1 << 60  # v1 reports "no limit" as a huge page-aligned number


@dataclass(frozen=True)
class Hierarchy:
    path: Path
    version: int                 # 1 or 2
    controllers: frozenset

    def has(self, controller: str) -> bool:
        return controller in self.controllers


@dataclass
class JobCgroups:
    """Where one job lives: its job_<id> directory in each hierarchy that has one."""
    job_id: str
    dirs: List[Hierarchy] = field(default_factory=list)
    paths: Dict[Path, Path] = field(default_factory=dict)   # hierarchy path -> job dir

    def dir_for(self, controller: str, version: Optional[int] = None) -> Optional[Path]:
        for h in self.dirs:
            if (version is None or h.version == version) and (h.has(controller) or
                                                              (h.version == 2 and controller == "*")):
                return self.paths[h.path]
        return None


def find_hierarchies(root: Path = CGROUP_ROOT) -> List[Hierarchy]:
    """Every mounted hierarchy under ``root``: pure v2, pure v1 or hybrid (v1 + unified/)."""
    if (root / "cgroup.controllers").exists():
        return [Hierarchy(root, 2, frozenset(_read(root / "cgroup.controllers", "").split()))]
    found, seen = [], set()
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        if entry.is_symlink() or not entry.is_dir():
            continue
        real = os.path.realpath(entry.path)
        if real in seen:
            continue
        seen.add(real)
        p = Path(entry.path)
        if (p / "cgroup.controllers").exists():
            found.append(Hierarchy(p, 2, frozenset(_read(p / "cgroup.controllers", "").split())))
        elif (p / "cgroup.procs").exists() or (p / "tasks").exists():
            names = {n.replace("name=", "") for n in entry.name.split(",")}
            found.append(Hierarchy(p, 1, frozenset(names)))
    return found


def find_job_cgroups(hierarchies: List[Hierarchy], max_depth: int = MAX_DEPTH) -> Dict[str, JobCgroups]:
    """job id -> its cgroup directories, found by searching each hierarchy for job_<id>."""
    jobs: Dict[str, JobCgroups] = {}
    for h in hierarchies:
        for job_id, path in _walk_for_jobs(h.path, max_depth):
            jc = jobs.setdefault(job_id, JobCgroups(job_id))
            if h.path not in jc.paths:
                jc.dirs.append(h)
                jc.paths[h.path] = path
    return jobs


def _walk_for_jobs(top: Path, max_depth: int):
    stack = [(str(top), 0)]
    while stack:
        path, depth = stack.pop()
        try:
            it = os.scandir(path)
        except OSError:
            continue
        with it:
            for entry in it:
                try:
                    if not entry.is_dir(follow_symlinks=False):
                        continue
                except OSError:
                    continue
                m = JOB_DIR.match(entry.name)
                if m:
                    yield m.group(1), Path(entry.path)
                elif depth + 1 < max_depth:
                    stack.append((entry.path, depth + 1))


def has_slurm_cgroups(hierarchies: List[Hierarchy], max_depth: int = 3) -> bool:
    """Whether Slurm keeps job cgroups on this node (a ``slurm``, ``slurm_<node>`` or
    ``slurmstepd.scope`` directory in some hierarchy), even while no job runs."""
    for h in hierarchies:
        stack = [(str(h.path), 0)]
        while stack:
            path, depth = stack.pop()
            for name, sub in _subdirs(path):
                if SLURM_DIR.match(name) or JOB_DIR.match(name):
                    return True
                if depth + 1 < max_depth:
                    stack.append((sub, depth + 1))
    return False


def _subdirs(path: str) -> List[tuple]:
    try:
        with os.scandir(path) as it:
            return [(e.name, e.path) for e in it if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def job_pids(jc: JobCgroups) -> Set[int]:
    """PIDs in the job's cgroups (all steps), the union over hierarchies."""
    pids: Set[int] = set()
    for h in jc.dirs:
        for dirpath, _dirs, files in os.walk(jc.paths[h.path]):
            name = "cgroup.procs" if "cgroup.procs" in files else ("tasks" if "tasks" in files else None)
            if name:
                pids.update(_ints(_read(Path(dirpath) / name, "")))
    return pids


@dataclass
class CgroupMemory:
    usage_bytes: Optional[int]
    limit_bytes: Optional[int]     # None = unlimited
    peak_bytes: Optional[int]
    working_set_bytes: Optional[int]   # usage minus file page cache: anon + shmem/tmpfs + kernel


def read_memory(jc: JobCgroups) -> Optional[CgroupMemory]:
    d2 = jc.dir_for("memory", 2)
    if d2 is not None and (d2 / "memory.current").exists():
        usage = _int_file(d2 / "memory.current")
        stat = _kv(_read(d2 / "memory.stat", ""))
        return CgroupMemory(usage, _int_file(d2 / "memory.max"), _int_file(d2 / "memory.peak"),
                            _working_set(usage, stat.get("inactive_file"), stat.get("active_file")))
    d1 = jc.dir_for("memory", 1)
    if d1 is not None:
        usage = _int_file(d1 / "memory.usage_in_bytes")
        if usage is None:
            return None
        stat = _kv(_read(d1 / "memory.stat", ""))
        return CgroupMemory(usage, _int_file(d1 / "memory.limit_in_bytes"),
                            _int_file(d1 / "memory.max_usage_in_bytes"),
                            _working_set(usage, stat.get("total_inactive_file"),
                                         stat.get("total_active_file")))
    return None


def read_cpu_s(jc: JobCgroups) -> Optional[float]:
    """Cumulative CPU seconds of the whole job cgroup (includes processes that already exited)."""
    d2 = jc.dir_for("cpu", 2) or jc.dir_for("*", 2)
    if d2 is not None:
        usec = _kv(_read(d2 / "cpu.stat", "")).get("usage_usec")
        if usec is not None:
            return usec / 1e6
    d1 = jc.dir_for("cpuacct", 1)
    if d1 is not None:
        ns = _int_file(d1 / "cpuacct.usage")
        if ns is not None:
            return ns / 1e9
    return None


def read_cpuset_count(jc: JobCgroups) -> Optional[int]:
    for d, names in ((jc.dir_for("cpuset", 2), ("cpuset.cpus.effective", "cpuset.cpus")),
                     (jc.dir_for("cpuset", 1), ("cpuset.effective_cpus", "cpuset.cpus"))):
        if d is None:
            continue
        for n in names:
            count = cpulist_count(_read(d / n, ""))
            if count:
                return count
    return None


def cpulist_count(text: str) -> int:
    """Number of CPUs in a cpulist like '0-3,8,10-11'."""
    n = 0
    for part in text.strip().split(","):
        if not part:
            continue
        a, sep, b = part.partition("-")
        try:
            first = int(a)
            n += (int(b) - first + 1) if sep else 1
        except ValueError:
            return 0
    return n


def scan_proc_for_jobs(root: Path = PROC) -> Dict[str, Set[int]]:
    """Fallback on a node without job cgroups, for root only: SLURM_JOB_ID from each process's
    environment. The environment is the user's to set: never use this where cgroups exist
    (``has_slurm_cgroups``)."""
    jobs: Dict[str, Set[int]] = {}
    try:
        names = os.listdir(root)
    except OSError:
        return jobs
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(root / name / "environ", "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        if b"SLURM_JOB_ID=" not in data:
            continue
        job = parse_environ(data).get("SLURM_JOB_ID")
        if job and job.isdigit():
            jobs.setdefault(job, set()).add(int(name))
    return jobs


def _working_set(usage: Optional[int], inactive_file: Optional[int],
                 active_file: Optional[int]) -> Optional[int]:
    """What reclaim cannot free before the OOM killer acts: usage minus the file-backed page
    cache (clean file pages are dropped under pressure). tmpfs/shm pages stay in: they are on
    the anon LRU and count against the limit."""
    if usage is None:
        return None
    return max(0, usage - (inactive_file or 0) - (active_file or 0))


def _read(path: Path, default: str) -> str:
    try:
        with open(path, "r") as fh:
            return fh.read()
    except (OSError, ValueError):
        return default


def _int_file(path: Path) -> Optional[int]:
    text = _read(path, "").strip()
    if not text or text == "max":
        return None
    try:
        v = int(text)
    except ValueError:
        return None
    return None if v >= UNLIMITED else v


def _kv(text: str) -> Dict[str, int]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def _ints(text: str) -> List[int]:
    return [int(x) for x in text.split() if x.isdigit()]
