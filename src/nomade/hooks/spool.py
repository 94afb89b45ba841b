"""The hook record spool: one JSON file per event, written durably (``write_atomic``: tmp file,
fsync, rename, fsync of the directory) so a crash never leaves a half record under a final name.

Records are 0600 in a spool directory nomade creates 0700 (an existing one keeps its mode).
File names sort by time: ``<epoch_ms>-<job_id>-<kind>-<pid>.json``. Readers ignore names that
start with ``.`` (records being written)."""

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

from ..errors import NomadeError
from ..private_files import make_private_dirs, write_atomic

RECORD_FORMAT = 1
KINDS = ("start", "end", "mail")
_SAFE = re.compile(r"[^A-Za-z0-9_.+-]")


class SpoolError(NomadeError):
    """A spool record could not be written (disk full, permissions)."""


def write_record(spool_dir: Path, kind: str, job_id: str, data: Dict[str, Any]) -> Path:
    """Write one record durably and return its final path."""
    if kind not in KINDS:
        raise ValueError(f"unknown spool record kind {kind!r}")
    spool_dir = Path(spool_dir)
    record = {"format": RECORD_FORMAT, "kind": kind, "job_id": str(job_id),
              "written_at": time.time(), **data}
    payload = (json.dumps(record, sort_keys=True) + "\n").encode()
    name = f"{int(record['written_at'] * 1000):013d}-{record_name_part(job_id)}-{kind}-{os.getpid()}.json"
    try:
        make_private_dirs(spool_dir)
        write_atomic(spool_dir / name, payload)
    except OSError as exc:
        raise SpoolError(f"cannot write spool record in {spool_dir}: {exc.strerror or exc}",
                         hint="check free space and permissions of hooks.spool_dir") from None
    return spool_dir / name


def record_name_part(job_id: str) -> str:
    """The job id as it appears in a record's file name."""
    return _SAFE.sub("_", str(job_id))


def iter_records(spool_dir: Path) -> Iterator[Tuple[Path, bytes]]:
    """(path, raw bytes) of every finished record, oldest first."""
    spool_dir = Path(spool_dir)
    if not spool_dir.is_dir():
        return
    for path in sorted(spool_dir.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            yield path, path.read_bytes()
        except FileNotFoundError:
            continue


def parse_record(raw: bytes) -> Dict[str, Any]:
    """Decode one record; ValueError with the reason when it is not a valid record."""
    try:
        rec = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(rec, dict):
        raise ValueError("not a JSON object")
    if rec.get("format") != RECORD_FORMAT:
        raise ValueError(f"unknown record format {rec.get('format')!r}")
    if rec.get("kind") not in KINDS or not rec.get("job_id"):
        raise ValueError("missing kind or job_id")
    return rec
