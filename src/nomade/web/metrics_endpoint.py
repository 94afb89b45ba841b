"""``/metrics`` for Prometheus and ``nomade metrics`` (docs/metrics.md lists every metric).

``render(cfg, store)`` builds a fresh ``prometheus_client.CollectorRegistry`` for each scrape with
one custom collector that reads the store (never the process-global registry): the collectors'
newest samples with a ``cluster`` label (names and labels made safe by ``prom_names``), the
collectors' health, firing alerts by rule and severity, the current model's age and production
precision, the ingest lag, and recently submitted jobs by risk level. Per-user labels (a job
user's name) are left out unless ``web.metrics_user_labels`` is true.
"""

import math
import time
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from ..analysis.views import CURRENT_S
from ..store import job_queries, jobs as store_jobs, metrics as store_metrics, models as store_models
from . import prom_names

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PERFORMANCE_WINDOW_S = 7 * 86400.0   # production performance: jobs submitted in the last 7 days
PERFORMANCE_TTL_S = 300.0            # ... recomputed at most every 5 minutes per store
_performance_cache: Dict[str, Tuple[float, List[Any]]] = {}
_USER_LABELS = ("user", "reason_user")


def render(cfg: Any, store: Any, now: Optional[float] = None) -> Tuple[bytes, str]:
    """The exposition (Prometheus text format 0.0.4) and its content type."""
    from prometheus_client import CollectorRegistry, generate_latest
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(cfg, store, now))
    return generate_latest(registry), CONTENT_TYPE


def as_json(cfg: Any, store: Any, now: Optional[float] = None) -> List[Dict[str, Any]]:
    """The same families as plain data: name, type, help, samples [{name, labels, value}] (a
    non-finite value as text: "inf", "-inf", "nan"; JSON has no number for them)."""
    return [{"name": f.name, "type": f.type, "help": f.documentation,
             "samples": [{"name": s.name, "labels": dict(s.labels),
                          "value": s.value if math.isfinite(s.value) else str(s.value)} for s in f.samples]}
            for f in StoreCollector(cfg, store, now).collect()]


class _Families:
    """Metric families by name; a second sample with the same name and labels (or of another
    type than its family's) is dropped."""

    def __init__(self) -> None:
        self.by_name: Dict[str, Any] = {}
        self.seen: set = set()

    def add(self, name: str, kind: str, doc: str, labels: Dict[str, str], value: float) -> None:
        from prometheus_client.metrics_core import Metric
        fam = self.by_name.get(name)
        if fam is None:
            fam = self.by_name[name] = Metric(name, doc, kind)
        elif fam.type != kind:      # two stored metrics that sanitise to one name: the first kind wins
            return
        sample = name + "_total" if kind == "counter" else name
        key = (sample, tuple(sorted(labels.items())))
        if key in self.seen:
            return
        self.seen.add(key)
        fam.add_sample(sample, labels, float(value))

    def declare(self, name: str, kind: str, doc: str) -> None:
        """A family that is always exposed, samples or not (dashboards find its name)."""
        from prometheus_client.metrics_core import Metric
        if name not in self.by_name:
            self.by_name[name] = Metric(name, doc, kind)


