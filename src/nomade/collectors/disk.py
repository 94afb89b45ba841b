"""Filesystem usage, per-user and per-group quotas, and the Open OnDemand quota file.

Usage comes from ``os.statvfs`` run in a daemon thread with a timeout: a hung NFS mount is
reported as ``disk.responding`` 0 and never hangs the cycle. While that thread is still stuck,
later cycles do not start another one for the same path (no pile of blocked threads).
Mount point and filesystem type come from /proc/self/mountinfo through the recorder's parser
(octal escapes such as ``\\040`` decoded). Quotas come from ``repquota`` (ext4 and XFS print the
same report) through the one subprocess door; 1 block = 1 KiB.
"""

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from ..errors import SlurmCommandError
from ..private_files import write_atomic
from ..recorder.mounts import MountTable, parse_mountinfo
from .base import CollectContext, Collector, Metric, register

DEFAULTS: Dict[str, Any] = {
    "filesystems": ["/"],
    "statvfs_timeout_s": 5.0,
    "quotas": True,
    "repquota_timeout_s": 60.0,
    "ood_quota_file": "",
}
REPQUOTA_ARGV = ("repquota", "-a", "-u", "-g", "-p")
OOD_FILE_MODE = 0o644         # Open OnDemand reads it as each logged-in user


# ---- time-bounded statvfs ----------------------------------------------------------------

class _Probe:
    """One statvfs in a daemon thread; ``done`` is set when it returned or failed."""

    def __init__(self, path: str, statvfs: Callable[[str], Any]):
        self.done = threading.Event()
        self.result: Any = None
        self.error: Optional[OSError] = None
        self._path, self._statvfs = path, statvfs
        threading.Thread(target=self._run, name=f"nomade-statvfs {path}", daemon=True).start()

    def _run(self) -> None:
        try:
            self.result = self._statvfs(self._path)
        except OSError as exc:
            self.error = exc
        finally:
            self.done.set()


def timed_statvfs(path: str, timeout: float, pending: Dict[str, _Probe],
                  statvfs: Callable[[str], Any] = os.statvfs) -> Tuple[str, Any]:
    """("ok", statvfs_result) | ("hung", None) | ("error", OSError). ``pending`` (kept between
    cycles) holds probes still stuck; a path with one is "hung" without starting another."""
    stuck = pending.get(path)
    if stuck is not None:
        if not stuck.done.is_set():
            return "hung", None
        del pending[path]
    probe = _Probe(path, statvfs)
    if not probe.done.wait(timeout):
        pending[path] = probe
        return "hung", None
    if probe.error is not None:
        return "error", probe.error
    return "ok", probe.result


def usage_metrics(path: str, fstype: str, st: Any, host: str) -> List[Metric]:
    labels = {"mount": path, "fstype": fstype}
    frsize = st.f_frsize or st.f_bsize
    return [
        Metric.of("disk.responding", 1, host, **labels),
        Metric.of("disk.size_bytes", st.f_blocks * frsize, host, **labels),
        Metric.of("disk.used_bytes", max(0, st.f_blocks - st.f_bfree) * frsize, host, **labels),
        Metric.of("disk.free_bytes", st.f_bavail * frsize, host, **labels),   # what users can use
        Metric.of("disk.inodes_total", st.f_files, host, **labels),
        Metric.of("disk.inodes_used", max(0, st.f_files - st.f_ffree), host, **labels),
        Metric.of("disk.read_only", 1 if st.f_flag & os.ST_RDONLY else 0, host, **labels),
    ]


# ---- repquota ----------------------------------------------------------------------------

@dataclass(frozen=True)
class QuotaEntry:
    device: str
    kind: str                  # "user" | "group"
    name: str                  # login or group name, "#1001" when repquota could not resolve it
    used_kib: int
    soft_kib: int
    hard_kib: int
    used_files: int
    soft_files: int
    hard_files: int


def _is_grace(token: str) -> bool:
    return not token.isdigit()       # "6days", "none", "44:58", "00:00"; with -p: epoch digits


def parse_repquota(text: str) -> List[QuotaEntry]:
    """Entries of ``repquota [-a] [-u] [-g] [-p] [-v]`` output (the ext4 and the XFS forms):
    sections start with "*** Report for user|group quotas on device DEV"; a row is
    NAME FLAGS used soft hard [grace] used soft hard [grace]. Other lines are skipped."""
    out: List[QuotaEntry] = []
    device = kind = None
    for line in text.splitlines():
        if line.startswith("*** "):
            words = line.split()
            if line.startswith("*** Report for ") and len(words) >= 8 and words[4] == "quotas":
                device, kind = " ".join(words[7:]), words[3]
                if kind not in ("user", "group"):
                    device = kind = None
            else:
                device = kind = None         # "*** Status for ..." (XFS -v) ends the table
            continue
        tokens = line.split()
        if device is None or len(tokens) < 8 or len(tokens[1]) != 2 or set(tokens[1]) - {"+", "-"}:
            continue
        numbers = _row_numbers(tokens[2:])
        if numbers is not None and line.isprintable():
            out.append(QuotaEntry(device, kind, tokens[0], *numbers))
    return out


