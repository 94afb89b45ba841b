"""Slurm accounting -> the store: live and incremental (``sacct``), a saved ``sacct -P`` dump, or a
saved ``sacct --json`` document.

Live ingestion runs ``sacct -a -D -P --delimiter=<TOKEN> --format=<FIELDS> -s <every state>
-S <start> -E now`` through ``nomade.command.run_command`` (the explicit state list makes sacct
return jobs that never became eligible, e.g. held and cancelled while pending). ``<TOKEN>`` is a
fresh random delimiter per run (``live_delimiter``): ``sacct -P`` escapes nothing, so a newline in
a user's ``--wrap``, ``--comment``, job name or path could otherwise carry a complete forged row
(another user's name, uid, state); a line holding fewer than a row's worth of a token its author
cannot know is always read as the continuation of the field before it. ``-S`` is the stored high-water mark minus
``slurm.overlap_s`` (first run: ``slurm.initial_lookback_days`` ago); sacct then lists every job
that was active in the window, so a job that changed after the mark is read again, and the upsert
makes overlapping windows harmless. The new mark is the time this run asked sacct for "now".
``-D`` also lists earlier runs of requeued jobs; the last (newest) run of a job id wins.
``SLURM_TIME_FORMAT=standard`` is forced so times parse the same everywhere.

Records are written ``ingest.batch_size`` at a time (one transaction each); bad rows are
quarantined with their line and reason, and ingestion goes on.
"""

import contextlib
import gc
import gzip
import io
import itertools
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, TextIO, Tuple

from ..command import run_command
from ..errors import IngestError, SlurmCommandError, StoreError
from ..slurm import sacct_json
from ..slurm.sacct_record import Bad, RowMapper
from ..slurm.sacct_scan import (BinaryLines, Counter, WriteError, fast_available, fast_usable,
                                prepared_chunks)
from ..slurm.sacct_text import SacctText
from ..store.bulk import indexes_deferred
from ..store.db import Store
from ..store.jobs import (IngestCounts, c_writer, check_owners, conflict_item, get_high_water,
                          job_count, jobs_mark, owner_conflict, quarantine, row_null,
                          set_high_water, upsert_jobs, widen_cache, write_rows)

# structured fields first, free text (may hold '|' or newlines) last; see slurm/sacct_text.py
LIVE_FIELDS = (
    "JobID", "JobIDRaw", "Cluster", "User", "UID", "Group", "Account", "Partition", "QOS",
    "State", "ExitCode", "DerivedExitCode", "Submit", "Eligible", "Start", "End", "Elapsed",
    "Timelimit", "ReqMem", "ReqCPUS", "ReqNodes", "ReqTRES", "AllocCPUS", "NNodes", "AllocTRES",
    "NodeList", "MaxRSS", "TotalCPU", "NTasks", "TRESUsageInTot", "TRESUsageInMax", "JobName",
    "WorkDir", "SubmitLine",
)
# every state: with an explicit --state list sacct also returns jobs that were never eligible
# (held, then cancelled while pending), which `-S/-E` alone leaves out (seen on Slurm 22.05)
LIVE_STATES = "BF,CA,CD,DL,F,NF,OOM,PD,PR,R,RQ,RS,RV,S,TO"
LIVE_TOKEN_BYTES = 16  # 128 random bits per run


def live_delimiter() -> str:
    """A fresh field delimiter for one live sacct run: the ASCII unit separator and 32 random hex
    digits (sacct 22.05 prints a multi-character --delimiter as given). Text a user wrote before
    the run cannot hold it, so it cannot make a row; the Python reader takes such text (the C
    reader is for one-byte delimiters)."""
    return "\x1f" + secrets.token_hex(LIVE_TOKEN_BYTES)

_INVALID_FIELD = re.compile(r'Invalid field requested: "?([A-Za-z]+)')
ProgressFn = Callable[[int], None]


@dataclass
class SacctIngestResult:
    counts: IngestCounts = field(default_factory=IngestCounts)
    rows: int = 0                      # logical rows read (jobs and steps, good and bad)
    jobs: int = 0                      # job records produced
    source: str = ""
    window: Optional[Tuple[float, float]] = None   # live: (start, end) asked of sacct

    def as_dict(self) -> dict:
        d = dict(self.counts.as_dict(), rows=self.rows, jobs=self.jobs, source=self.source)
        if self.window is not None:
            d["window"] = {"start": self.window[0], "end": self.window[1]}
        return d


