"""Scratch hygiene: stale data per user on configured paths, and what jobs left in node-local
scratch (docs/monitoring.md "scratch").

The walk is bounded by a time and an entry budget (``Budget``): past either it stops and says
``truncated``; counts are then lower bounds. It never follows a symlink (each directory is opened
with O_NOFOLLOW relative to its parent, so a directory swapped for a link mid-walk is not
entered), stays on the starting filesystem (st_dev), reads metadata only (lstat), never a file's
contents, and never needs a name to be text: names are only handed back to the kernel. A
filesystem that hangs inside a system call cannot be interrupted from Python, so callers run the
walk in a worker thread (``disk.timed_statvfs``) and give up on it after the budget.

The Epilog calls ``leftover_check`` (files the job's uid still owns under
``[collectors.scratch] epilog_paths``) and stores the counts in its end record; this collector
turns the recent end records into per-node and per-user metrics, and scans ``paths`` for stale
data (neither modified nor read for ``stale_days``).
"""

import json
import os
import pwd
import stat
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .base import CollectContext, Collector, CollectorSkipped, Metric, register
from .disk import timed_statvfs

DAY = 86400.0
MAX_DEPTH = 64                  # deeper directories are not entered (the walk says truncated)
HUNG_GRACE_S = 5.0              # past the budget, a walk still inside a system call is hung
EPILOG_GRACE_S = 0.2
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | \
    getattr(os, "O_CLOEXEC", 0)
DEFAULTS: Dict[str, Any] = {
    "paths": [], "stale_days": 30.0, "budget_s": 30.0, "max_entries": 1000000,
    "epilog_paths": [], "epilog_budget_s": 0.5, "epilog_max_entries": 20000,
    "leftover_window_h": 24.0,
}


# ---- the bounded walk ----------------------------------------------------------------------

