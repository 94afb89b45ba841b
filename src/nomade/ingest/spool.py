"""Load recorder spool files into the store: ``samples`` (idempotent through its primary key
(cluster, job_id, node, ts)), ``events`` (unique per cluster, job, node, kind) and a rebuilt
``job_summaries`` row for every job touched. Loading the same spool twice changes nothing.

Closed segments (every one but the newest in a spool directory) are deleted after their records
are committed unless ``keep`` is set; the newest may still be appended to and is only read.
Malformed lines in closed segments are quarantined; a torn last line of the newest segment is
skipped (the writer may be in the middle of it).
"""

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from ..recorder.sample import SAMPLE_COLUMNS, SCHEMA_VERSION
from ..recorder.spool import list_segments, read_counters, read_segment
from ..store import recorder as recorder_store
from ..store.db import Store
from ..store.jobs import quarantine


@dataclass
class SpoolIngestResult:
    samples_new: int = 0
    samples_seen: int = 0
    events_new: int = 0
    events_seen: int = 0
    bad_lines: int = 0
    segments_read: int = 0
    segments_deleted: int = 0
    jobs_summarized: int = 0
    dropped_by_recorder: int = 0
    jobs: Set[Tuple[str, str]] = field(default_factory=set)

    def as_dict(self) -> Dict[str, Any]:
        d = dict(vars(self))
        d["jobs"] = len(self.jobs)
        return d


def load_spool(store: Store, spool_dirs: Sequence[Path], cluster: str = "", keep: bool = False,
               now: Optional[float] = None) -> SpoolIngestResult:
    """Ingest every segment of each spool directory. ``cluster`` fills records that carry none."""
    res = SpoolIngestResult()
    default_cluster = cluster or local_cluster_name()
    for d in spool_dirs:
        segs = list_segments(Path(d))
        res.dropped_by_recorder += int(read_counters(Path(d)).get("dropped_records", 0))
        for i, seg in enumerate(segs):
            active = i == len(segs) - 1
            _load_segment(store, seg, active, default_cluster, res)
            res.segments_read += 1
            if not active and not keep:
                try:
                    seg.unlink()
                    res.segments_deleted += 1
                except FileNotFoundError:
                    pass     # another ingest removed it after committing the same records
    res.jobs_summarized = rebuild_summaries(store, res.jobs, now)
    return res


def _load_segment(store: Store, seg: Path, active: bool, cluster: str, res: SpoolIngestResult) -> None:
    samples, events, bad = [], [], []
    try:
        lines = list(read_segment(seg))
    except FileNotFoundError:
        return
    for lineno, rec, raw in lines:
        if rec is None:
            if active and lineno == len(lines) and not raw.endswith("\n"):
                continue                      # being written right now
            bad.append((f"spool:{seg}", f"line {lineno}", "not a JSON object", raw.strip()[:4000]))
            continue
        row, why = _to_row(rec, cluster)
        if row is None:
            bad.append((f"spool:{seg}", f"line {lineno}", why, raw.strip()[:4000]))
        elif rec.get("type") == "event":
            events.append(row)
        else:
            samples.append(row)
    res.samples_new += recorder_store.add_samples(store, samples)
    res.events_new += recorder_store.add_events(store, events)
    res.samples_seen += len(samples)
    res.events_seen += len(events)
    res.jobs.update((r[0], r[1]) for r in samples)
    res.jobs.update((r[0], r[1]) for r in events)
    if bad:
        res.bad_lines += quarantine(store, bad)


def _to_row(rec: Dict[str, Any], cluster: str) -> Tuple[Optional[tuple], str]:
    if rec.get("v") != SCHEMA_VERSION:
        return None, f"unknown spool schema version {rec.get('v')!r}"
    try:
        c = rec.get("cluster") or cluster
        job, node = str(rec["job_id"]), str(rec["node"])
        if rec.get("type") == "event":
            return (c, job, node, str(rec["kind"]), float(rec["created_at"]),
                    json.dumps(rec.get("detail") or {}, sort_keys=True), 1 if rec.get("notified") else 0), ""
        extra = dict(rec.get("extra") or {}, seq=rec.get("seq"))
        return ((c, job, node, float(rec["ts"])) + tuple(rec.get(k) for k in SAMPLE_COLUMNS)
                + (json.dumps(extra, sort_keys=True),)), ""
    except (KeyError, TypeError, ValueError) as exc:
        return None, f"missing or bad field: {exc}"


# ---------------------------------------------------------------------- summaries
def rebuild_summaries(store: Store, jobs: Iterable[Tuple[str, str]], now: Optional[float] = None) -> int:
    """Recompute job_summaries from all stored samples of these jobs."""
    now = time.time() if now is None else now
    return recorder_store.rebuild_summaries(store, jobs, summarize, now)


def summarize(rows: Sequence[Any]) -> tuple:
    """Summary columns (sample_count .. mean_gpu_util) from sample rows ordered by node, ts."""
    by_node: Dict[str, List[Any]] = {}
    for r in rows:
        by_node.setdefault(r["node"], []).append(r)
    last = [rs[-1] for rs in by_node.values()]

    def mx(col):
        vals = [r[col] for r in rows if r[col] is not None]
        return max(vals) if vals else None

    def mean(col):
        vals = [r[col] for r in rows if r[col] is not None]
        return sum(vals) / len(vals) if vals else None

    def total(col, from_extra=False):
        vals = [(_extra(r).get(col) if from_extra else r[col]) for r in last]
        vals = [v for v in vals if v is not None]
        return sum(vals) if vals else None

    peak_rate = None
    for rs in by_node.values():
        for a, b in zip(rs, rs[1:]):
            if a["write_bytes"] is not None and b["write_bytes"] is not None and b["ts"] > a["ts"]:
                rate = max(0, b["write_bytes"] - a["write_bytes"]) / (b["ts"] - a["ts"])
                peak_rate = rate if peak_rate is None else max(peak_rate, rate)
    mean_eff = mean("cpu_eff")
    return (len(rows), len(by_node), min(r["ts"] for r in rows), max(r["ts"] for r in rows),
            mx("rss_mb"), mx("cg_mem_mb"), mx("cg_mem_limit_mb"),
            round(mean_eff, 4) if mean_eff is not None else None,
            total("cpu_time_s"), total("read_bytes"), total("write_bytes"),
            total("write_local_bytes"), total("write_network_bytes"),
            total("write_tmpfs_bytes", from_extra=True),
            round(peak_rate, 1) if peak_rate is not None else None,
            mx("gpu_mem_mb"), mean("gpu_util"))


def _extra(row: Any) -> Dict[str, Any]:
    try:
        return json.loads(row["extra"] or "{}")
    except ValueError:
        return {}


_CLUSTER_NAME = re.compile(r"^\s*ClusterName\s*=\s*(\S+)", re.IGNORECASE | re.MULTILINE)


def local_cluster_name(conf: Optional[Path] = None) -> str:
    """ClusterName from slurm.conf ($SLURM_CONF, else /etc/slurm/slurm.conf), else 'local'."""
    path = conf or Path(os.environ.get("SLURM_CONF") or "/etc/slurm/slurm.conf")
    try:
        m = _CLUSTER_NAME.search(path.read_text(errors="replace"))
    except OSError:
        m = None
    return m.group(1) if m else "local"