def _row_numbers(rest: List[str]) -> Optional[Tuple[int, ...]]:
    if len(rest) == 8:                        # both grace columns (always so with -p)
        picked = rest[0:3] + rest[4:7]
    else:
        picked = rest[0:3]
        tail = rest[4:] if len(rest) > 3 and _is_grace(rest[3]) else rest[3:]
        picked += tail[0:3]
        if len(tail) not in (3, 4) or (len(tail) == 4 and not _is_grace(tail[3])):
            return None
    if len(picked) != 6 or not all(p.isdigit() for p in picked):
        return None
    values = tuple(int(p) for p in picked)
    return values if max(values) < 2 ** 63 else None


def quota_metrics(entries: Iterable[QuotaEntry], mount_of: Callable[[str], str],
                  host: str) -> List[Metric]:
    out: List[Metric] = []
    for e in entries:
        labels = {"mount": mount_of(e.device), "kind": e.kind, "name": e.name}
        out += [Metric.of("quota.used_bytes", e.used_kib * 1024, host, **labels),
                Metric.of("quota.soft_bytes", e.soft_kib * 1024, host, **labels),
                Metric.of("quota.hard_bytes", e.hard_kib * 1024, host, **labels),
                Metric.of("quota.used_files", e.used_files, host, **labels)]
    return out


def ood_quota_document(entries: Iterable[QuotaEntry], mount_of: Callable[[str], str],
                       timestamp: float) -> Dict[str, Any]:
    """The Open OnDemand quota file (version 1; blocks are KiB). Only user quotas with a limit
    and a resolved name: OOD matches entries to the logged-in user by name."""
    quotas = []
    for e in entries:
        if e.kind != "user" or e.name.startswith("#"):
            continue
        block_limit = e.hard_kib or e.soft_kib
        file_limit = e.hard_files or e.soft_files
        if not block_limit and not file_limit:
            continue
        quotas.append({"type": "user", "user": e.name, "path": mount_of(e.device),
                       "total_block_usage": e.used_kib, "block_limit": block_limit,
                       "total_file_usage": e.used_files, "file_limit": file_limit})
    return {"version": 1, "timestamp": int(timestamp), "quotas": quotas}


# ---- the collector -----------------------------------------------------------------------

@register
class DiskCollector(Collector):
    name = "disk"
    help = "Filesystem size/used/free/inodes/read-only, hung mounts, user and group quotas"
    interval_s = 300.0
    needs = "os.statvfs on [collectors.disk] filesystems; repquota (package quota) for quotas"

    def collect(self, ctx: CollectContext) -> List[Metric]:
        settings = {**DEFAULTS, **dict(ctx.settings)}
        table = _mount_table(ctx.proc)
        pending = ctx.state.setdefault("pending_statvfs", {})
        out: List[Metric] = []
        for path in settings["filesystems"]:
            mount = table.find(path)
            fstype = mount.fstype if mount is not None else ""
            status, result = timed_statvfs(path, float(settings["statvfs_timeout_s"]), pending)
            if status == "ok":
                out += usage_metrics(path, fstype, result, ctx.hostname)
            elif status == "hung":
                out.append(Metric.of("disk.responding", 0, ctx.hostname, mount=path, fstype=fstype))
            # "error" (path missing or unreadable): no series; `nomade syscheck` reports it
        if settings["quotas"]:
            out += self._quotas(ctx, settings)
        return out

    def _quotas(self, ctx: CollectContext, settings: Dict[str, Any]) -> List[Metric]:
        try:
            result = ctx.run(list(REPQUOTA_ARGV), timeout=float(settings["repquota_timeout_s"]),
                             check=False)
        except SlurmCommandError:
            return []                 # repquota absent or timed out: usage is still reported
        entries = parse_repquota(result.stdout)
        sources = _sources(ctx.proc)

        def mount_of(device: str) -> str:
            return sources.get(device, device)

        if settings["ood_quota_file"] and entries:
            doc = ood_quota_document(entries, mount_of, ctx.now())
            write_atomic(Path(settings["ood_quota_file"]),
                         json.dumps(doc, indent=1).encode(), mode=OOD_FILE_MODE)
        return quota_metrics(entries, mount_of, ctx.hostname)


def _mountinfo_text(proc: Path) -> str:
    try:
        return (proc / "self" / "mountinfo").read_text(errors="replace")
    except OSError:
        return ""


def _mount_table(proc: Path) -> MountTable:
    return MountTable(parse_mountinfo(_mountinfo_text(proc)))


def _sources(proc: Path) -> Dict[str, str]:
    """Device -> mount point (the first mount of each device: bind mounts come later)."""
    out: Dict[str, str] = {}
    for m in parse_mountinfo(_mountinfo_text(proc)):
        out.setdefault(m.source, m.mount_point)
    return out
