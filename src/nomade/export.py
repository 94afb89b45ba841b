"""Anonymised export of the jobs table, the way sites share data for cross-site research
(``nomade export --anonymize --format parquet|swf``).

What leaves the site:

- keyed pseudonyms for users, groups, accounts, job names, hosts (each host of a node list) and
  the cluster: HMAC-SHA256 under the site's secret (``export.secret_file``), one domain per kind,
  so the same secret gives the same pseudonym in every export and nobody without the secret can
  test a guess ("is user_3f... alice?");
- numbers as stored: times (absolute, or from the export's first submit with ``shift_times``),
  requests, allocations, elapsed and CPU time, peak memory, exit codes, the final state;
  partition and QOS names (site configuration, not people) in parquet, keyed numbers in SWF;
- nothing else: no job ids (jobs are numbered 1..N in submit order), no uids, no work
  directories, submit lines, TRES strings or raw state text (which can name a uid).

Jobs are read in batches (``store.job_queries.export_batches``) and written as they come: memory
does not grow with the table. SWF lines are numbers only, so hostile text cannot break them.
"""

import hashlib
import hmac
import os
import re
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Dict, Iterable, Iterator, List, Optional, Sequence

from . import __version__
from .errors import AccessDenied, ConfigError, NomadeError
from .features.start import expand_nodes
from .jobrecord import REQ_MEM_CPU, REQ_MEM_JOB, REQ_MEM_NODE
from .private_files import atomic_file

FORMATS = ("parquet", "swf")
MIN_SECRET_BYTES = 32
NUMBER_BITS = 40          # SWF ids: keyed numbers below 2^40 (collisions ~ n^2 / 2^41)

# read from the store (jobs columns), in this order
COLUMNS = ("cluster", "name", "user", "grp", "account", "partition", "qos", "node_list", "uid",
           "cancelled_by", "state", "submit_time", "eligible_time", "start_time", "end_time",
           "req_cpus", "req_nodes", "req_mem_mb", "req_mem_per_cpu", "timelimit_s", "req_gpus",
           "is_final", "exit_code", "exit_signal", "derived_exit_code", "derived_exit_signal",
           "elapsed_s", "alloc_cpus", "alloc_nodes", "total_cpu_s", "max_rss_mb")
_AT = {c: i for i, c in enumerate(COLUMNS)}
TIME_COLUMNS = ("submit_time", "eligible_time", "start_time", "end_time")
INT_COLUMNS = ("req_cpus", "req_nodes", "req_mem_per_cpu", "timelimit_s", "req_gpus", "is_final",
               "exit_code", "exit_signal", "derived_exit_code", "derived_exit_signal", "elapsed_s",
               "alloc_cpus", "alloc_nodes")
FLOAT_COLUMNS = TIME_COLUMNS + ("req_mem_mb", "total_cpu_s", "max_rss_mb")
# kind of pseudonym -> (store column, exported column)
PSEUDONYMS = {"cluster": ("cluster", "cluster"), "user": ("user", "user"), "group": ("grp", "group"),
              "account": ("account", "account"), "job": ("name", "job_name")}
_STATE = re.compile(r"^[A-Z_]{1,32}$")
_SWF_STATUS = {"COMPLETED": 1, "CANCELLED": 5}


def read_secret(path: str) -> bytes:
    """The site's secret from ``path``; ConfigError (one line) when the file is missing,
    unreadable, readable by other users or shorter than MIN_SECRET_BYTES."""
    if not path:
        raise ConfigError("no secret file for the anonymised export",
                          hint="set export.secret_file or give --secret-file")
    hint = (f"create it: head -c 48 /dev/urandom > {path}; chmod 600 {path} "
            "(and keep it: it makes the pseudonyms)")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such secret file", hint=hint) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the secret file: {exc.strerror}", hint=hint) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: the secret file is not a regular file", hint=hint)
        if st.st_mode & stat.S_IROTH:
            raise ConfigError(f"{path}: the secret file is readable by every user",
                              hint=f"chmod 600 {path}, and make a new secret if others may have read it")
        data = os.read(fd, 1 << 16)
    finally:
        os.close(fd)
    secret = data.strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"{path}: the secret is {len(secret)} bytes; at least {MIN_SECRET_BYTES} "
                          "are needed", hint=hint)
    return secret


