"""Standard Workload Format (SWF v2.2) traces -> JobRecords in the store.

An SWF file is a header of ``;``-comment lines (``; UnixStartTime: 1163199901`` ...) followed by
one line per job with 18 whitespace-separated numbers; ``-1`` means unknown. Mapping (see
docs/cli.md, ``nomade import swf``):

====  =====================  ==========================================================
 #    SWF field              JobRecord
====  =====================  ==========================================================
 1    job number             job_id (text), job_id_raw
 2    submit time            submit_time = UnixStartTime + field (0 if no UnixStartTime)
 3    wait time              start_time = submit + wait                       (outcome)
 4    run time               elapsed_s; end_time = start + run                (outcome)
 5    allocated procs        alloc_cpus; req_cpus only if field 8 is -1       (outcome)
 6    average CPU time       total_cpu_s = field 6 x field 5                  (outcome)
 7    used memory (KB/proc)  max_rss_mb (per processor, MiB)                  (outcome)
 8    requested procs        req_cpus
 9    requested time         timelimit_s
 10   requested memory       req_mem_mb (KB per processor -> MiB per CPU, req_mem_per_cpu=1)
 11   status                 1 COMPLETED, 0 FAILED, 5 CANCELLED; anything else: state NULL,
                             is_final 0 (no outcome); state_raw = 'swf status <n>'
 12   user id                user 'u<id>', uid <id>
 13   group id               grp 'g<id>'
 14   executable id          name 'app<id>' (the job-name proxy)
 15   queue                  qos 'q<id>' (SWF queues are closest to Slurm QOS)
 16   partition              partition 'p<id>'
====  =====================  ==========================================================

Fields 17-18 (preceding job, think time) are not stored. Lines that do not have 18 numeric
fields are quarantined with their line number and the reason.
"""

import gzip
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, TextIO, Tuple, Union

from ..errors import IngestError
from ..jobrecord import JobRecord
from ..slurm.sacct_fields import INT64_MAX
from ..store.db import Store
from ..store.jobs import IngestCounts, quarantine, upsert_jobs

N_FIELDS = 18
_STATUS = {1: "COMPLETED", 0: "FAILED", 5: "CANCELLED"}
_HEADER = re.compile(r"^;\s*([A-Za-z]+)\s*:\s*(.*?)\s*$")
_NOT_SWF_AFTER = 1000  # malformed job lines before the first good one
_VERSION_SUFFIX = re.compile(r"(-\d+\.\d+(\.\d+)*)?(-cln)?$")  # PWA "-2.1-cln"


@dataclass
class SwfHeader:
    """The header fields nomade uses, plus every ``; Key: value`` line as read."""

    unix_start_time: Optional[int] = None
    time_zone_string: Optional[str] = None
    max_jobs: Optional[int] = None
    fields: Dict[str, str] = field(default_factory=dict)

    def add_line(self, line: str) -> None:
        m = _HEADER.match(line)
        if not m:
            return
        key, value = m.group(1), m.group(2)
        self.fields.setdefault(key, value)
        if key == "UnixStartTime" and self.unix_start_time is None:
            self.unix_start_time = _int_or_none(value)
        elif key == "TimeZoneString" and self.time_zone_string is None:
            self.time_zone_string = value or None
        elif key == "MaxJobs" and self.max_jobs is None:
            self.max_jobs = _int_or_none(value)


@dataclass
class SwfImportResult:
    name: str
    cluster: str
    source: str
    lines: int
    counts: IngestCounts
    header: SwfHeader

    def summary(self) -> str:
        return f"swf {self.name}: {self.counts.summary()} ({self.lines} lines)"

    def as_dict(self) -> Dict[str, object]:
        d: Dict[str, object] = {"trace": self.name, "cluster": self.cluster, "source": self.source,
                                "lines": self.lines}
        d.update(self.counts.as_dict())
        d["unix_start_time"] = self.header.unix_start_time
        d["time_zone"] = self.header.time_zone_string
        return d