class StoreCollector:
    """prometheus_client's custom-collector protocol over one store (``collect``; ``describe``
    returns nothing, so registering it reads nothing)."""

    def __init__(self, cfg: Any, store: Any, now: Optional[float] = None):
        self.cfg, self.store = cfg, store
        self.now = time.time() if now is None else float(now)

    def describe(self) -> List[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        fams = _Families()
        collector_series(fams, self.store, self.now, float(self.cfg.get("web.metrics_max_age_s")),
                         bool(self.cfg.get("web.metrics_user_labels")))
        collector_health(fams, self.store, _local_cluster(self.cfg))
        firing_alerts(fams, self.store)
        model_metrics(fams, self.cfg, self.store, self.now)
        ingest_metrics(fams, self.store, self.now)
        risk_levels(fams, self.store, self.now - 3600.0 * float(self.cfg.get("web.metrics_window_h")),
                    float(self.cfg.get("web.metrics_window_h")))
        yield from fams.by_name.values()


def _local_cluster(cfg: Any) -> str:
    from ..monitor import cluster_name
    return cluster_name(cfg)


# ------------------------------------------------------------------------------ collectors
def is_per_user(metric: str, labels: Dict[str, str]) -> bool:
    """Whether a series names a user: a non-empty ``user`` label (license holders, per-user RPCs,
    fair-share rows) or a user quota (``quota.*`` with kind ``user``)."""
    return bool(labels.get("user")) or (metric.startswith("quota.") and labels.get("kind") == "user")


def _current(rows: List[Any]) -> Iterable[Any]:
    """Per metric, the series whose newest sample is within CURRENT_S of that metric's newest
    (a node whose state label changed, a cleared drain reason, stop showing; as ``nomade status``)."""
    newest: Dict[str, float] = {}
    for r in rows:
        newest[r.metric] = max(newest.get(r.metric, r.ts), r.ts)
    return (r for r in rows if r.ts >= newest[r.metric] - CURRENT_S)


def collector_series(fams: _Families, store: Any, now: float, max_age_s: float, user_labels: bool) -> None:
    """Every series whose newest sample is at most ``max_age_s`` old, its value in base units,
    labelled cluster, host (where measured; absent for cluster-wide series) and its own labels;
    plus ``nomade_disk_used_ratio`` (used / size)."""
    names: Dict[str, prom_names.PromName] = {}
    for cluster in store_metrics.metric_clusters(store):
        rows = store_metrics.latest(store, "", cluster=cluster, max_age_s=max_age_s, now=now)
        disk: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], Dict[str, float]] = {}
        for r in _current(rows):
            raw = dict(r.labels)
            if not user_labels:
                if is_per_user(r.metric, raw):
                    continue
                for key in _USER_LABELS:
                    raw.pop(key, None)
            pn = names.get(r.metric) or names.setdefault(r.metric, _collector_name(r.metric))
            labels = prom_names.labels(raw)
            labels["cluster"] = prom_names.label_value(cluster)
            if r.host:
                labels["host"] = prom_names.label_value(r.host)
            fams.add(pn.name, pn.kind, _help(r.metric, pn), labels, r.value * pn.factor)
            if r.metric in ("disk.used_bytes", "disk.size_bytes"):
                disk.setdefault((r.host, tuple(sorted(labels.items()))), {})[r.metric] = r.value
        for (_, key), vals in disk.items():
            size = vals.get("disk.size_bytes")
            if size and "disk.used_bytes" in vals:
                fams.add("nomade_disk_used_ratio", "gauge", "Filesystem use: disk.used_bytes / "
                         "disk.size_bytes (0-1).", dict(key), vals["disk.used_bytes"] / size)


OWN_PREFIXES = ("nomade_collector_", "nomade_alerts_", "nomade_model_", "nomade_ingest_", "nomade_jobs_",
                "nomade_disk_used_ratio")


def _collector_name(metric: str) -> prom_names.PromName:
    """prom_names.metric_name, kept off the names nomade's own families use (a plugin's
    ``collector.up`` becomes ``nomade_collected_collector_up``)."""
    pn = prom_names.metric_name(metric)
    if pn.name.startswith(OWN_PREFIXES):
        return pn._replace(name="nomade_collected_" + pn.name[len("nomade_"):])
    return pn


def _help(metric: str, pn: prom_names.PromName) -> str:
    scaled = f", scaled by {pn.factor:g} to base units" if pn.factor != 1.0 else ""
    return f"nomade collector metric {metric}{scaled} (docs/monitoring.md)."


def collector_health(fams: _Families, store: Any, cluster: str) -> None:
    """Per collector that ever ran here: up (its last run succeeded), last run, last success,
    last duration."""
    for name, h in store_metrics.collector_health(store).items():
        labels = {"cluster": prom_names.label_value(cluster), "collector": prom_names.label_value(name)}
        fams.add("nomade_collector_up", "gauge", "1 when the collector's last run succeeded, "
                 "0 when it failed or skipped.", labels, 1.0 if h["ok"] else 0.0)
        fams.add("nomade_collector_last_run_timestamp_seconds", "gauge",
                 "When the collector last ran (epoch seconds).", labels, h["last_run"])
        if h.get("last_success") is not None:
            fams.add("nomade_collector_last_success_timestamp_seconds", "gauge",
                     "When the collector last succeeded (epoch seconds).", labels, h["last_success"])
        if h.get("duration_s") is not None:
            fams.add("nomade_collector_last_duration_seconds", "gauge",
                     "How long the collector's last run took.", labels, h["duration_s"])


# ------------------------------------------------------------------------------ alerts
def firing_alerts(fams: _Families, store: Any) -> None:
    """Firing alerts by cluster, rule and severity (the alert engine's ``nomade.store.alerts``;
    nothing where that module is absent)."""
    try:
        from ..store import alerts as store_alerts
    except ImportError:   # pragma: no cover - an install without the alert engine
        return
    fams.declare("nomade_alerts_firing", "gauge", "Alerts firing now, by rule and severity.")
    counts: Dict[Tuple[str, str, str], int] = {}
    for row in store_alerts.open_alerts(store).values():
        if row.get("state") == "firing":
            key = (str(row.get("cluster") or ""), str(row.get("rule") or ""), str(row.get("severity") or ""))
            counts[key] = counts.get(key, 0) + 1
    for (cluster, rule, severity), n in sorted(counts.items()):
        fams.add("nomade_alerts_firing", "gauge", "", {
            "cluster": prom_names.label_value(cluster), "rule": prom_names.label_value(rule),
            "severity": prom_names.label_value(severity)}, n)