def ingest_text(store: Store, lines: Iterable[str], *, qsource: str, fields: Optional[Sequence[str]] = None,
                delimiter: str = "|", cluster: Optional[str] = None, batch_size: int = 5000,
                progress: Optional[ProgressFn] = None, fast: Optional[bool] = None,
                now: Optional[float] = None) -> SacctIngestResult:
    """Ingest ``sacct -P`` text (an iterable of lines, or a text file, read lazily) in batches of
    ``batch_size`` jobs, one transaction each; bad rows are quarantined under ``qsource``.
    ``fast``: use the C reader for clean rows (None: when it is built and fits the delimiter)."""
    reader = SacctText(lines, fields=fields, delimiter=delimiter, source=qsource)
    mapper = RowMapper(reader.fields, cluster or None)
    result = SacctIngestResult(source=qsource)
    widen_cache(store)
    counter = Counter()
    bad: List[Bad] = []
    now = time.time() if now is None else now
    fast = fast_usable(reader) if fast is None else fast
    writer = c_writer(store, batch_size) if fast and C_WRITER else None
    mark = jobs_mark(store)
    # the rows are tuples of plain values (no cycles): the cyclic GC would only rescan them
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        chunks = prepared_chunks(reader, mapper, bad, "sacct", now, counter, fast, writer,
                                 row_null(store))
        if writer is not None:
            _write_c(store, writer, chunks, bad, qsource, result, counter, progress)
        else:
            _write_py(store, chunks, bad, qsource, result, counter, progress, batch_size)
    finally:
        if writer is not None:
            writer.close()
        if gc_was_on:
            gc.enable()
    _check_owners(store, mark, qsource, result)
    result.rows = counter.n
    if progress is not None:
        progress(counter.n)
    return result


def _check_owners(store: Store, mark: int, qsource: str, result: SacctIngestResult) -> None:
    """New jobs whose user and uid contradict the store or each other are quarantined (forged or
    corrupt rows in a saved -P dump; store.jobs.check_owners)."""
    refused = check_owners(store, mark, qsource)
    if refused:
        result.counts.quarantined += refused
        result.counts.new = max(0, result.counts.new - refused)


# the C writer for the C reader's jobs (store.jobs.c_writer); False: write_rows for all (tests)
C_WRITER = True


def _write_c(store: Store, writer, chunks: Iterable, bad: List[Bad], qsource: str,
             result: SacctIngestResult, counter: Counter, progress: Optional[ProgressFn]) -> None:
    """The C reader's jobs go into ``writer`` as they are read; the Python reader's chunks are
    added to it in their place in the input (it applies the batch rules of _write_py)."""
    try:
        for _keys, vals in chunks:
            if vals:
                writer.add(vals)
            _take_conflicts(writer, bad)
            if bad:
                _quarantine(store, bad, qsource, result)
            if progress is not None:
                progress(counter.n)
        writer.flush()
        _take_conflicts(writer, bad)
    except WriteError as exc:
        raise StoreError(f"{store.path}: {exc}",
                         hint="batches before the failure are stored; re-run once it is fixed") from None
    new, updated, unchanged, jobs = writer.counts()
    result.counts.add(IngestCounts(new, updated, unchanged))
    result.jobs += jobs
    _quarantine(store, bad, qsource, result)


def _take_conflicts(writer, bad: List[Bad]) -> None:
    """The jobs the C writer refused (another owner than the stored job's) as quarantine items."""
    for cluster, job_id, user, uid, stored_user, stored_uid in writer.take_conflicts():
        why = owner_conflict(stored_user, stored_uid, user, uid) or "owner changed"
        _source, loc, reason, raw = conflict_item("", cluster, job_id, user, uid, why)
        bad.append((loc, reason, raw))


