"""Append-only node-local spool of JSON lines, bounded in size, that never crashes its writer.

Layout: ``<dir>/seg-<n>.jsonl`` segments (n increasing) plus ``counters.json``, all created 0600
(and ``<dir>`` 0700 when the writer creates it). The writer
appends to the highest segment, starts a new one when it reaches ``segment_bytes`` (and at every
start, so a torn last line from a crash stays in a closed segment), flushes after every batch
and fsyncs at most every ``fsync_interval_s``. When the segments together exceed ``max_bytes`` the
oldest are deleted and their records counted in ``dropped_records``. Any OSError on write (ENOSPC,
EDQUOT, EIO) drops that batch, counts it in ``write_errors``/``dropped_records`` and the next batch
goes to a fresh segment.

Readers (``nomade ingest spool``) treat every segment below the highest as closed.
"""

import fcntl
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ..errors import NomadeError
from ..private_files import make_private_dirs, open_private, private_opener, write_atomic

_SEG = re.compile(r"^seg-(\d{9})\.jsonl$")
COUNTERS = "counters.json"
LOCK = "writer.lock"


@dataclass
class SpoolCounters:
    next_seq: int = 1
    written_records: int = 0
    dropped_records: int = 0      # deleted unread to stay under max_bytes, or lost to write errors
    dropped_segments: int = 0
    write_errors: int = 0
    last_error: str = ""


