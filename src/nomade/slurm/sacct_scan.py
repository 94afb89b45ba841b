"""Turning ``sacct -P`` text into store rows: the C fast path for clean rows, the Python reader
(``sacct_text`` + ``sacct_record``) for everything else.

Both produce the same thing for a job: its key ``(cluster, job_id)`` and ``(row, steps)``, the
jobs-table row (``JOB_COLUMNS`` + source, record hash, ingested_at, updated_at) and the job_steps
rows (``nomade.jobrecord.record_rows``), handed on in chunks of jobs in input order. Unknown values
are the ``null`` the caller passes: what the store binds for NULL (``store.jobs.row_null``); this
package produces rows and never imports the store, which writes them.
The record hash is a blake2b digest of the job's rows as read (their mapped fields), so the two
paths give the same hash and re-reading an unchanged job is recognised as unchanged.

The C module (``_sacct_scan``, built at install when a compiler is there) handles a job only if
all its rows are clean single lines; it hands every other stretch of the input, exactly as read,
to the Python reader, which re-joins broken rows and quarantines bad ones. A stretch always starts
at a row the Python reader would also start there, so splitting the input this way changes no
result (tests/unit/test_sacct_scan.py ingests every fixture both ways and compares the stores).

With the C module, ingestion also writes the C reader's jobs without making Python objects of
them: they go from the scanner into a ``_sacct_scan.Writer`` (``store.jobs.c_writer``), which binds
their values into SQLite with write_rows's rules and ingest_text's batch rules; the Python
reader's jobs are added to the same writer in their place in the input.
"""

import hashlib
import io
import itertools
from typing import Iterable, Iterator, List, Tuple

from ..jobrecord import JobRecord, record_rows
from . import sacct_fields as F
from .sacct_record import Bad, RowMapper, assemble
from .sacct_text import SacctText

try:  # optional: built from _sacct_scan.c when the install had a C compiler
    from . import _sacct_scan
except ImportError:  # pragma: no cover - depends on the install
    _sacct_scan = None

# what the C writer raises when SQLite refuses a write (a stand-in, never raised, without it)
WriteError = getattr(_sacct_scan, "WriteError", None) or type("WriteError", (Exception,), {})

Key = Tuple[str, str]
Value = Tuple[tuple, List[tuple]]            # (jobs row, job_steps rows)
Chunk = Tuple[List[Key], List[Value]]        # jobs in input order
BLOCK_CHARS = 1 << 22          # text read per call of the C scanner
MAX_LEFTOVER = 1 << 24         # a stretch longer than this without a clean job: Python for the rest
_PERSON = b"nomade-sacct-1"


def digest(material: bytes) -> str:
    return hashlib.blake2b(material, digest_size=16, person=_PERSON).hexdigest()


def canonical_fields(mapper: RowMapper) -> List[int]:
    """The row positions hashed, in a fixed order (-1: the field is not in the dump): the first
    31 always, the step-usage fields (NTasks, TRESUsageInTot, TRESUsageInMax) only when the dump
    has them, so that a dump without them keeps the hashes it had before they were read."""
    full = mapped_fields(mapper)
    return full[:31] + [i for i in full[31:] if i >= 0]


def mapped_fields(mapper: RowMapper) -> List[int]:
    """The position of every field the reader maps, in the C reader's order (-1: absent)."""
    return [mapper.i_jobid, mapper.i_raw, mapper.i_cluster, mapper.i_name, mapper.i_user,
            mapper.i_uid, mapper.i_group, mapper.i_account, mapper.i_partition, mapper.i_qos,
            mapper.i_state, mapper.i_exit, mapper.i_dexit, mapper.i_submit, mapper.i_eligible,
            mapper.i_start, mapper.i_end, mapper.i_elapsed, mapper.i_limit, mapper.i_reqmem,
            mapper.i_reqcpus, mapper.i_reqnodes, mapper.i_reqtres, mapper.i_alloccpus,
            mapper.i_nnodes, mapper.i_alloctres, mapper.i_nodelist, mapper.i_maxrss,
            mapper.i_totalcpu, mapper.i_workdir, mapper.i_submitline, mapper.i_ntasks,
            mapper.i_tres_tot, mapper.i_tres_max]