def _write_py(store: Store, chunks: Iterable, bad: List[Bad], qsource: str,
              result: SacctIngestResult, counter: Counter, progress: Optional[ProgressFn],
              batch_size: int) -> None:
    """Jobs in batches of ``batch_size``, each written by write_rows in one transaction."""
    latest: Dict[Tuple[str, str], Tuple[tuple, List[tuple]]] = {}
    last = None
    for keys, vals in chunks:
        i = 0
        while i < len(keys):
            room = batch_size - len(latest)
            if room <= 0:
                # a batch never ends between two runs of one job (sacct -D): the later wins
                if keys[i] != last:
                    _flush(store, latest, bad, qsource, result)
                    if progress is not None:
                        progress(counter.n)
                    continue
                room = 1
            j = min(len(keys), i + room)
            latest.update(zip(keys[i:j], vals[i:j]))
            last = keys[j - 1]
            i = j
    _flush(store, latest, bad, qsource, result)


def _flush(store: Store, latest: Dict, bad: List[Bad], qsource: str, result: SacctIngestResult) -> None:
    if latest:
        result.counts.add(write_rows(store, latest, qsource))
        result.jobs += len(latest)
        latest.clear()
    _quarantine(store, bad, qsource, result)


def _quarantine(store: Store, bad: List[Bad], qsource: str, result: SacctIngestResult) -> None:
    if bad:
        result.counts.quarantined += quarantine(store, [(qsource, loc, why, raw) for loc, why, raw in bad])
        bad.clear()


def open_text(path: str) -> TextIO:
    """A saved dump as text lines: ``-`` is stdin, ``*.gz`` is gunzipped; bad bytes become U+FFFD
    (and such rows are quarantined)."""
    return _open(path, binary=False)


def open_binary(path: str):
    """A saved dump as bytes (for the C reader; see sacct_scan.BinaryLines)."""
    return _open(path, binary=True)


def _open(path: str, binary: bool):
    try:
        if path == "-":
            if binary:
                return sys.stdin.buffer
            return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n")
        if path.endswith(".gz"):
            if binary:
                return gzip.open(path, "rb")
            return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="\n")
        if binary:
            return open(path, "rb")
        return open(path, "r", encoding="utf-8", errors="replace", newline="\n")
    except FileNotFoundError:
        raise IngestError(f"{path}: no such file", hint="check the path of the sacct dump") from None
    except IsADirectoryError:
        raise IngestError(f"{path}: is a directory, expected a sacct -P dump") from None
    except PermissionError:
        raise IngestError(f"{path}: permission denied", hint="run as a user who can read it") from None


def ingest_file(store: Store, path: str, *, fields: Optional[Sequence[str]] = None,
                delimiter: str = "|", cluster: Optional[str] = None, batch_size: int = 5000,
                progress: Optional[ProgressFn] = None, fast: Optional[bool] = None) -> SacctIngestResult:
    """Ingest a saved ``sacct -P`` dump (with its header line, or with ``fields``). A dump big
    against the store is loaded with the jobs indexes set aside (nomade.store.bulk)."""
    qsource = f"sacct-file:{'stdin' if path == '-' else os.path.abspath(path)}"
    binary = fast is not False and fast_available()
    fh = open_binary(path) if binary else open_text(path)
    try:
        with _maybe_bulk(store, path):
            return ingest_text(store, BinaryLines(fh) if binary else fh, qsource=qsource,
                               fields=fields, delimiter=delimiter, cluster=cluster,
                               batch_size=batch_size, progress=progress, fast=fast)
    except (OSError, EOFError) as exc:  # gzip/IO errors mid-stream
        raise IngestError(f"{path}: read failed: {exc}",
                          hint="batches before the failure are stored; fix the file and re-run") from None
    finally:
        if path != "-":
            fh.close()


BULK_MIN_JOBS = 50_000       # expected jobs in a dump for its load to set the indexes aside
_DUMP_BYTES_PER_JOB = 800    # a job with its steps in a sacct -P dump, roughly (gzip: about 1/6)


def _maybe_bulk(store: Store, path: str):
    """Set the jobs indexes aside when the dump is expected to hold at least BULK_MIN_JOBS jobs
    and at least as many as the store already has (rebuilding costs about what the store holds)."""
    try:
        size = 0 if path == "-" else os.path.getsize(path)
    except OSError:
        size = 0
    expected = size * (6 if path.endswith(".gz") else 1) // _DUMP_BYTES_PER_JOB
    if expected < BULK_MIN_JOBS:
        return contextlib.nullcontext()
    return indexes_deferred(store) if expected >= job_count(store) else contextlib.nullcontext()