# ------------------------------------------------------------------------------ models
def model_metrics(fams: _Families, cfg: Any, store: Any, now: float) -> None:
    """The current bundle's age; and production performance over the jobs submitted in the last
    7 days that have ended (``nomade.production.performance``, as ``nomade models performance``
    shows it), per stage and model version (``all``: every version)."""
    version = store_models.current_version(store)
    row = store_models.get_model(store, version) if version else None
    if row is not None:
        labels = {"version": prom_names.label_value(version)}
        fams.add("nomade_model_age_seconds", "gauge", "Seconds since the current model bundle was "
                 "trained.", labels, max(0.0, now - row.created_at))
        fams.add("nomade_model_trained_timestamp_seconds", "gauge",
                 "When the current model bundle was trained (epoch seconds).", labels, row.created_at)
        if row.promoted_at is not None:
            fams.add("nomade_model_promoted_timestamp_seconds", "gauge",
                     "When the current model bundle was promoted (epoch seconds).", labels, row.promoted_at)
    for p in production_performance(cfg, store, now):
        labels = {"stage": prom_names.label_value(p.stage), "version": prom_names.label_value(p.model_version)}
        fams.add("nomade_model_ended_jobs", "gauge", "Ended jobs submitted in the last 7 days with a "
                 "score, by stage and model version (the base of precision and recall).", labels, p.jobs)
        fams.add("nomade_model_warned_jobs", "gauge", "Of those, the jobs whose users were warned "
                 "(risk >= the alert threshold).", labels, p.warned)
        if p.precision is not None:
            fams.add("nomade_model_precision", "gauge", "Production precision: failed among the "
                     "warned ended jobs of the last 7 days.", labels, p.precision)
        if p.recall is not None:
            fams.add("nomade_model_recall", "gauge", "Production recall: warned among the failed "
                     "ended jobs of the last 7 days.", labels, p.recall)


def production_performance(cfg: Any, store: Any, now: float) -> List[Any]:
    """``nomade.production.performance`` over the last PERFORMANCE_WINDOW_S, kept for
    PERFORMANCE_TTL_S per store path: it reads every score of the window (seconds on a busy
    site's week), more than a scrape every 15 s should pay. [] without nomade.production."""
    key = str(cfg.store_path)
    hit = _performance_cache.get(key)
    if hit is not None and 0 <= now - hit[0] < PERFORMANCE_TTL_S:
        return hit[1]
    try:
        from ..production import performance
    except ImportError:   # pragma: no cover - an install without production tracking
        return []
    rows = performance(store, since=now - PERFORMANCE_WINDOW_S,
                       owner_cancel_is_failure=bool(cfg.get("model.owner_cancel_is_failure")),
                       alert_threshold=float(cfg.get("model.alert_threshold")))
    _performance_cache[key] = (now, rows)
    return rows


# ------------------------------------------------------------------------------ ingest, risk
def ingest_metrics(fams: _Families, store: Any, now: float) -> None:
    """Per ingestion source: its high-water mark and the lag behind now; per cluster with jobs:
    the newest submit time."""
    for source, (mark, updated) in store_jobs.high_waters(store).items():
        labels = {"source": prom_names.label_value(source)}
        if mark is not None:
            fams.add("nomade_ingest_high_water_timestamp_seconds", "gauge", "Newest change time "
                     "ingested from the source (epoch seconds).", labels, mark)
            fams.add("nomade_ingest_lag_seconds", "gauge", "Seconds between now and the source's "
                     "high-water mark.", labels, max(0.0, now - mark))
        fams.add("nomade_ingest_last_update_timestamp_seconds", "gauge",
                 "When the source's high-water mark last moved (epoch seconds).", labels, updated)
    for cluster in job_queries.job_clusters(store):
        newest = job_queries.newest_submit(store, cluster)
        if newest is not None:
            fams.add("nomade_jobs_newest_submit_timestamp_seconds", "gauge", "Newest submit time of "
                     "the cluster's stored jobs (epoch seconds).",
                     {"cluster": prom_names.label_value(cluster)}, newest)


def risk_levels(fams: _Families, store: Any, since: float, window_h: float) -> None:
    """Jobs submitted in the window by cluster and the level of their latest risk
    (``nomade.risk_scale``; UNSCORED: none), as the dashboard's overview counts them."""
    from ..store.web_queries import level_counts
    fams.declare("nomade_jobs_by_risk_level", "gauge", f"Jobs submitted in the last {window_h:g} h "
                 "by the level of their latest risk (LOW, MODERATE, HIGH, CRITICAL, UNSCORED).")
    for cluster in job_queries.job_clusters(store):
        for level, n in sorted(level_counts(store, cluster, since).items()):
            fams.add("nomade_jobs_by_risk_level", "gauge", "", {
                "cluster": prom_names.label_value(cluster), "level": prom_names.label_value(level)}, n)