class SpoolWriter:
    def __init__(self, directory: Path, max_bytes: int, fsync_interval_s: float = 60.0,
                 segment_bytes: Optional[int] = None, mono: Callable[[], float] = time.monotonic):
        self.dir = Path(directory)
        self.max_bytes = max(int(max_bytes), 4096)
        self.segment_bytes = int(segment_bytes or max(self.max_bytes // 8, 4096))
        self.fsync_interval_s = fsync_interval_s
        self.mono = mono
        self.counters = SpoolCounters()
        self._fh = None
        self._path: Optional[Path] = None
        self._seg_size = 0
        self._last_fsync = mono()
        self._started = False
        self._lock_fd: Optional[int] = None

    # ------------------------------------------------------------------ public
    def acquire(self) -> None:
        """Become the spool's only writer (an flock on ``writer.lock``, released when the process
        exits). A second ``nomade record`` on the same spool would make the first one's segment
        look closed to ``ingest spool``, which deletes closed segments."""
        try:
            make_private_dirs(self.dir)
            fd = open_private(self.dir / LOCK, os.O_RDWR)
        except OSError as exc:
            raise NomadeError(f"{self.dir}: cannot create the spool: {exc.strerror}",
                              hint="check recorder.spool_dir and its permissions") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise NomadeError(f"{self.dir}: another nomade record is writing this spool",
                              hint="use --no-spool to only look, or another --spool-dir") from None
        self._lock_fd = fd

    def write(self, records: List[Dict[str, Any]]) -> int:
        """Append records (a seq is added to each). Returns how many were written; never raises
        OSError: failures are counted and the batch is dropped."""
        if not records:
            return 0
        try:
            self._ensure_open()
            lines = []
            for rec in records:
                rec = dict(rec, seq=self.counters.next_seq)
                self.counters.next_seq += 1
                lines.append(json.dumps(rec, separators=(",", ":"), sort_keys=True))
            data = ("\n".join(lines) + "\n").encode("utf-8")
            self._fh.write(data)
            self._fh.flush()
            self._seg_size += len(data)
            self.counters.written_records += len(records)
            self._maybe_fsync()
            if self._seg_size >= self.segment_bytes:
                self._rotate()
            return len(records)
        except OSError as exc:
            self._failed(exc, len(records))
            return 0

    def close(self) -> None:
        try:
            if self._started:         # never wrote: leave the counters of earlier runs alone
                self._close_segment()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _close_segment(self) -> None:
        if self._fh is not None:
            try:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
            except OSError as exc:
                self._failed(exc, 0)
            self._fh = None
        self._save_counters()

    def status(self) -> Dict[str, Any]:
        segs = list_segments(self.dir)
        return dict(vars(self.counters), segments=len(segs),
                    bytes=sum(_size(p) for p in segs), dir=str(self.dir))

    # ------------------------------------------------------------------ internals
    def _ensure_open(self) -> None:
        if self._fh is not None:
            return
        make_private_dirs(self.dir)
        if not self._started:
            self._load_counters()
            self._started = True
        segs = list_segments(self.dir)
        n = (_seg_index(segs[-1]) + 1) if segs else 1
        path = self.dir / f"seg-{n:09d}.jsonl"
        self._fh = open(path, "ab", opener=private_opener)
        self._path = path
        self._seg_size = 0
        self._enforce_bound()

    def _rotate(self) -> None:
        fh, self._fh = self._fh, None
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        self._last_fsync = self.mono()
        self._save_counters()
        self._ensure_open()

    def _maybe_fsync(self) -> None:
        now = self.mono()
        if now - self._last_fsync >= self.fsync_interval_s or now < self._last_fsync:
            os.fsync(self._fh.fileno())
            self._last_fsync = now

    def _enforce_bound(self) -> None:
        """Delete the oldest closed segments while the spool is over max_bytes."""
        segs = list_segments(self.dir)
        total = sum(_size(p) for p in segs)
        for p in segs[:-1]:
            if total <= self.max_bytes:
                break
            size, lines = _size(p), _count_lines(p)
            try:
                p.unlink()
            except FileNotFoundError:
                continue          # ingested meanwhile
            total -= size
            self.counters.dropped_segments += 1
            self.counters.dropped_records += lines

    def _failed(self, exc: OSError, n: int) -> None:
        self.counters.write_errors += 1
        self.counters.dropped_records += n
        self.counters.last_error = f"{exc.strerror or exc} ({time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())})"
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass          # the data is already counted as dropped; the handle is discarded
            self._fh = None
            if self._path is not None and _size(self._path) == 0:
                try:
                    self._path.unlink()   # do not leave one empty segment per failed batch
                except OSError:
                    pass      # a stray empty segment is harmless to readers

    def _load_counters(self) -> None:
        try:
            data = json.loads((self.dir / COUNTERS).read_text())
            self.counters = SpoolCounters(**{k: data[k] for k in vars(SpoolCounters()) if k in data})
        except (OSError, ValueError, TypeError):
            self.counters = SpoolCounters(next_seq=_next_seq_from_segments(self.dir))

    def _save_counters(self) -> None:
        try:
            write_atomic(self.dir / COUNTERS, json.dumps(vars(self.counters), sort_keys=True).encode(),
                         sync_dir=False)
        except OSError:
            self.counters.write_errors += 1


# ---------------------------------------------------------------------- reading
def list_segments(directory: Path) -> List[Path]:
    try:
        names = [n for n in os.listdir(directory) if _SEG.match(n)]
    except OSError:
        return []
    return [Path(directory) / n for n in sorted(names)]


def read_segment(path: Path) -> Iterator[Tuple[int, Optional[Dict[str, Any]], str]]:
    """(line number, record or None, raw line) for each line; a None record is malformed."""
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh, start=1):
            text = raw.decode("utf-8", "replace")
            if not text.endswith("\n"):
                yield i, None, text          # torn last line
                continue
            try:
                rec = json.loads(text)
            except ValueError:
                yield i, None, text
                continue
            yield i, (rec if isinstance(rec, dict) else None), text


def read_counters(directory: Path) -> Dict[str, Any]:
    try:
        return json.loads((Path(directory) / COUNTERS).read_text())
    except (OSError, ValueError):
        return {}


def _seg_index(p: Path) -> int:
    return int(_SEG.match(p.name).group(1))


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def _count_lines(p: Path) -> int:
    try:
        with open(p, "rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 16), b""))
    except OSError:
        return 0


def _next_seq_from_segments(directory: Path) -> int:
    segs = list_segments(directory)
    best = 0
    if segs:
        for _i, rec, _raw in read_segment(segs[-1]):
            if rec and isinstance(rec.get("seq"), int):
                best = max(best, rec["seq"])
    return best + 1