def _int_or_none(text: str) -> Optional[int]:
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def trace_name(path: Union[str, Path]) -> str:
    """'LLNL-Atlas-2006-2.1-cln.swf.gz' -> 'llnl-atlas-2006'; 'atlas.swf' -> 'atlas'."""
    name = Path(path).name
    for suffix in (".gz", ".swf"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    name = _VERSION_SUFFIX.sub("", name)
    return name.lower() or "swf"


def _number(text: str) -> Union[int, float]:
    try:
        return int(text)
    except ValueError:
        value = float(text)  # raises ValueError for non-numeric text
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(text) from None
        return int(value) if value.is_integer() else value


def parse_job_line(line: str, cluster: str, unix_start_time: Optional[int]) -> JobRecord:
    """One SWF job line -> JobRecord. Raises ValueError with the reason for a malformed line."""
    parts = line.split()
    if len(parts) != N_FIELDS:
        raise ValueError(f"expected {N_FIELDS} fields, got {len(parts)}")
    try:
        f: List[Union[int, float]] = list(map(int, parts))  # the common case, and fast
    except ValueError:
        f = _numbers(parts)
    job_no = f[0]
    if job_no < 0 or not isinstance(job_no, int):
        raise ValueError(f"bad job number {parts[0]!r}")
    for i, v in enumerate(f):
        if not -INT64_MAX <= v <= INT64_MAX:  # what the store's INTEGER holds
            raise ValueError(f"field {i + 1} {parts[i][:40]} out of range (2^63 or more)")
    if unix_start_time is not None and not 0 <= unix_start_time <= INT64_MAX:
        raise ValueError(f"UnixStartTime {unix_start_time} out of range")
    # every value in range: what _record derives from them (sums, products) is storable too
    return _record(f, parts, job_no, cluster, unix_start_time)


def _record(f: List[Union[int, float]], parts: List[str], job_no: int, cluster: str,
            unix_start_time: Optional[int]) -> JobRecord:
    # -1 (any negative) = unknown
    submit_rel, wait, run, alloc, avg_cpu, used_mem, req_procs, req_time, req_mem = (
        None if v < 0 else v for v in f[1:10])
    status, user, grp, app, queue, part = (None if v < 0 else int(v) for v in f[10:16])
    submit = None if submit_rel is None else float((unix_start_time or 0) + submit_rel)
    start = None if submit is None or wait is None else submit + wait
    end = None if start is None or run is None else start + run
    state = None if status is None else _STATUS.get(status)
    cpus = req_procs if req_procs is not None else alloc
    return JobRecord(
        cluster=cluster,
        job_id=str(job_no),
        job_id_raw=job_no,
        name=None if app is None else f"app{app}",
        user=None if user is None else f"u{user}",
        uid=user,
        grp=None if grp is None else f"g{grp}",
        partition=None if part is None else f"p{part}",
        qos=None if queue is None else f"q{queue}",
        submit_time=submit,
        req_cpus=None if cpus is None else int(cpus),
        req_mem_mb=None if req_mem is None else req_mem / 1024.0,
        req_mem_per_cpu=None if req_mem is None else 1,
        timelimit_s=None if req_time is None else int(req_time),
        state=state,
        state_raw=f"swf status {parts[10]}",
        is_final=0 if state is None else 1,
        start_time=start,
        end_time=end,
        elapsed_s=None if run is None else int(run),
        alloc_cpus=None if alloc is None else int(alloc),
        total_cpu_s=None if avg_cpu is None or alloc is None else float(avg_cpu * alloc),
        max_rss_mb=None if used_mem is None else used_mem / 1024.0,
    )


def _numbers(parts: List[str]) -> List[Union[int, float]]:
    out: List[Union[int, float]] = []
    for p in parts:
        try:
            out.append(_number(p))
        except ValueError:
            raise ValueError(f"non-numeric field {p!r}") from None
    return out


def read_swf(lines: Iterable[str], cluster: str,
             header: Optional[SwfHeader] = None) -> Iterator[Tuple[int, Union[JobRecord, str], str]]:
    """Yield ``(line_no, JobRecord, raw)`` for each job line and ``(line_no, reason, raw)`` for a
    malformed one. Header lines fill ``header`` (they come first in SWF; later ones are read too)."""
    header = SwfHeader() if header is None else header
    for no, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if text.startswith(";"):
            header.add_line(text)
            continue
        try:
            yield no, parse_job_line(text, cluster, header.unix_start_time), text
        except ValueError as exc:
            yield no, str(exc), text


def open_trace(path: Union[str, Path]) -> TextIO:
    """Open an SWF file, gzip-compressed (by magic bytes) or plain, as text."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
        if magic == b"\x1f\x8b":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
        return open(path, "r", encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise IngestError(f"{path}: no such file", hint="give the path of an .swf or .swf.gz trace") from None
    except IsADirectoryError:
        raise IngestError(f"{path}: is a directory, expected an .swf or .swf.gz file") from None
    except PermissionError:
        raise IngestError(f"{path}: not readable (permission denied)") from None


def import_swf(store: Store, path: Union[str, Path], cluster: Optional[str] = None,
               batch_size: int = 5000,
               progress: Optional[Callable[[int], None]] = None,
               keep: Optional[Callable[[JobRecord], bool]] = None) -> SwfImportResult:
    """Stream the trace at ``path`` into the store, ``batch_size`` jobs per transaction.
    ``cluster`` defaults to the trace's name. ``progress(lines_read)`` is called after each batch.
    ``keep(record)`` False leaves a job out (``nomade demo --serve`` replays those later)."""
    name = trace_name(path)
    cluster = cluster or name
    source = f"swf:{name}"
    header = SwfHeader()
    counts = IngestCounts()
    batch: List[JobRecord] = []
    bad: List[Tuple[str, Optional[str], str, str]] = []
    lines = 0
    seen_job = False  # until a job line parses, bad lines are held back (maybe not SWF at all)
    with open_trace(path) as fh:
        try:
            for no, item, raw in read_swf(fh, cluster, header):
                lines += 1
                if isinstance(item, JobRecord):
                    if keep is None or keep(item):
                        batch.append(item)
                    seen_job = True
                else:
                    bad.append((source, f"line {no}", item, raw))
                    if not seen_job:
                        _refuse_if_not_swf(path, bad)
                if len(batch) >= batch_size or (seen_job and len(bad) >= batch_size):
                    _flush(store, batch, bad, source, counts)
                    if progress is not None:
                        progress(lines)
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise IngestError(f"{path}: cannot read the trace: {exc}",
                              hint="is it a complete .swf or .swf.gz file?") from None
    if bad and not seen_job:
        _refuse_if_not_swf(path, bad, at_end=True)
    _flush(store, batch, bad, source, counts)
    if progress is not None:
        progress(lines)
    return SwfImportResult(name=name, cluster=cluster, source=source, lines=lines,
                           counts=counts, header=header)


def _refuse_if_not_swf(path: Union[str, Path], bad: List[Tuple[str, Optional[str], str, str]],
                      at_end: bool = False) -> None:
    """A file whose first job lines are all malformed is not an SWF trace: refuse it whole
    (nothing written) instead of filling the quarantine with it."""
    if at_end or len(bad) >= _NOT_SWF_AFTER:
        raise IngestError(f"{path}: not an SWF trace: none of its first {len(bad)} job lines parse "
                          f"({bad[0][1]}: {bad[0][2]})",
                          hint="give a Standard Workload Format (.swf or .swf.gz) file")


def _flush(store: Store, batch: List[JobRecord], bad: List[Tuple[str, Optional[str], str, str]],
           source: str, counts: IngestCounts) -> None:
    if batch:
        counts.add(upsert_jobs(store, batch, source))
        batch.clear()
    if bad:
        counts.quarantined += quarantine(store, bad)
        bad.clear()
