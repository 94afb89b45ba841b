"""Reading ``sacct -P`` output (live or a saved dump) as a stream of logical rows.

``sacct -P`` separates fields with ``|`` (or ``--delimiter``) and escapes nothing, so a ``|`` or a
newline inside a job name, a working directory or a submit line breaks naive splitting. This
reader knows the field list (from the header line, or given) and which fields are free text
(``FREE_TEXT_FIELDS``), and rebuilds logical rows as follows.

Newlines. Physical lines are joined into one logical row while the row has fewer delimiters than
the field count needs, and a complete row is extended by the next physical line only if its last
field is free text and that line is not the start of a new row. A line starts a new row if it
begins with a JobID (``123``, ``123_4``, ``123_[5-9]``, ``123+0``, with an optional ``.step``)
followed by the delimiter, or if it has a full row's worth of delimiters by itself, or if it holds
control characters / undecodable bytes (garbage, which is then quarantined on its own). With a
long random delimiter (16 characters or more: live ingestion's), user text cannot hold it, so
only a line holding the delimiter can start a row; a continuation line with control bytes in it
(a user's ``--comment`` typed into the submit line) stays in its row.

Extra delimiters. A row with more fields than the header is re-joined: fields before the first
free-text field are taken from the left, fields after the last free-text field from the right,
and the extra pieces are given to the free-text fields in between. With one free-text field
there, that is exact. With several (nomade's live order ends ``JobName|WorkDir|SubmitLine``) the
extra pieces go to the LAST field (a ``|`` in a submit line, e.g. a ``--wrap`` pipeline, is by far
the most common case) unless that leaves a ``WorkDir`` that is not an absolute path; then the
first split whose WorkDir piece starts with ``/`` (or is empty) wins, so a ``|`` in a job name is
recovered.

Cannot be told apart (documented limits): a ``|`` inside WorkDir (it is given to SubmitLine); a
job name containing ``|/`` (split at the ``/``); a newline in a free-text field followed by text
that itself looks like a JobID and a delimiter (read as a new row, which then usually fails the
field count and is quarantined); a row that is short of fields immediately followed by a short
row (joined, then quarantined together). Live ingestion uses a fresh random delimiter per run
(``nomade.ingest.sacct.live_delimiter``): user text cannot hold it, which removes both the ``|``
ambiguity and forged rows (a line with fewer delimiters than a row needs is a continuation);
saved dumps usually use ``|`` (docs/slurm.md says how to export one that cannot be forged).
"""

import re
from typing import Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from ..errors import IngestError
from .sacct_fields import JOB_ID_PATTERN

# fields whose text is chosen by users (may contain the delimiter or newlines)
FREE_TEXT_FIELDS = frozenset({
    "jobname", "workdir", "submitline", "comment", "admincomment", "systemcomment",
    "constraints", "reason", "wckey", "reservation", "container",
})
_MAX_LINES_PER_ROW = 1000
SEALED_DELIMITER_LEN = 16   # a delimiter this long is taken as random (live_delimiter: 33)
_GARBAGE = re.compile("[\x00-\x08\x0b-\x0c\x0e-\x1e\x7f\ufffd]")
_MAX_SPLIT_TRIES = 200


_FIELD_NAME = re.compile(r"\s*([A-Za-z][A-Za-z0-9]*)(?:%-?\d+)?\s*$")
# names of which a header line must hold one (a data row's JobID is never a bare word)
_HEADER_KEYS = frozenset({"jobid", "jobidraw", "jobname", "user", "uid", "account", "cluster",
                          "state", "partition", "submit", "start", "end", "elapsed"})


def header_names(line: str, delimiter: str) -> Optional[List[str]]:
    """The field names of a ``sacct -P`` header line in any column order (``State|JobID|...``;
    ``--format`` widths such as ``JobID%20`` are dropped), or None when ``line`` is not one."""
    return header_values(line.rstrip("\r\n").split(delimiter))


def header_values(values: Sequence[str]) -> Optional[List[str]]:
    """The field names when a row's values are a header's: every value a bare field name and at
    least one a name sacct always knows (a data row never is one: its JobID holds digits)."""
    names = []
    for part in values:
        m = _FIELD_NAME.match(part)
        if m is None:
            return None
        names.append(m.group(1))
    return names if any(n.lower() in _HEADER_KEYS for n in names) else None


class RawRow(NamedTuple):
    line: int                       # first physical line of the row (1-based)
    text: str                       # the row as read (physical lines joined with '\n')
    values: Optional[List[str]]     # one value per field, or None when unreadable
    error: Optional[str]            # why values is None


