"""What ``nomade disk`` and ``nomade status`` show, as plain data read from the store
(``nomade.store.metrics``: ``latest``, ``series``, ``collector_health``): a filesystem's trend
(``Analysis.disk``) and the one-screen overview (``Analysis.status``). A section no collector wrote
is None; the commands say so in one line.

Which samples count as current: per section, the series whose newest sample is within
``CURRENT_S`` of the section's newest one (one collector cycle's worth), so a node that left
the cluster, or a drain reason that was cleared, stops showing - measured from the data, not
the clock, so a store copied elsewhere reads the same.
"""

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from ..errors import NomadeError
from ..store import metrics as store_metrics
from .trend import Trend, analyse
from .words import disk_sentence

CURRENT_S = 600.0
DEFAULT_HOURS = 72.0
PSI_WINDOW = "avg10"
NODE_LIST_MAX = 12
_NOT_SHOWN = ("window", "uuid", "name")      # labels that say nothing on the overview's one line


@dataclass
class DiskTrend:
    mount: str
    host: str
    fstype: str
    ts: float                        # newest sample
    size_bytes: float
    used_bytes: float
    used_percent: float
    free_bytes: Optional[float]
    inodes_used_percent: Optional[float]
    window_s: float
    trend: Optional[Trend]           # of used_bytes, against size_bytes; None: no samples
    sentence: str

    def as_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["trend"] = self.trend.as_dict() if self.trend else None
        return d


@dataclass
class NodeRow:
    node: str
    state: str
    reason: str
    reason_user: str = ""
    reason_time: str = ""


@dataclass
class NodesSummary:
    total: int
    by_state: Dict[str, int]
    flagged: List[NodeRow]           # nodes with a reason (drained, down, ...)


@dataclass
class Aggregate:
    """One metric over hosts (pressure, GPUs): how many series, their mean and their worst."""
    metric: str
    n: int
    mean: float
    max: float
    max_at: str                      # "host" or "host gpu=0"


@dataclass
class StatusReport:
    ts: float
    cluster: Optional[str]
    hours: float
    filesystems: Optional[List[DiskTrend]] = None
    queue: Optional[List[Dict[str, Any]]] = None          # partition, pending, running
    nodes: Optional[NodesSummary] = None
    pressure: Optional[List[Aggregate]] = None
    gpus: Optional[List[Aggregate]] = None
    licenses: Optional[Dict[str, List[Dict[str, Any]]]] = None     # servers, features
    collectors: Optional[Dict[str, Dict[str, Any]]] = None
    omitted: Dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["filesystems"] = [f.as_dict() for f in self.filesystems] if self.filesystems else None
        return d