def prepare(rec: JobRecord, rows: List[List[str]], canon: List[int], source: str,
            now: float, null: object = None) -> Tuple[Key, Value]:
    """A JobRecord assembled by the Python reader, as store rows (same form as the C path)."""
    material = "\x1e".join("\x1f".join([v[i] for i in canon]) for v in rows)
    h = digest(material.encode("utf-8", "surrogatepass"))
    return (rec.cluster, rec.job_id), record_rows(rec, source, h, now, null)


class Counter:
    """The logical rows read so far (jobs and steps, good and bad)."""

    def __init__(self) -> None:
        self.n = 0


def python_chunks(reader: SacctText, mapper: RowMapper, bad: List[Bad], source: str, now: float,
                  counter: Counter, null: object = None) -> Iterator[Chunk]:
    yield from _chunks(assemble(_counting(reader, counter), mapper, bad), mapper, source, now, null)


def _chunks(assembled, mapper: RowMapper, source: str, now: float, null: object,
            size: int = 1000) -> Iterator[Chunk]:
    canon = canonical_fields(mapper)
    keys: List[Key] = []
    vals: List[Value] = []
    for rec, rows in assembled:
        key, val = prepare(rec, rows, canon, source, now, null)
        keys.append(key)
        vals.append(val)
        if len(keys) >= size:
            yield keys, vals
            keys, vals = [], []
    if keys:
        yield keys, vals


def fast_available() -> bool:
    return _sacct_scan is not None


def fast_usable(reader: SacctText) -> bool:
    d = reader.delimiter
    return (_sacct_scan is not None and len(d) == 1 and 0 < ord(d) < 128 and d not in "\n\r"
            and not (ord(d) < 0x20 and d != "\t" and d != "\x1f") and d != "\x7f" and reader.n <= 512)


def _spec(mapper: RowMapper, delimiter: str, source: str, now: float, null: object) -> tuple:
    parsers = (F.parse_int, F.parse_time, F.parse_duration, F.parse_timelimit, F.parse_mem,
               F.parse_exit, F.parse_state_field, F.tres_gpus, sum)
    caches = (F._hour_cache, F._limit_cache, F._state_cache, F._gpu_cache)
    return (mapper.n, ord(delimiter), tuple(mapped_fields(mapper)), mapper.cluster, source,
            float(now), null, parsers, caches, _PERSON)


class BinaryLines:
    """A dump file opened in binary: its lines decoded as text files are read here (UTF-8, a bad
    byte becomes U+FFFD), for the header and the Python reader; the C reader takes the bytes."""

    def __init__(self, raw):
        self.raw = raw

    def __iter__(self) -> "BinaryLines":
        return self

    def __next__(self) -> str:
        line = self.raw.readline()
        if not line:
            raise StopIteration
        return line.decode("utf-8", "replace")

    def read_bytes(self, n: int) -> bytes:
        return self.raw.read(n)


def _blocks(reader: SacctText) -> Iterator:
    """The input after the header, in blocks of about BLOCK_CHARS (bytes from a BinaryLines, else
    text)."""
    src = reader.source_lines
    read_bytes = getattr(src, "read_bytes", None)
    if reader.pushback is not None:
        line = reader.pushback + "\n"
        yield line.encode("utf-8", "surrogatepass") if read_bytes is not None else line
    read = read_bytes or getattr(src, "read", None)
    if read is not None:
        while True:
            block = read(BLOCK_CHARS)
            if not block:
                return
            yield block
    while True:
        block = "".join(itertools.islice(src, 20000))
        if not block:
            return
        yield block