def ingest_json_file(store: Store, path: str, *, cluster: Optional[str] = None,
                     batch_size: int = 5000) -> SacctIngestResult:
    """Ingest a saved ``sacct --json`` document (Slurm 22.05, dbv0.0.38)."""
    qsource = f"sacct-json:{'stdin' if path == '-' else os.path.abspath(path)}"
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
                text = fh.read()
    except OSError as exc:
        raise IngestError(f"{path}: cannot read: {exc.strerror or exc}",
                          hint="check the path of the sacct --json file") from None
    jobs = sacct_json.load_jobs(text, path)
    del text
    result = SacctIngestResult(source=qsource, rows=len(jobs))
    bad: List[Bad] = []
    recs = sacct_json.records(jobs, cluster or None, bad)
    while True:
        batch = list(itertools.islice(recs, batch_size))
        if batch:
            result.counts.add(upsert_jobs(store, batch, "sacct-json"))
            result.jobs += len(batch)
        _quarantine(store, bad, qsource, result)
        if not batch:
            return result


def high_water_key(cluster: Optional[str]) -> str:
    return f"sacct:{cluster or 'default'}"


def live_start(store: Store, key: str, now: float, overlap_s: int, lookback_days: int) -> float:
    """Where the next incremental read starts: the mark minus the overlap, else the lookback."""
    mark = get_high_water(store, key)
    if mark is None:
        return now - lookback_days * 86400
    return min(mark - overlap_s, now)


def sacct_argv(sacct: str, fields: Sequence[str], start: float, delimiter: str,
               job_id: Optional[str] = None) -> List[str]:
    """Jobs active since ``start``; or, with ``job_id``, that one job (every run of it)."""
    from ..slurm.sacct_fields import format_time
    head = [sacct, "-a", "-D", "-P", f"--delimiter={delimiter}", f"--format={','.join(fields)}"]
    if job_id is not None:
        return head + ["-j", str(job_id)]
    return head + ["-s", LIVE_STATES, "-S", format_time(start), "-E", "now"]


def run_sacct(sacct: str, start: float, timeout: float, delimiter: str,
              fields: Sequence[str] = LIVE_FIELDS, job_id: Optional[str] = None) -> Tuple[str, List[str]]:
    """Run sacct for jobs active since ``start``, fields separated by ``delimiter``; returns
    (stdout, fields used). A field this sacct does not know is dropped and the command re-run
    (older Slurm lacks e.g. SubmitLine)."""
    fields = list(fields)
    env = dict(os.environ, SLURM_TIME_FORMAT="standard")
    for _ in range(len(fields)):
        try:
            res = run_command(sacct_argv(sacct, fields, start, delimiter, job_id), timeout, env=env)
            return res.stdout, fields
        except SlurmCommandError as exc:
            m = _INVALID_FIELD.search(exc.stderr or "")
            lower = [f.lower() for f in fields]
            if m is None or m.group(1).lower() not in lower or m.group(1).lower() == "jobid":
                raise
            del fields[lower.index(m.group(1).lower())]
    raise IngestError("sacct rejected every requested field", hint="check `sacct --helpformat`")


def ingest_live(store: Store, *, sacct: str = "sacct", cluster: Optional[str] = None,
                timeout: float = 120.0, overlap_s: int = 3600, lookback_days: int = 7,
                batch_size: int = 5000, since: Optional[float] = None,
                progress: Optional[ProgressFn] = None, now: Optional[float] = None) -> SacctIngestResult:
    """One incremental pass: run sacct from the high-water mark (or ``since``), store the jobs,
    then move the mark to the time sacct was asked for."""
    now = time.time() if now is None else now
    key = high_water_key(cluster)
    start = since if since is not None else live_start(store, key, now, overlap_s, lookback_days)
    delimiter = live_delimiter()
    out, fields = run_sacct(sacct, start, timeout, delimiter)
    if out.strip():
        lines = io.StringIO(out, newline="\n")
        del out
        result = ingest_text(store, lines, qsource=key, fields=fields, delimiter=delimiter,
                             cluster=cluster, batch_size=batch_size, progress=progress)
    else:
        result = SacctIngestResult(source=key)
    result.window = (start, now)
    set_high_water(store, key, now)
    return result
