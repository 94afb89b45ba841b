"""Mount table (/proc/self/mountinfo) and NFS client counters (/proc/self/mountstats).

Parsers take text; ``MountTable.find`` maps a path to its mount by longest prefix, and
``fs_kind`` classifies a filesystem type as network / local / tmpfs / pseudo.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

NETWORK_FSTYPES = frozenset({
    "nfs", "nfs4", "lustre", "gpfs", "beegfs", "cephfs", "ceph", "cifs", "smb3", "smbfs",
    "glusterfs", "fuse.glusterfs", "fuse.sshfs", "pvfs2", "orangefs", "panfs", "wekafs",
    "fuse.juicefs", "9p",
})
MEMORY_FSTYPES = frozenset({"tmpfs", "ramfs", "hugetlbfs"})
PSEUDO_FSTYPES = frozenset({
    "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "mqueue", "debugfs", "tracefs",
    "securityfs", "pstore", "bpf", "configfs", "fusectl", "autofs", "binfmt_misc", "nsfs",
    "rpc_pipefs", "efivarfs", "selinuxfs",
})
FS_KINDS = ("local", "network", "tmpfs")


@dataclass(frozen=True)
class Mount:
    mount_point: str
    fstype: str
    source: str

    @property
    def kind(self) -> str:
        return fs_kind(self.fstype)


def fs_kind(fstype: str) -> str:
    """'network' (NFS, Lustre, GPFS, ...), 'tmpfs' (RAM-backed), 'pseudo' (proc, sysfs, ...),
    else 'local' (ext4, xfs, btrfs, zfs, overlay, ...)."""
    t = fstype.lower()
    if t in NETWORK_FSTYPES or t.startswith("nfs"):
        return "network"
    if t in MEMORY_FSTYPES:
        return "tmpfs"
    if t in PSEUDO_FSTYPES:
        return "pseudo"
    return "local"


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \040 \011 \012 \134
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> List[Mount]:
    """Parse /proc/PID/mountinfo. Malformed lines are skipped."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 2:
            continue
        mounts.append(Mount(mount_point=_unescape(lf[4]), fstype=rf[0], source=_unescape(rf[1])))
    return mounts


class MountTable:
    """Longest-prefix lookup of a path's mount. Later mounts over the same point win."""

    def __init__(self, mounts: List[Mount]):
        self._by_point: Dict[str, Mount] = {}
        for m in mounts:
            self._by_point[m.mount_point.rstrip("/") or "/"] = m

    def find(self, path: str) -> Optional[Mount]:
        p = path.rstrip("/") or "/"
        while True:
            m = self._by_point.get(p)
            if m is not None:
                return m
            if p == "/":
                return None
            p = p.rsplit("/", 1)[0] or "/"

    def kind_of(self, path: str) -> Optional[str]:
        m = self.find(path)
        return m.kind if m is not None else None

    def __len__(self) -> int:
        return len(self._by_point)


def read_mount_table(root: Path = Path("/proc")) -> MountTable:
    """The mount table as seen by this process; empty when unreadable."""
    try:
        return MountTable(parse_mountinfo((root / "self" / "mountinfo").read_text()))
    except OSError:
        return MountTable([])


def read_process_mount_table(pid: int, root: Path, cache: Dict[str, MountTable],
                             fallback: MountTable) -> MountTable:
    """The mount table of ``pid``'s mount namespace (jobs may have their own, e.g. Slurm's
    job_container/tmpfs gives each job a private /tmp and /dev/shm). One read per namespace per
    ``cache``; ``fallback`` (the recorder's own table) when the namespace is unreadable."""
    try:
        ns = os.readlink(f"{root}/{pid}/ns/mnt")
    except OSError:
        return fallback
    table = cache.get(ns)
    if table is None:
        try:
            with open(f"{root}/{pid}/mountinfo") as fh:
                table = MountTable(parse_mountinfo(fh.read()))
        except OSError:
            table = fallback
        cache[ns] = table
    return table


def _word_after(parts: List[str], word: str) -> str:
    """The word after the first ``word`` in ``parts`` ("" if none: a cut line)."""
    i = parts.index(word) + 1 if word in parts else len(parts)
    return parts[i] if i < len(parts) else ""


def parse_mountstats(text: str) -> Dict[str, Dict[str, int]]:
    """NFS client byte counters per NFS mount point from /proc/self/mountstats:
    {mount_point: {read_bytes, write_bytes, server_read_bytes, server_write_bytes}}.
    read/write are what applications asked for (normal + O_DIRECT); server_* went on the wire."""
    out: Dict[str, Dict[str, int]] = {}
    current: Optional[str] = None
    for line in text.splitlines():
        if line.startswith("device "):
            parts = line.split()
            current = None
            if "with" in parts:
                point = _word_after(parts, "on")
                if _word_after(parts, "fstype").startswith("nfs") and point:
                    current = _unescape(point)
            continue
        if current is None:
            continue
        s = line.strip()
        if s.startswith("bytes:"):
            vals = s.split()[1:]
            try:
                n = [int(v) for v in vals[:6]]
            except ValueError:
                continue
            if len(n) == 6:
                out[current] = {"read_bytes": n[0] + n[2], "write_bytes": n[1] + n[3],
                                "server_read_bytes": n[4], "server_write_bytes": n[5]}
    return out


def read_nfs_counters(root: Path = Path("/proc")) -> Optional[Dict[str, Dict[str, int]]]:
    """Node-level NFS client counters, or None when mountstats is unreadable."""
    try:
        return parse_mountstats((root / "self" / "mountstats").read_text())
    except OSError:
        return None
