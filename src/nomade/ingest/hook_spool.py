"""Load the hook spool (Prolog/Epilog/MailProg records) into the store, idempotently.

Each record becomes a ``hook_records`` row; a Prolog record with a score also becomes a
``scores`` row (stage 'start'). Loaded files are deleted; bad ones are quarantined and deleted,
so the spool never grows without bound. Loading the same record twice changes nothing."""

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..hooks.spool import iter_records, parse_record
from ..store import hook_records
from ..store.db import Store
from ..store.jobs import quarantine
from ..store.scores import Score


@dataclass
class HookLoadCounts:
    loaded: int = 0
    unchanged: int = 0
    quarantined: int = 0
    aged_out: int = 0

    def summary(self) -> str:
        return (f"{self.loaded} loaded, {self.unchanged} unchanged, {self.quarantined} quarantined"
                + (f", {self.aged_out} aged out" if self.aged_out else ""))


def _cluster_of(store: Store, rec: Dict[str, Any], default: str) -> str:
    job = rec.get("job") or {}
    if job.get("cluster") or default:
        return str(job.get("cluster") or default)
    return hook_records.cluster_of_job_id(store, rec["job_id"])


def _store_record(store: Store, rec: Dict[str, Any], cluster: str, now: float) -> bool:
    node = str((rec.get("job") or {}).get("node") or "")
    written_at = float(rec.get("written_at") or now)
    row = hook_records.HookRecord(cluster, rec["job_id"], rec["kind"], node, written_at,
                                  json.dumps(rec, sort_keys=True), now)
    score = rec.get("score")
    start = None
    if rec["kind"] == "start" and isinstance(score, dict) and "risk" in score:
        start = Score(cluster, rec["job_id"], "start", str(score.get("model_version") or "unknown"),
                      float(score["risk"]), score.get("level"), json.dumps(score.get("reasons") or []),
                      written_at)
    return hook_records.put_record(store, row, start)


ABANDONED_TMP_S = 86400.0


def age_out(store: Store, spool_dir: Path, keep_days: int, now: float) -> int:
    """Delete stored hook records older than ``keep_days`` (0 = keep) and spool files that a
    killed hook left half-written a day ago; returns how many stored records went."""
    for tmp in Path(spool_dir).glob(".*.tmp") if Path(spool_dir).is_dir() else ():
        try:
            if tmp.stat().st_mtime < now - ABANDONED_TMP_S:
                tmp.unlink()
        except FileNotFoundError:
            continue
    if keep_days <= 0:
        return 0
    return hook_records.delete_written_before(store, now - keep_days * 86400.0)


def load_hook_spool(store: Store, spool_dir: Path, cluster: str = "",
                    now: Optional[float] = None, keep_days: int = 0) -> HookLoadCounts:
    """Load every finished record under ``spool_dir``, then age out old ones (``keep_days``);
    returns what happened to them."""
    now = time.time() if now is None else now
    counts = HookLoadCounts()
    done: List[Path] = []
    for path, raw in iter_records(spool_dir):
        try:
            rec = parse_record(raw)
        except ValueError as exc:
            quarantine(store, [(f"hook-spool:{spool_dir}", path.name, str(exc),
                                raw.decode("utf-8", "replace"))], now=now)
            counts.quarantined += 1
            done.append(path)
            continue
        if _store_record(store, rec, _cluster_of(store, rec, cluster), now):
            counts.loaded += 1
        else:
            counts.unchanged += 1
        done.append(path)
    for path in done:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
    counts.aged_out = age_out(store, spool_dir, keep_days, now)
    return counts


def load_job_records(store: Store, spool_dir: Path, job_id: str, cluster: str = "",
                     now: Optional[float] = None) -> int:
    """Copy the finished spool records of one job into ``store`` without removing them (the
    MailProg's report at job end, built in a private scratch store before `ingest hooks` has
    run); bad records are skipped. Returns how many were stored."""
    from ..hooks.spool import KINDS, record_name_part
    now = time.time() if now is None else now
    n = 0
    part = record_name_part(job_id)
    for kind in KINDS:
        for path in sorted(Path(spool_dir).glob(f"*-{part}-{kind}-*.json")):
            try:
                rec = parse_record(path.read_bytes())
            except (OSError, ValueError):
                continue
            if str(rec.get("job_id")) == str(job_id) and _store_record(store, rec, cluster or _cluster_of(store, rec, ""), now):
                n += 1
    return n