class Analysis:
    """``Analysis(store).disk("/scratch")``, ``.disks()``, ``.status()``: plain data."""

    def __init__(self, store: Any, cluster: Optional[str] = None, hours: float = DEFAULT_HOURS):
        self.store = store
        self.cluster = cluster
        self.hours = hours

    # ------------------------------------------------------------------ filesystems
    def disk(self, path: str, hours: Optional[float] = None) -> DiskTrend:
        """The trend of the filesystem holding ``path`` (the longest collected mount that is a
        prefix of it). NomadeError when no collector wrote that filesystem."""
        rows = self._latest("disk.")
        sizes = [r for r in rows if r.metric == "disk.size_bytes"]
        mount_rows = [r for r in sizes if _under(path, r.labels.get("mount", ""))]
        if not mount_rows:
            known = ", ".join(sorted({r.labels.get("mount", "") for r in sizes})) or "none"
            raise NomadeError(f"no disk metrics for {path}",
                              hint=f"filesystems collected: {known}; add it to [collectors.disk] "
                                   "filesystems and run `nomade collect`")
        row = max(mount_rows, key=lambda r: (len(r.labels.get("mount", "")), r.ts))
        return self._disk_trend(row, hours, rows)

    def disks(self, hours: Optional[float] = None) -> List[DiskTrend]:
        rows = self._latest("disk.")
        return [self._disk_trend(r, hours, rows) for r in rows if r.metric == "disk.size_bytes"]

    def _disk_trend(self, size_row: Any, hours: Optional[float], disk_rows: List[Any]) -> DiskTrend:
        mount, host = size_row.labels.get("mount", ""), size_row.host
        window_s = 3600.0 * (self.hours if hours is None else hours)
        sel = {"mount": mount}
        pts = store_metrics.series(self.store, "disk.used_bytes", cluster=self.cluster, host=host,
                                   labels=sel, since=size_row.ts - window_s)
        size = size_row.value
        tr = analyse(pts, limit=size, unit="B", window_s=window_s) if pts else None
        used = pts[-1][1] if pts else 0.0
        pct = 100.0 * used / size if size > 0 else 0.0
        same = {r.metric: r.value for r in disk_rows
                if r.labels.get("mount") == mount and r.host == host}
        free = same.get("disk.free_bytes")
        itot, iused = same.get("disk.inodes_total"), same.get("disk.inodes_used")
        ipct = 100.0 * iused / itot if itot and iused is not None else None
        return DiskTrend(mount=mount, host=host, fstype=size_row.labels.get("fstype", ""),
                         ts=size_row.ts, size_bytes=size, used_bytes=used, used_percent=pct,
                         free_bytes=free, inodes_used_percent=ipct, window_s=window_s, trend=tr,
                         sentence=disk_sentence(mount, pct, tr))

    # ------------------------------------------------------------------ overview
    def status(self, hours: Optional[float] = None) -> StatusReport:
        rep = StatusReport(ts=time.time(), cluster=self.cluster,
                           hours=self.hours if hours is None else hours)
        sections = (("filesystems", "disk", lambda: self.disks(hours) or None),
                    ("queue", "queue", self._queue), ("nodes", "nodes", self._nodes),
                    ("pressure", "nodestats", self._pressure), ("gpus", "gpu", self._gpus),
                    ("licenses", "licenses", self._licenses),
                    ("collectors", "any", lambda: store_metrics.collector_health(self.store) or None))
        for name, collector, build in sections:
            value = build()
            setattr(rep, name, value)
            if value is None:
                rep.omitted[name] = ("no collector has run yet (nomade collect)" if collector == "any"
                                     else f"no {collector} collector wrote {name} metrics")
        return rep

    # ------------------------------------------------------------------ one section in full
    def queue(self) -> Optional[Dict[str, Any]]:
        """`nomade queue`: per partition pending/running, pending jobs by reason, the wait-time
        percentiles of pending jobs and how many are stuck (collectors.queue.stuck_after_h)."""
        parts = self._queue()
        rows = self._latest("queue.")
        if not parts and not rows:
            return None
        reasons = sorted(({"partition": r.labels.get("partition", ""), "reason": r.labels.get("reason", ""),
                           "jobs": int(r.value)} for r in rows if r.metric == "queue.pending_by_reason"),
                         key=lambda x: (-x["jobs"], x["partition"], x["reason"]))
        waits = {r.metric.split(".", 1)[1]: r.value for r in rows
                 if r.metric in ("queue.wait_p50_s", "queue.wait_p90_s", "queue.wait_max_s", "queue.stuck")}
        return {"partitions": parts or [], "reasons": reasons, "waits": waits}

    def nodes(self) -> Optional[NodesSummary]:
        """`nomade nodes`: node states and every flagged node with its reason."""
        return self._nodes()

    def licenses(self) -> Optional[Dict[str, List[Dict[str, Any]]]]:
        """`nomade licenses`: servers, features in use, and expiry dates."""
        lic = self._licenses()
        if lic is None:
            return None
        expiry = {(r.labels.get("server", ""), r.labels.get("feature", "")): r.value
                  for r in self._latest("license.expires_ts")}
        for f in lic["features"]:
            f["expires_ts"] = expiry.get((f["server"], f["feature"]))
        return lic

    def _latest(self, prefix: str) -> List[Any]:
        return self._current(store_metrics.latest(self.store, prefix, cluster=self.cluster))

    @staticmethod
    def _current(rows: List[Any]) -> List[Any]:
        if not rows:
            return []
        newest = max(r.ts for r in rows)
        return [r for r in rows if r.ts >= newest - CURRENT_S]

    def _queue(self) -> Optional[List[Dict[str, Any]]]:
        """Pending and running per partition; [] when the queue collector ran and saw an empty
        queue (it writes queue.stuck every run), None when it never wrote."""
        parts: Dict[str, Dict[str, Any]] = {}
        rows = self._latest("queue.")
        for r in rows:
            if r.metric in ("queue.pending", "queue.running") and "partition" in r.labels:
                row = parts.setdefault(r.labels["partition"], {"partition": r.labels["partition"],
                                                               "pending": 0, "running": 0})
                row[r.metric.split(".", 1)[1]] += int(r.value)
        if not parts:
            return [] if any(r.metric == "queue.stuck" for r in rows) else None
        return [parts[p] for p in sorted(parts)]

    def _nodes(self) -> Optional[NodesSummary]:
        rows = [r for r in self._latest("nodes.state") if r.value]
        if not rows:
            return None
        by_state: Dict[str, int] = {}
        flagged = []
        for r in rows:
            state = r.labels.get("state", "?")
            by_state[state] = by_state.get(state, 0) + 1
            if r.labels.get("reason"):
                flagged.append(NodeRow(r.labels.get("node", r.host), state, r.labels["reason"],
                                       r.labels.get("reason_user", ""), r.labels.get("reason_time", "")))
        return NodesSummary(len(rows), dict(sorted(by_state.items(), key=lambda kv: -kv[1])),
                            sorted(flagged, key=lambda n: n.node))

    def _pressure(self) -> Optional[List[Aggregate]]:
        rows = self._latest("node.psi_")
        windows = {r.labels.get("window") for r in rows}
        if PSI_WINDOW in windows:
            rows = [r for r in rows if r.labels.get("window") == PSI_WINDOW]
        return _aggregate(rows) or None

    def _gpus(self) -> Optional[List[Aggregate]]:
        """Per GPU metric over all GPUs; ``gpu.xid`` (events whose value is a code) left out."""
        return _aggregate([r for r in self._latest("gpu.") if r.metric != "gpu.xid"]) or None

    def _licenses(self) -> Optional[Dict[str, List[Dict[str, Any]]]]:
        """{"servers": [{server, type, up}], "features": [{server, feature, issued, in_use,
        queued}]} (who holds them, ``license.held``, is left to ``nomade licenses``)."""
        servers, features = [], {}
        for r in self._latest("license."):
            if r.metric == "license.server_up":
                servers.append({"server": r.labels.get("server", ""), "type": r.labels.get("type", ""),
                                "up": bool(r.value)})
            elif r.metric in ("license.issued", "license.in_use", "license.queued"):
                key = (r.labels.get("server", ""), r.labels.get("feature", ""))
                row = features.setdefault(key, {"server": key[0], "feature": key[1], "issued": None,
                                                "in_use": None, "queued": None})
                row[r.metric.split(".", 1)[1]] = r.value
        if not servers and not features:
            return None
        return {"servers": servers, "features": [features[k] for k in sorted(features)]}


def _aggregate(rows: List[Any]) -> List[Aggregate]:
    by_metric: Dict[str, List[Any]] = {}
    for r in rows:
        by_metric.setdefault(r.metric, []).append(r)
    out = []
    for metric in sorted(by_metric):
        rs = by_metric[metric]
        worst = max(rs, key=lambda r: r.value)
        extra = " ".join(f"{k}={v}" for k, v in sorted(worst.labels.items()) if k not in _NOT_SHOWN)
        out.append(Aggregate(metric, len(rs), sum(r.value for r in rs) / len(rs), worst.value,
                             (worst.host + (" " + extra if extra else "")).strip()))
    return out


def _under(path: str, mount: str) -> bool:
    if not mount:
        return False
    p, m = path.rstrip("/") or "/", mount.rstrip("/") or "/"
    return m == "/" or p == m or p.startswith(m + "/")