class SacctText:
    """Iterate the logical rows of ``sacct -P`` text. ``fields`` names the columns when the text
    has no header line; with a header, the header wins (and ``fields`` is ignored)."""

    def __init__(self, lines: Iterable[str], fields: Optional[Sequence[str]] = None,
                 delimiter: str = "|", source: str = "input", header: bool = True,
                 first_line: int = 1):
        if not delimiter:
            raise IngestError("the sacct field delimiter must not be empty")
        self._lines = iter(lines)
        self.delimiter = delimiter
        self.source = source
        self.fields: List[str] = list(fields) if fields else []
        self._first_line = first_line
        self._pushback: Optional[str] = None
        if header:
            self._read_header()
        elif not self.fields:
            raise IngestError(f"{source}: no field list")
        self.n = len(self.fields)
        keys = [f.lower() for f in self.fields]
        self._free = [i for i, k in enumerate(keys) if k in FREE_TEXT_FIELDS]
        self._workdir = keys.index("workdir") if "workdir" in keys else -1
        self._last_free = bool(self._free) and self._free[-1] == self.n - 1
        self._start = re.compile(JOB_ID_PATTERN + re.escape(delimiter))
        # a long random delimiter (live ingestion's) cannot be in user text: a line without it
        # continues the row, control bytes and all (a user's --comment may hold them)
        self._sealed = len(delimiter) >= SEALED_DELIMITER_LEN

    def _read_header(self) -> None:
        for line in self._lines:
            line = line.rstrip("\r\n")
            if not line.strip():
                self._first_line += 1
                continue
            names = header_names(line, self.delimiter)
            if names is not None:
                self.fields = names
                self._first_line += 1
            else:
                self._pushback = line
            break
        if not self.fields:
            raise IngestError(
                f"{self.source}: no header line (JobID|...) and no field list",
                hint="pass --format with the fields the dump was written with, e.g. "
                     "--format JobID,JobName,State,...")
        if "jobid" not in [f.lower() for f in self.fields]:
            raise IngestError(f"{self.source}: the field list has no JobID",
                              hint="dump with --format=JobID,... (JobID is needed to key jobs)")

    @property
    def source_lines(self) -> Iterator[str]:
        """The input after the header (and after ``pushback``), not read yet."""
        return self._lines

    @property
    def pushback(self) -> Optional[str]:
        """The first data line, already read while looking for a header (headerless input)."""
        return self._pushback

    @property
    def first_data_line(self) -> int:
        return self._first_line

    def __iter__(self) -> Iterator[RawRow]:
        d = self.delimiter
        need = self.n - 1
        start = self._start
        last_free = self._last_free
        parts: List[str] = []
        count = 0
        first = self._first_line
        no = self._first_line - 1
        src = self._lines if self._pushback is None else _chain_one(self._pushback, self._lines)
        for line in src:
            no += 1
            if line[-1:] == "\n":
                line = line[:-1]
                if line[-1:] == "\r":
                    line = line[:-1]
            if not parts:
                if not line:
                    continue
                parts = [line]
                count = line.count(d)
                first = no
                continue
            c = line.count(d)
            if self._sealed:
                is_new = (not last_free or c > 0) if count >= need else c >= need
            elif count >= need:
                is_new = (not last_free or c >= need or start.match(line) is not None
                          or _GARBAGE.search(line) is not None)
            else:
                is_new = (c >= need or _GARBAGE.search(line) is not None
                          or _GARBAGE.search(parts[-1]) is not None)
            if is_new or len(parts) >= _MAX_LINES_PER_ROW:
                yield self._row(first, parts)
                if not line:
                    parts = []
                    continue
                parts = [line]
                count = c
                first = no
            else:
                parts.append(line)
                count += c
        if parts:
            yield self._row(first, parts)

    def _row(self, line_no: int, parts: List[str]) -> RawRow:
        text = parts[0] if len(parts) == 1 else "\n".join(parts)
        values = text.split(self.delimiter)
        if len(values) == self.n:
            return RawRow(line_no, text, values, None)
        if len(values) < self.n:
            return RawRow(line_no, text, None,
                          f"wrong field count: {len(values)} fields, expected {self.n}")
        fitted = self.fit(values)
        if fitted is None:
            return RawRow(line_no, text, None,
                          f"wrong field count: {len(values)} fields, expected {self.n}, and the "
                          f"extra '{self.delimiter}' cannot be placed in a free-text field")
        return RawRow(line_no, text, fitted, None)

    def fit(self, values: List[str]) -> Optional[List[str]]:
        """Re-join a row that has too many pieces (see the module docstring), or None."""
        if not self._free:
            return None
        extra = len(values) - self.n
        lo, hi = self._free[0], self._free[-1]
        right = self.n - 1 - hi
        head = values[:lo]
        tail = values[len(values) - right:] if right else []
        middle = values[lo:len(values) - right]
        slots = list(range(lo, hi + 1))
        free_slots = [i for i, s in enumerate(slots) if s in self._free]
        d = self.delimiter
        tries = 0
        for shares in _distributions(extra, len(free_slots)):
            tries += 1
            if tries > _MAX_SPLIT_TRIES:
                break
            widths = [1] * len(slots)
            for k, fs in enumerate(free_slots):
                widths[fs] += shares[k]
            out: List[str] = []
            pos = 0
            for w in widths:
                out.append(d.join(middle[pos:pos + w]))
                pos += w
            if self._plausible(out, slots):
                return head + out + tail
        return None

    def _plausible(self, out: List[str], slots: List[int]) -> bool:
        if self._workdir < 0 or self._workdir not in slots:
            return True
        wd = out[slots.index(self._workdir)]
        return wd == "" or wd.startswith("/")


def _distributions(extra: int, n: int) -> Iterator[Tuple[int, ...]]:
    """Ways to give ``extra`` pieces to ``n`` fields, those giving the most to the LAST field
    first (then the next-to-last, ...)."""
    if n == 1:
        yield (extra,)
        return
    for first in range(0, extra + 1):
        for rest in _distributions(extra - first, n - 1):
            yield (first,) + rest


def _chain_one(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest
