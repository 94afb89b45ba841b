"""Readers for /proc/PID/{stat,status,io,fd,fdinfo,cwd,environ}. Each takes ``root=Path('/proc')``.

A process can exit between any two reads, and another user's process may be unreadable: every
reader returns None (or an empty result) for FileNotFoundError, ProcessLookupError,
PermissionError and other OSErrors instead of raising. Callers treat None as "gone or hidden".
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

PROC = Path("/proc")
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_O_ACCMODE = 0o3  # O_RDONLY 0, O_WRONLY 1, O_RDWR 2


@dataclass(frozen=True)
class ProcStat:
    pid: int
    comm: str
    state: str
    utime_ticks: int
    stime_ticks: int
    starttime_ticks: int   # since boot; with pid, identifies a process across PID reuse
    rss_pages: int

    @property
    def cpu_s(self) -> float:
        return (self.utime_ticks + self.stime_ticks) / CLK_TCK

    @property
    def rss_bytes(self) -> int:
        return self.rss_pages * PAGE_SIZE


def parse_stat(text: str) -> Optional[ProcStat]:
    """Parse /proc/PID/stat. comm may hold spaces and parentheses: split at the last ')'."""
    lp, rp = text.find("("), text.rfind(")")
    if lp < 0 or rp < 0:
        return None
    try:
        pid = int(text[:lp].strip())
        rest = text[rp + 2:].split()
        # rest[0] is field 3 (state); field N is rest[N - 3]
        return ProcStat(pid=pid, comm=text[lp + 1:rp], state=rest[0],
                        utime_ticks=int(rest[11]), stime_ticks=int(rest[12]),
                        starttime_ticks=int(rest[19]), rss_pages=int(rest[21]))
    except (ValueError, IndexError):
        return None


def parse_io(text: str) -> Dict[str, int]:
    """Parse /proc/PID/io ("rchar: 123" lines)."""
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            try:
                out[k.strip()] = int(v)
            except ValueError:
                continue
    return out


def parse_environ(data: bytes) -> Dict[str, str]:
    out = {}
    for item in data.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep and k:
            out[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
    return out


def _read_text(path) -> Optional[str]:
    """Read a small /proc file with plain os calls (cheaper than open() for hundreds of files)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (OSError, ValueError):
        # FileNotFoundError/ProcessLookupError: exited; PermissionError: hidden
        return None
    try:
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks).decode("utf-8", "replace")
    except OSError:
        return None          # ESRCH when the process exits during the read
    finally:
        os.close(fd)


def read_stat(pid: int, root: Path = PROC) -> Optional[ProcStat]:
    text = _read_text(f"{root}/{pid}/stat")
    return parse_stat(text) if text else None


def read_io(pid: int, root: Path = PROC) -> Optional[Dict[str, int]]:
    text = _read_text(f"{root}/{pid}/io")
    return parse_io(text) if text else None


def read_status(pid: int, root: Path = PROC) -> Optional[Dict[str, str]]:
    text = _read_text(f"{root}/{pid}/status")
    if text is None:
        return None
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k] = v.strip()
    return out


def read_environ(pid: int, root: Path = PROC) -> Optional[Dict[str, str]]:
    try:
        with open(root / str(pid) / "environ", "rb") as fh:
            return parse_environ(fh.read())
    except OSError:
        return None


def read_cwd(pid: int, root: Path = PROC) -> Optional[str]:
    try:
        return os.readlink(f"{root}/{pid}/cwd")
    except OSError:
        return None


def read_open_files(pid: int, root: Path = PROC,
                    cache: Optional[Dict[Tuple[str, str], bool]] = None) -> List[Tuple[str, bool]]:
    """(path, opened_for_writing) for the process's open fds that name a path ('/...').
    Pipes, sockets, anon inodes and /dev (except /dev/shm) are skipped. Empty when unreadable.
    ``cache`` ((fd, target) -> writable, kept by the caller per process) saves the fdinfo reads
    for descriptors seen before; it is pruned to the fds open now."""
    fd_dir = f"{root}/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return []
    out = []
    seen = set()
    for name in names:
        try:
            target = os.readlink(f"{fd_dir}/{name}")
        except OSError:
            continue
        if not target.startswith("/") or (target.startswith("/dev/")
                                          and not target.startswith("/dev/shm/")):  # noqa: S108 (a path compared, not used)
            continue
        if target.endswith(" (deleted)"):
            target = target[: -len(" (deleted)")]
        key = (name, target)
        seen.add(key)
        writable = cache.get(key) if cache is not None else None
        if writable is None:
            writable = _fd_writable(f"{root}/{pid}/fdinfo/{name}")
            if cache is not None:
                cache[key] = writable
        out.append((target, writable))
    if cache is not None and len(cache) > len(seen):
        for key in [k for k in cache if k not in seen]:
            del cache[key]
    return out


def _fd_writable(fdinfo) -> bool:
    text = _read_text(fdinfo)
    if not text:
        return False
    for line in text.splitlines():
        if line.startswith("flags:"):
            try:
                return (int(line.split()[1], 8) & _O_ACCMODE) in (1, 2)
            except (ValueError, IndexError):
                return False
    return False


def list_pids(root: Path = PROC) -> List[int]:
    try:
        return [int(n) for n in os.listdir(root) if n.isdigit()]
    except OSError:
        return []