def fast_chunks(reader: SacctText, mapper: RowMapper, bad: List[Bad], source: str, now: float,
                counter: Counter, sink=None, null: object = None) -> Iterator[Chunk]:
    """The C reader's jobs and the Python reader's (for the stretches it hands on), in input
    order. With ``sink`` (a ``_sacct_scan.Writer``) the C reader's jobs go straight into it and
    only the Python reader's are yielded (plus an empty chunk per block, for progress); the scan
    stops before the first clean job after a stretch, so the writer still gets them in order."""
    spec = _spec(mapper, reader.delimiter, source, now, null)
    binary = hasattr(reader.source_lines, "read_bytes")
    nl = b"\n" if binary else "\n"
    left, line = nl[:0], reader.first_data_line
    blocks = _blocks(reader)
    for block in itertools.chain(blocks, [None]):
        final = block is None
        text = left if final else left + block
        if not final:
            cut = text.rfind(nl) + 1
            if cut == 0:
                left = text
                continue
            text, left = text[:cut], text[cut:]
        else:
            left = nl[:0]
        start = 0
        while start >= 0:
            try:
                keys, vals, spans, rest, line, rows, start = _sacct_scan.scan(text, final, line, spec,
                                                                              sink, start)
            except UnicodeError:  # lone surrogates in the text: the Python reader takes it all
                keys, vals, rest, rows, start = [], [], nl[:0], 0, -1
                spans = [(0, text if not binary else text.decode("utf-8", "replace"), line)]
                line += text.count(nl)
            counter.n += rows
            pos = 0
            for at, span_text, span_line in spans:
                if at > pos:
                    yield keys[pos:at], vals[pos:at]
                yield from _span(span_text, span_line, reader, mapper, bad, source, now, counter, null)
                pos = at
            if pos < len(keys):
                yield (keys[pos:], vals[pos:]) if pos else (keys, vals)
        if sink is not None:
            yield [], []
        left = rest + left
        if len(left) > MAX_LEFTOVER:  # no clean job for a long stretch: Python for the rest
            if binary:
                tail = itertools.chain(_lines_of([left.decode("utf-8", "replace")]), reader.source_lines)
            else:
                tail = itertools.chain(io.StringIO(left, newline="\n"), _lines_of(blocks))
            yield from _span_lines(tail, line, reader, mapper, bad, source, now, counter, null)
            return


def _lines_of(blocks: Iterator[str]) -> Iterator[str]:
    for block in blocks:
        yield from io.StringIO(block, newline="\n")


def _span(text: str, first_line: int, reader: SacctText, mapper: RowMapper, bad: List[Bad],
          source: str, now: float, counter: Counter, null: object) -> Iterator[Chunk]:
    return _span_lines(io.StringIO(text, newline="\n"), first_line, reader, mapper, bad, source,
                       now, counter, null)


def _span_lines(lines: Iterable[str], first_line: int, reader: SacctText, mapper: RowMapper,
                bad: List[Bad], source: str, now: float, counter: Counter,
                null: object) -> Iterator[Chunk]:
    sub = SacctText(lines, fields=reader.fields, delimiter=reader.delimiter, source=reader.source,
                    header=False, first_line=first_line)
    yield from _chunks(assemble(_counting(sub, counter), mapper, bad), mapper, source, now, null)


def _counting(rows: Iterable, counter: Counter) -> Iterator:
    for row in rows:
        counter.n += 1
        yield row


def prepared_chunks(reader: SacctText, mapper: RowMapper, bad: List[Bad], source: str, now: float,
                    counter: Counter, fast: bool, sink=None, null: object = None) -> Iterator[Chunk]:
    """The jobs of ``reader`` as store rows, in input order, a chunk at a time, unknown values as
    ``null`` (``fast``: the C reader, with its jobs going into ``sink`` if given; see fast_chunks)."""
    if fast:
        return fast_chunks(reader, mapper, bad, source, now, counter, sink, null)
    return python_chunks(reader, mapper, bad, source, now, counter, null)