class Budget:
    """A time and entry budget shared by the walks of one run."""

    def __init__(self, seconds: float, max_entries: int,
                 clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.deadline = clock() + max(0.0, float(seconds))
        self.left = max(0, int(max_entries))
        self.exhausted = False

    def take(self) -> bool:
        """One more entry may be looked at; False (and exhausted) once time or entries ran out."""
        if self.left <= 0 or self.clock() >= self.deadline:
            self.exhausted = True
            return False
        self.left -= 1
        return True


@dataclass
class ScanResult:
    """What a walk found: per uid [files, bytes] of the files that passed its filter (bytes
    allocated on disk, as du counts them), entries looked at, and whether it stopped early."""
    by_uid: Dict[int, List[int]] = field(default_factory=dict)
    entries: int = 0
    truncated: bool = False
    errors: int = 0            # entries or directories that could not be read (vanished, EACCES)
    opened: bool = False       # the starting directory could be opened (exists, is no symlink)
    done: bool = False

    @property
    def files(self) -> int:
        return sum(v[0] for v in self.by_uid.values())

    @property
    def bytes(self) -> int:
        return sum(v[1] for v in self.by_uid.values())


FileFilter = Callable[[os.stat_result], bool]
DirFilter = Callable[[os.stat_result], bool]


def scan_tree(root: str, budget: Budget, counts: FileFilter, descend: Optional[DirFilter] = None,
              result: Optional[ScanResult] = None) -> ScanResult:
    """Walk the tree under ``root`` (a directory, not a symlink) within ``budget``: every
    regular file whose lstat passes ``counts`` is added to its owner's counts; a
    subdirectory on the same filesystem is entered when ``descend`` (None: always) accepts its
    lstat. ``result`` (given: filled in place, so a caller that gave up waiting sees what was
    counted so far). OSErrors are counted, never raised."""
    res = result if result is not None else ScanResult()
    try:
        top = os.open(root, _DIR_FLAGS)
    except OSError:
        res.errors += 1
        res.done = True
        return res
    res.opened = True
    try:
        _walk_from(top, os.fstat(top).st_dev, budget, counts, descend, res)
    finally:
        os.close(top)
    res.done = True
    return res


def _walk_from(top: int, dev: int, budget: Budget, counts: FileFilter,
               descend: Optional[DirFilter], res: ScanResult) -> None:
    stack: List[Tuple[int, Any]] = []        # (directory fd, its scandir iterator)
    try:
        stack.append((top, os.scandir(top)))
        while stack:
            fd, entries = stack[-1]
            entry = _next(entries, res)
            if entry is None:
                entries.close()
                stack.pop()
                if fd != top:
                    os.close(fd)
                continue
            if not budget.take():
                res.truncated = True
                return
            res.entries += 1
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                res.errors += 1
                continue
            if not stat.S_ISDIR(st.st_mode):
                if stat.S_ISREG(st.st_mode) and counts(st):
                    c = res.by_uid.setdefault(st.st_uid, [0, 0])
                    c[0] += 1
                    c[1] += getattr(st, "st_blocks", 0) * 512
                continue
            if st.st_dev != dev or (descend is not None and not descend(st)):
                continue
            if len(stack) >= MAX_DEPTH:
                res.truncated = True
                continue
            child = _open_child(fd, entry.name, st, res)
            if child is not None:
                try:
                    stack.append((child, os.scandir(child)))
                except OSError:
                    os.close(child)
                    res.errors += 1
    finally:
        for fd, entries in stack:
            entries.close()
            if fd != top:
                os.close(fd)


def _next(entries: Any, res: ScanResult) -> Any:
    try:
        return next(entries)
    except StopIteration:
        return None
    except OSError:               # the directory went away or became unreadable mid-listing
        res.errors += 1
        return None


def _open_child(parent: int, name: str, seen: os.stat_result, res: ScanResult) -> Optional[int]:
    """The subdirectory ``name`` of ``parent``, opened without following a link, and only if it
    is still the directory that was looked at (same device and inode)."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError:
        res.errors += 1
        return None
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (seen.st_dev, seen.st_ino):
        os.close(fd)
        return None
    return fd


def timed_scan(path: str, budget: Budget, counts: FileFilter, descend: Optional[DirFilter],
               wait_s: float, pending: Dict[str, Any]) -> Tuple[str, ScanResult]:
    """``scan_tree`` in a worker thread, waited for ``wait_s``: ("ok", result), or ("hung",
    what was counted so far) when the walk is stuck in a system call (a hung NFS server). Even
    the first open of ``path`` happens in the thread. ``pending`` (kept between runs) holds walks
    still stuck; their path is "hung" again without starting another."""
    res = ScanResult()
    status, _ = timed_statvfs(path, wait_s, pending,
                              statvfs=lambda p: scan_tree(p, budget, counts, descend, res))
    if status == "error":         # an OSError outside the walk's own handling: counted
        res.errors += 1
    return ("hung" if status == "hung" else "ok"), res


# ---- names -----------------------------------------------------------------------------------

def user_name(uid: int, cache: Dict[int, str]) -> str:
    """The login of ``uid`` from the passwd database, else the uid as digits."""
    if uid not in cache:
        try:
            cache[uid] = pwd.getpwuid(uid).pw_name
        except (KeyError, OverflowError):
            cache[uid] = str(uid)
    return cache[uid]


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


# ---- the Epilog's check ----------------------------------------------------------------------

def expand_path(template: str, uid: int, user: Optional[str], job_id: str) -> Optional[str]:
    """``template`` with %u (login), %U (uid), %j (job id) and %% filled in; None when it needs a
    login that is unknown, or the result is not an absolute path."""
    out, i = [], 0
    while i < len(template):
        c = template[i]
        if c == "%" and i + 1 < len(template):
            code = template[i + 1]
            value = {"U": str(uid), "j": job_id, "%": "%", "u": user}.get(code, "%" + code)
            if value is None:
                return None
            out.append(value)
            i += 2
            continue
        out.append(c)
        i += 1
    path = "".join(out)
    return path if path.startswith("/") else None


def leftover_check(settings: Mapping[str, Any], uid: int, job_id: str,
                   clock: Callable[[], float] = time.monotonic) -> Optional[Dict[str, Any]]:
    """What the job's user (``uid``, from slurmd's SLURM_JOB_UID) still owns under the
    ``epilog_paths``: files, bytes, truncated, hung, entries. Directories of other owners are
    not entered (the configured directories themselves are). Bounded by ``epilog_budget_s`` and
    ``epilog_max_entries`` over all paths; a hung filesystem is given up on after the budget.
    None when no path is configured."""
    templates = [str(p) for p in settings.get("epilog_paths") or []]
    if not templates:
        return None
    user: Optional[str] = None
    if any("%u" in t for t in templates):       # a directory lookup only when a path needs it
        try:
            user = pwd.getpwuid(uid).pw_name
        except (KeyError, OverflowError):
            user = None
    seconds = float(settings.get("epilog_budget_s", DEFAULTS["epilog_budget_s"]))
    budget = Budget(seconds, int(settings.get("epilog_max_entries", DEFAULTS["epilog_max_entries"])), clock)
    out = {"files": 0, "bytes": 0, "truncated": False, "hung": False, "entries": 0, "paths": 0}
    job_part = job_id if job_id.replace("_", "").isdigit() else ""
    for template in templates:
        path = expand_path(template, uid, user, job_part) if job_part or "%j" not in template else None
        if path is None:
            continue
        wait = max(0.0, budget.deadline - clock()) + EPILOG_GRACE_S
        status, res = timed_scan(path, budget, lambda st: st.st_uid == uid,
                                 lambda st: st.st_uid == uid, wait, {})
        mine = res.by_uid.get(uid, [0, 0])
        out["files"] += mine[0]
        out["bytes"] += mine[1]
        out["entries"] += res.entries
        out["paths"] += 1 if res.opened else 0
        out["truncated"] = out["truncated"] or res.truncated or status != "ok"
        if status != "ok":
            out["hung"] = True
            break                 # the budget is spent waiting on it
        if budget.exhausted:
            break
    return out


# ---- the collector ---------------------------------------------------------------------------

@register
class ScratchCollector(Collector):
    name = "scratch"
    help = "Stale data per user on scratch paths (time-bounded scan); files jobs left in node-local scratch"
    interval_s = 3600.0
    needs = ("[collectors.scratch] paths to scan for stale data, and/or epilog_paths checked by "
             "the Epilog (records loaded with `nomade ingest hooks`)")

    def collect(self, ctx: CollectContext) -> List[Metric]:
        settings = {**DEFAULTS, **dict(ctx.settings)}
        paths = [str(p) for p in settings["paths"] or []]
        if not paths and not settings["epilog_paths"]:
            raise CollectorSkipped("no scratch paths configured ([collectors.scratch] paths, epilog_paths)")
        names = ctx.state.setdefault("names", {})
        out: List[Metric] = []
        for path in paths:
            out += self._stale(ctx, settings, path, names)
        if settings["epilog_paths"] and ctx.store is not None:
            out += self._leftovers(ctx, settings, names)
        return out

    def _stale(self, ctx: CollectContext, settings: Dict[str, Any], path: str,
               names: Dict[int, str]) -> List[Metric]:
        labels = {"path": _printable(path)}
        host = ctx.hostname
        cutoff = ctx.now() - float(settings["stale_days"]) * DAY
        budget = Budget(float(settings["budget_s"]), int(settings["max_entries"]))
        started = time.monotonic()
        status, res = timed_scan(path, budget, lambda st: max(st.st_mtime, st.st_atime) < cutoff, None,
                                 float(settings["budget_s"]) + HUNG_GRACE_S,
                                 ctx.state.setdefault("pending", {}))
        if status != "ok" or not res.opened:     # hung, or not a directory (missing, a symlink)
            return [Metric.of("scratch.responding", 0, host, **labels)]
        out = [Metric.of("scratch.responding", 1, host, **labels),
               Metric.of("scratch.scan_entries", res.entries, host, **labels),
               Metric.of("scratch.scan_truncated", 1 if res.truncated else 0, host, **labels),
               Metric.of("scratch.scan_seconds", time.monotonic() - started, host, **labels),
               Metric.of("scratch.all_stale_files", res.files, host, **labels),
               Metric.of("scratch.all_stale_bytes", res.bytes, host, **labels)]
        for uid, (files, size) in sorted(res.by_uid.items()):
            who = dict(labels, user=user_name(uid, names), uid=uid)
            out += [Metric.of("scratch.stale_files", files, host, **who),
                    Metric.of("scratch.stale_bytes", size, host, **who)]
        return out

    def _leftovers(self, ctx: CollectContext, settings: Dict[str, Any],
                   names: Dict[int, str]) -> List[Metric]:
        from ..store.hook_records import scratch_end_records
        since = ctx.now() - float(settings["leftover_window_h"]) * 3600.0
        latest = newest_leftovers(scratch_end_records(ctx.store, ctx.cluster, since))
        return leftover_metrics(latest, names)


def newest_leftovers(rows: List[Mapping[str, Any]]) -> Dict[Tuple[str, int], Dict[str, Any]]:
    """{(node, uid): the newest scratch check of that user on that node} from Epilog end records
    (oldest first): an older check of the same user and node counted files that are in the newer
    one too. Records that are not well-formed are skipped."""
    out: Dict[Tuple[str, int], Dict[str, Any]] = {}
    for row in rows:
        try:
            rec = json.loads(row["data"])
            check, uid = rec["scratch"], rec["job"]["uid"]
            files, size = int(check["files"]), int(check["bytes"])
        except (ValueError, KeyError, TypeError):
            continue
        if not isinstance(uid, int) or isinstance(uid, bool) or uid < 0 or min(files, size) < 0:
            continue
        out[(str(row["node"]), uid)] = {"files": files, "bytes": size,
                                        "truncated": bool(check.get("truncated")),
                                        "job_id": str(row["job_id"])}
    return out


def leftover_metrics(latest: Mapping[Tuple[str, int], Mapping[str, Any]],
                     names: Dict[int, str]) -> List[Metric]:
    """Per node (host = the node): files, bytes and users with files left; per user
    (cluster-wide): files and bytes left over all nodes."""
    per_node: Dict[str, List[int]] = {}
    per_user: Dict[int, List[int]] = {}
    for (node, uid), check in latest.items():
        n = per_node.setdefault(node, [0, 0, 0])
        u = per_user.setdefault(uid, [0, 0])
        n[0] += check["files"]
        n[1] += check["bytes"]
        n[2] += 1 if check["files"] else 0
        u[0] += check["files"]
        u[1] += check["bytes"]
    out: List[Metric] = []
    for node, (files, size, users) in sorted(per_node.items()):
        host = _printable(node)
        out += [Metric.of("scratch.leftover_files", files, host),
                Metric.of("scratch.leftover_bytes", size, host),
                Metric.of("scratch.leftover_users", users, host)]
    for uid, (files, size) in sorted(per_user.items()):
        if files:
            who = {"user": user_name(uid, names), "uid": uid}
            out += [Metric.of("scratch.leftover_files", files, **who),
                    Metric.of("scratch.leftover_bytes", size, **who)]
    return out