def check_may_export(caller: Any, admin_group: str) -> None:
    """AccessDenied unless ``caller`` is root or in ``admin_group``: an export holds every user's
    jobs, pseudonymised or not."""
    from .whyservice.access import is_admin
    if not is_admin(caller, admin_group):
        raise AccessDenied("nomade export: only root and admins may export the jobs of every user",
                           hint=f"ask a member of {admin_group or 'the admin group'}")


class Pseudonyms:
    """Keyed pseudonyms: ``text(kind, value)`` -> '<kind>_<16 hex>', ``number(kind, value)`` -> an
    integer below 2^NUMBER_BITS (SWF's numeric ids). None stays None (-1 in SWF)."""

    _CACHE = 200_000   # values remembered (users, groups, hosts repeat); cleared beyond

    def __init__(self, secret: bytes):
        self._key = bytes(secret)
        self._memo: Dict[tuple, str] = {}

    def _digest(self, kind: str, value: Any) -> str:
        key = (kind, value)
        got = self._memo.get(key)
        if got is None:
            msg = kind.encode() + b"\0" + str(value).encode("utf-8", "surrogatepass")
            got = hmac.new(self._key, msg, hashlib.sha256).hexdigest()
            if len(self._memo) >= self._CACHE:
                self._memo.clear()
            self._memo[key] = got
        return got

    def text(self, kind: str, value: Any) -> Optional[str]:
        if value is None or value == "":
            return None
        return f"{kind}_{self._digest(kind, value)[:16]}"

    def number(self, kind: str, value: Any) -> int:
        if value is None or value == "":
            return -1
        return int(self._digest(kind, value)[:NUMBER_BITS // 4], 16)

    def hosts(self, node_list: Any) -> Optional[str]:
        hosts = expand_nodes(node_list)
        if not hosts:
            return None
        return ",".join(self.text("host", h) or "" for h in hosts)


@dataclass
class ExportResult:
    format: str
    path: str
    jobs: int
    first_submit: Optional[float]
    last_submit: Optional[float]
    shifted_by: float

    def as_dict(self) -> Dict[str, Any]:
        return {"format": self.format, "path": self.path, "jobs": self.jobs,
                "first_submit": self.first_submit, "last_submit": self.last_submit,
                "shifted_by": self.shifted_by}


def _num(v: Any) -> Optional[float]:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def _int(v: Any) -> Optional[int]:
    f = _num(v)
    return None if f is None or abs(f) >= 2 ** 63 else int(f)


def _state(v: Any) -> Optional[str]:
    return v if isinstance(v, str) and _STATE.match(v) else None


def _owner_cancelled(row: Sequence[Any]) -> Optional[int]:
    by, uid = _int(row[_AT["cancelled_by"]]), _int(row[_AT["uid"]])
    if by is None or uid is None:
        return None
    return int(by == uid)


def anonymised_rows(batch: Sequence[Sequence[Any]], ps: Pseudonyms, first_number: int,
                    shift: float) -> Dict[str, List[Any]]:
    """One batch of store rows (COLUMNS) as exported columns (see PARQUET_FIELDS)."""
    out: Dict[str, List[Any]] = {name: [] for name, _ in PARQUET_FIELDS}
    for k, row in enumerate(batch):
        out["job_number"].append(first_number + k)
        for kind, (col, name) in PSEUDONYMS.items():
            out[name].append(ps.text(kind, row[_AT[col]]))
        out["nodes"].append(ps.hosts(row[_AT["node_list"]]))
        for col in ("partition", "qos"):
            v = row[_AT[col]]
            out[col].append(v if isinstance(v, str) and v else None)
        out["state"].append(_state(row[_AT["state"]]))
        out["cancelled_by_owner"].append(_owner_cancelled(row))
        for col in TIME_COLUMNS:
            t = _num(row[_AT[col]])
            out[col].append(None if t is None else t - shift)
        for col in FLOAT_COLUMNS[len(TIME_COLUMNS):]:
            out[col].append(_num(row[_AT[col]]))
        for col in INT_COLUMNS:
            out[col].append(_int(row[_AT[col]]))
    return out


PARQUET_FIELDS = (
    [("job_number", "int64")]
    + [(name, "string") for _, name in PSEUDONYMS.values()]
    + [("nodes", "string"), ("partition", "string"), ("qos", "string"), ("state", "string"),
       ("cancelled_by_owner", "int64")]
    + [(c, "float64") for c in FLOAT_COLUMNS]
    + [(c, "int64") for c in INT_COLUMNS]
)


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise NomadeError("the parquet format needs pyarrow, which is not installed",
                          hint="pip install 'nomade[export]' (or pip install pyarrow), or use --format swf") from None
    return pyarrow


def provenance(shift: float) -> Dict[str, str]:
    """What an export says about itself (parquet metadata, SWF header)."""
    return {"nomade.export": "anonymised", "nomade.version": __version__,
            "nomade.pseudonyms": "HMAC-SHA256 with the site's secret: cluster, user, group, account, "
                                 "job name, hosts",
            "nomade.removed": "job ids, uids, work directories, submit lines, comments, TRES and raw "
                              "state text, job steps",
            "nomade.times": "absolute (epoch seconds)" if not shift else
                            "shifted: seconds from the export's first submit"}


def write_parquet(batches: Iterable[Sequence[Sequence[Any]]], ps: Pseudonyms, out: IO[bytes],
                  shift_times: bool) -> ExportResult:
    pa = _pyarrow()
    schema = pa.schema([(n, getattr(pa, t)()) for n, t in PARQUET_FIELDS])
    counter = _Counter()
    writer = None
    try:
        for batch in counter.watch(batches):
            if writer is None:
                meta = provenance(counter.shift if shift_times else 0.0)
                writer = pa.parquet.ParquetWriter(out, schema.with_metadata(meta), compression="zstd")
            cols = anonymised_rows(batch, ps, counter.jobs - len(batch) + 1,
                                   counter.shift if shift_times else 0.0)
            writer.write_table(pa.Table.from_pydict(cols, schema=schema))
        if writer is None:   # no jobs: an empty file with the schema
            writer = pa.parquet.ParquetWriter(out, schema.with_metadata(provenance(0.0)))
    finally:
        if writer is not None:
            writer.close()
    return counter.result("parquet", shift_times)


class _Counter:
    """Counts the batches going by; the first job's submit time is the origin of shifted times."""

    def __init__(self) -> None:
        self.jobs = 0
        self.shift = 0.0
        self.first: Optional[float] = None
        self.last: Optional[float] = None

    def watch(self, batches: Iterable[Sequence[Sequence[Any]]]) -> Iterator[Sequence[Sequence[Any]]]:
        at = _AT["submit_time"]
        for batch in batches:
            if not batch:
                continue
            if self.first is None:
                self.first = _num(batch[0][at])
                self.shift = float(int(self.first or 0))
            self.last = _num(batch[-1][at])
            self.jobs += len(batch)
            yield batch

    def result(self, fmt: str, shift_times: bool) -> ExportResult:
        return ExportResult(fmt, "", self.jobs, self.first, self.last, self.shift if shift_times else 0.0)


# ---------------------------------------------------------------- SWF
def _field(v: Optional[float]) -> str:
    """An SWF field: -1 unknown (or negative), an integer, or a number with up to 3 decimals."""
    if v is None or v < 0:
        return "-1"
    r = round(v)
    if abs(v - r) < 5e-4:
        return str(int(r))
    return f"{v:.3f}".rstrip("0").rstrip(".")


def _mem_per_cpu_kb(row: Sequence[Any]) -> Optional[float]:
    mb, per = _num(row[_AT["req_mem_mb"]]), _int(row[_AT["req_mem_per_cpu"]])
    cpus, nodes = _int(row[_AT["req_cpus"]]), _int(row[_AT["req_nodes"]])
    if mb is None or per is None:
        return None
    if per == REQ_MEM_CPU:
        return mb * 1024
    if not cpus or cpus <= 0:
        return None
    if per == REQ_MEM_JOB:
        return mb * 1024 / cpus
    if per == REQ_MEM_NODE:
        return mb * 1024 * (nodes or 1) / cpus
    return None


def swf_line(row: Sequence[Any], ps: Pseudonyms, number: int, origin: float) -> str:
    """One job as the 18 numeric SWF fields (nomade's SWF import reads them back; see
    nomade.ingest.swf for the mapping)."""
    submit, start, end = (_num(row[_AT[c]]) for c in ("submit_time", "start_time", "end_time"))
    wait = None if start is None or submit is None else max(start - submit, 0.0)
    run = _num(row[_AT["elapsed_s"]])
    if run is None and start is not None and end is not None:
        run = max(end - start, 0.0)
    alloc = _int(row[_AT["alloc_cpus"]])
    cpu = _num(row[_AT["total_cpu_s"]])
    avg_cpu = None if cpu is None or not alloc or alloc <= 0 else cpu / alloc
    rss = _num(row[_AT["max_rss_mb"]])
    state = _state(row[_AT["state"]])
    final = _int(row[_AT["is_final"]])
    status = None if not state or not final else _SWF_STATUS.get(state, 0)
    fields = [
        str(number), _field(None if submit is None else submit - origin), _field(wait), _field(run),
        _field(alloc), _field(avg_cpu), _field(None if rss is None else rss * 1024),
        _field(_int(row[_AT["req_cpus"]])), _field(_int(row[_AT["timelimit_s"]])),
        _field(_mem_per_cpu_kb(row)), _field(status),
        str(ps.number("user", row[_AT["user"]])), str(ps.number("group", row[_AT["grp"]])),
        str(ps.number("job", row[_AT["name"]])), str(ps.number("qos", row[_AT["qos"]])),
        str(ps.number("partition", row[_AT["partition"]])), "-1", "-1",
    ]
    return " ".join(fields) + "\n"


def swf_header(origin: float, shift_times: bool) -> str:
    lines = ["Version: 2.2",
             f"Computer: anonymised export by nomade {__version__}",
             "Note: anonymised by nomade: user, group, executable (job name), queue (QOS) and "
             "partition are keyed pseudonyms (HMAC-SHA256 with the site's secret, 40-bit numbers); "
             "jobs are numbered in submit order; job ids, paths and text removed",
             "Note: field 7 is the job's peak memory in KB; field 10 the memory requested per "
             "processor in KB",
             f"UnixStartTime: {int(origin)}"]
    if shift_times:
        lines.append("Note: times are shifted: UnixStartTime is not the real start")
    return "".join(f"; {s}\n" for s in lines)


def write_swf(batches: Iterable[Sequence[Sequence[Any]]], ps: Pseudonyms, out: IO[str],
              shift_times: bool) -> ExportResult:
    counter = _Counter()
    header_done = False
    for batch in counter.watch(batches):
        if not header_done:
            out.write(swf_header(0.0 if shift_times else counter.shift, shift_times))
            header_done = True
        first = counter.jobs - len(batch) + 1
        out.write("".join(swf_line(row, ps, first + k, counter.shift) for k, row in enumerate(batch)))
    if not header_done:
        out.write(swf_header(0.0, shift_times))
    return counter.result("swf", shift_times)


@contextmanager
def atomic_output(path: Path, binary: bool) -> Iterator[IO[Any]]:
    """A new private (0600) file that becomes ``path`` only when the block succeeds
    (nomade.private_files.atomic_file, streamed)."""
    try:
        with atomic_file(Path(path)) as fd:
            with (os.fdopen(fd, "wb", closefd=False) if binary else
                  os.fdopen(fd, "w", encoding="utf-8", newline="\n", closefd=False)) as fh:
                yield fh
    except OSError as exc:
        raise NomadeError(f"{path}: cannot write the export: {exc.strerror}") from None


def export_jobs(store: Any, fmt: str, secret: bytes, out: Optional[Path] = None,
                stream: Optional[IO[str]] = None, since: Optional[float] = None,
                cluster: Optional[str] = None, shift_times: bool = False,
                batch: Optional[int] = None) -> ExportResult:
    """Write the anonymised export of ``store``'s jobs as ``fmt`` to the file ``out`` (made
    atomically, mode 0600), or for SWF to the text ``stream``; ``batch`` jobs read at a time."""
    from .store.job_queries import TRAINING_BATCH, export_batches
    if fmt not in FORMATS:
        raise NomadeError(f"unknown export format {fmt!r}: use {' or '.join(FORMATS)}")
    if fmt == "parquet":
        _pyarrow()
        if out is None:
            raise NomadeError("--format parquet writes a file: give --out PATH")
    ps = Pseudonyms(secret)
    batches = export_batches(store, COLUMNS, since=since, cluster=cluster, size=batch or TRAINING_BATCH)
    write = write_parquet if fmt == "parquet" else write_swf
    if out is None:
        res = write(batches, ps, stream, shift_times)
        res.path = "-"
        return res
    with atomic_output(out, binary=fmt == "parquet") as fh:
        res = write(batches, ps, fh, shift_times)
    res.path = str(out)
    return res
