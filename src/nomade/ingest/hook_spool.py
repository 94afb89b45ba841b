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
from ..store.db import Store
from ..store.jobs import quarantine


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
    rows = store.conn.execute("SELECT DISTINCT cluster FROM jobs WHERE job_id = ?",
                              (rec["job_id"],)).fetchall()
    return rows[0][0] if len(rows) == 1 else ""


def _store_record(store: Store, rec: Dict[str, Any], cluster: str, now: float) -> bool:
    node = str((rec.get("job") or {}).get("node") or "")
    data = json.dumps(rec, sort_keys=True)
    with store.transaction() as conn:
        old = conn.execute("SELECT data FROM hook_records WHERE cluster=? AND job_id=? AND kind=? AND node=?",
                           (cluster, rec["job_id"], rec["kind"], node)).fetchone()
        if old is not None and old[0] == data:
            return False
        conn.execute("INSERT OR REPLACE INTO hook_records (cluster, job_id, kind, node, written_at, data,"
                     " loaded_at) VALUES (?,?,?,?,?,?,?)",
                     (cluster, rec["job_id"], rec["kind"], node, float(rec.get("written_at") or now), data, now))
        score = rec.get("score")
        if rec["kind"] == "start" and isinstance(score, dict) and "risk" in score:
            conn.execute("INSERT OR REPLACE INTO scores (cluster, job_id, stage, model_version, risk, level,"
                         " reasons, scored_at) VALUES (?,?,?,?,?,?,?,?)",
                         (cluster, rec["job_id"], "start", str(score.get("model_version") or "unknown"),
                          float(score["risk"]), score.get("level"), json.dumps(score.get("reasons") or []),
                          float(rec.get("written_at") or now)))
    return True


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
    with store.transaction() as conn:
        return conn.execute("DELETE FROM hook_records WHERE written_at < ?",
                            (now - keep_days * 86400.0,)).rowcount


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
