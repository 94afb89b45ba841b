"""Warnings in production: what each job was told, and whether it was right.

``record_submit_scores`` stores, for jobs accounting has delivered, the submit-stage verdict
sbatch gave them: the Lua model of the bundle that was current at the job's submit time
(``store.models.promotions`` keeps every promotion, history refreshes included, so the trees and
history tables are the ones job_submit.lua had), recomputed in Python
(``scoring.lua_verdict``, parity with Lua tested). The Prolog's start scores are stored by
``ingest hooks`` already. ``performance`` compares the recorded warnings with the outcomes:
share of jobs warned, precision, recall and calibration by risk level, per stage and per model
version, next to what the bundle's evaluation promised (`nomade models performance`).

Jobs submitted before the first promotion, or while a bundle now deleted from the registry was
current, are not recorded (nomade-why still scores them on demand). Runtime: stdlib + numpy."""

import bisect
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from . import risk_scale
from .states import failure_class
from .store import models as store_models
from .store import scores as store_scores
from .why_ondemand import RECENT_WINDOW_S   # job_submit.lua's "recent submissions" window: one value

log = logging.getLogger(__name__)

LOOKBACK_S = 30 * 86400.0       # jobs submitted longer ago than this are not (re)tried
BATCH = 5000


@dataclass
class RecordCounts:
    recorded: int = 0
    skipped: int = 0            # the bundle current then is gone from the registry, or the job could not be scored

    def as_dict(self) -> Dict[str, int]:
        return asdict(self)


class _Bundles:
    """LuaModels by version, loaded once; None for a version that cannot be loaded."""

    def __init__(self):
        self._by_version: Dict[str, Any] = {}

    def get(self, version: str, path: str):
        if version not in self._by_version:
            self._by_version[version] = _load_lua(version, path)
        return self._by_version[version]


def _load_lua(version: str, path: str):
    if not path or not Path(path).is_dir():
        return None
    try:
        from .scoring.bundle import load_bundle
        from .scoring.lua_verdict import LuaModel
        bundle = load_bundle(Path(path))
        return LuaModel.from_bundle(bundle) if bundle.manifest.get("lua") else None
    except Exception as exc:  # noqa: BLE001 (an unreadable old bundle only means its jobs are not recorded)
        log.warning("bundle %s at %s cannot be loaded: %s", version, path, exc)
        return None


def record_submit_scores(store, *, now: Optional[float] = None, lookback_s: float = LOOKBACK_S,
                         limit: int = 200000) -> RecordCounts:
    """Store the submit-stage verdict of every job submitted since the first promotion (and in
    the last ``lookback_s``) that has none yet, each with the bundle current at its submit time.
    Idempotent; at most ``limit`` jobs per call."""
    now = time.time() if now is None else now
    proms = store_models.promotions(store)
    counts = RecordCounts()
    if not proms:
        return counts
    times = [p[1] for p in proms]
    bundles = _Bundles()
    start = max(times[0], now - lookback_s)
    left = limit
    seen_skipped: set = set()
    while left > 0:
        jobs = store_scores.jobs_without_stage(store, "submit", start, min(BATCH, left + len(seen_skipped)))
        jobs = [j for j in jobs if (j["cluster"], j["job_id"]) not in seen_skipped]
        if not jobs:
            break
        recent = _RecentSubmits(store, jobs)
        out: List[store_scores.Score] = []
        for job in jobs[:left]:
            i = bisect.bisect_right(times, float(job["submit_time"])) - 1
            version, _, path = proms[i]
            lua = bundles.get(version, path)
            if lua is None:
                counts.skipped += 1
                seen_skipped.add((job["cluster"], job["job_id"]))
                continue
            try:
                out.append(_score(lua, job, recent.count(job)))
            except (ValueError, TypeError, KeyError, OverflowError) as exc:   # a value the model cannot take
                log.warning("job %s: no submit verdict recorded: %s", job["job_id"], exc)
                counts.skipped += 1
                seen_skipped.add((job["cluster"], job["job_id"]))
        if out:
            store_scores.write_scores(store, out)
        counts.recorded += len(out)
        left -= len(jobs)
        if not out:
            break
    return counts


def _score(lua, job: Mapping[str, Any], recent: int) -> "store_scores.Score":
    from .why_ondemand import request_of
    req = request_of(job)
    req["recent_submits"] = recent
    v = lua.verdict(req)
    return store_scores.Score(job["cluster"], str(job["job_id"]), "submit", v.model_version or lua.version,
                              float(v.risk), v.level, json.dumps(v.reasons), float(job["submit_time"]))


class _RecentSubmits:
    """Per owner, the submit times around a batch of jobs: job_submit.lua's count of the owner's
    submissions in the hour before (one query per owner, not per job)."""

    def __init__(self, store, jobs: Sequence[Mapping[str, Any]]):
        by_owner: Dict[Tuple[str, int], List[float]] = {}
        for j in jobs:
            if j.get("uid") is not None:
                by_owner.setdefault((j["cluster"], int(j["uid"])), []).append(float(j["submit_time"]))
        self._times = {k: store_scores.submits_between(store, k[0], k[1], min(v) - RECENT_WINDOW_S, max(v) + 1)
                       for k, v in by_owner.items()}

    def count(self, job: Mapping[str, Any]) -> int:
        if job.get("uid") is None:
            return 0
        ts = self._times.get((job["cluster"], int(job["uid"])), [])
        t = float(job["submit_time"])
        return bisect.bisect_left(ts, t) - bisect.bisect_left(ts, t - RECENT_WINDOW_S)


# ------------------------------------------------------------------ performance


@dataclass
class Band:
    level: str
    n: int
    mean_risk: float
    failure_rate: float


@dataclass
class StagePerformance:
    stage: str
    model_version: str              # "all" for the stage over every version
    jobs: int
    failed: int
    warned: int
    warned_share: float
    precision: Optional[float]      # failed among warned (None: nobody warned)
    recall: Optional[float]         # warned among failed (None: no failure)
    bands: List[Band] = field(default_factory=list)
    promised: Dict[str, Optional[float]] = field(default_factory=dict)   # evaluation's figures

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def performance(store, *, since: float, owner_cancel_is_failure: bool = False,
                alert_threshold: float = 0.0) -> List[StagePerformance]:
    """The recorded warnings of jobs submitted since ``since`` that have ended, against their
    outcomes: per stage overall, then per stage and model version. A submit-stage job was warned
    when its risk reached its Lua model's threshold (what job_submit.lua does); a start-stage job
    when the Prolog's record says so (else the bundle's or ``alert_threshold``'s threshold)."""
    from .features.labels import label_from_class
    rows = store_scores.scores_with_outcomes(store, since, ["submit", "start"])
    manifests: Dict[str, Optional[Dict[str, Any]]] = {}
    groups: Dict[Tuple[str, str], List[Tuple[float, bool, bool]]] = {}
    for r in rows:
        cls = failure_class(r["state"], r["cancelled_by"], r["uid"], r["exit_code"])
        if cls is None:
            continue
        label = label_from_class(cls, owner_cancel_is_failure)
        if label not in (0, 1):   # no label (an owner's own cancel, unless it counts as a failure)
            continue
        failed = label == 1
        man = manifests.get(r["model_version"], False)
        if man is False:
            m = store_models.get_model(store, r["model_version"])
            man = manifests[r["model_version"]] = m.manifest if m is not None else None
        warned = _warned(r, man, alert_threshold)
        item = (float(r["risk"]), warned, failed)
        groups.setdefault((r["stage"], "all"), []).append(item)
        groups.setdefault((r["stage"], r["model_version"]), []).append(item)
    out = []
    for (stage, version), items in sorted(groups.items(), key=lambda kv: (kv[0][0] != "submit", kv[0][0],
                                                                            kv[0][1] != "all", kv[0][1])):
        perf = _summarise(stage, version, items)
        if version != "all":
            perf.promised = _promised(manifests.get(version), stage)
        out.append(perf)
    return out


def _warned(r: Mapping[str, Any], man: Optional[Mapping[str, Any]], alert_threshold: float) -> bool:
    risk = float(r["risk"])
    if r["stage"] == "start" and r.get("hook_data"):
        try:
            note = json.loads(r["hook_data"]).get("score") or {}
        except (ValueError, AttributeError):
            note = {}
        if isinstance(note, dict) and isinstance(note.get("alert"), bool):
            return note["alert"]
    if r["stage"] == "submit":
        thr = ((man or {}).get("lua") or {}).get("threshold")
    else:
        thr = ((man or {}).get("thresholds") or {}).get("alert")
    return risk >= risk_scale.resolve_threshold(alert_threshold, thr)


def _summarise(stage: str, version: str, items: List[Tuple[float, bool, bool]]) -> StagePerformance:
    n = len(items)
    failed = sum(1 for _, _, f in items if f)
    warned = sum(1 for _, w, _ in items if w)
    hit = sum(1 for _, w, f in items if w and f)
    bands = []
    for lvl in risk_scale.LEVELS:
        sel = [(r, f) for r, _, f in items if risk_scale.level(r) == lvl]
        if sel:
            bands.append(Band(lvl, len(sel), sum(r for r, _ in sel) / len(sel), sum(1 for _, f in sel if f) / len(sel)))
    return StagePerformance(stage, version, n, failed, warned, warned / n if n else 0.0,
                            hit / warned if warned else None, hit / failed if failed else None, bands)


def _promised(man: Optional[Mapping[str, Any]], stage: str) -> Dict[str, Optional[float]]:
    if not man:
        return {}
    metrics = man.get("metrics") or {}
    keys = [((man.get("lua") or {}).get("model") if stage == "submit" else None),
            ((man.get("ensemble") or {}).get("primary") or {}).get(stage), stage]
    for k in keys:
        m = metrics.get(k) if k else None
        if isinstance(m, dict) and "precision" in m:
            return {"precision": _num(m.get("precision")), "recall": _num(m.get("recall")),
                    "warned_share": _num(m.get("flagged"))}
    return {}


def _num(v: Any) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


MIN_BAND_JOBS = 30   # a risk level with fewer ended jobs says nothing about calibration


def metrics_of(perf: Sequence[StagePerformance]) -> List[Any]:
    """The overall figures per stage as collector-style metrics (``model.precision``,
    ``model.recall``, ``model.warned_share``, ``model.calibration_gap``: the largest gap between
    mean predicted risk and observed failure rate over risk levels holding >= MIN_BAND_JOBS
    jobs), for the alert rules model_precision_low / model_calibration_drift and /metrics."""
    from .collectors.base import Metric
    out = []
    for p in perf:
        if p.model_version != "all":
            continue
        for name, value in (("model.precision", p.precision), ("model.recall", p.recall),
                            ("model.warned_share", p.warned_share)):
            if value is not None:
                out.append(Metric.of(name, float(value), stage=p.stage))
        gaps = [abs(b.mean_risk - b.failure_rate) for b in p.bands if b.n >= MIN_BAND_JOBS]
        if gaps:
            out.append(Metric.of("model.calibration_gap", max(gaps), stage=p.stage))
    return out


def record_production_metrics(store, cfg, *, now: Optional[float] = None, days: float = 30.0) -> int:
    """Compute the last ``days`` of production performance and store it as metrics (source
    "production") for the alert engine; returns how many were written."""
    from .monitor import cluster_name
    from .store import metrics as store_metrics
    now = time.time() if now is None else now
    perf = performance(store, since=now - days * 86400.0,
                       owner_cancel_is_failure=bool(cfg.get("model.owner_cancel_is_failure")),
                       alert_threshold=float(cfg.get("model.alert_threshold")))
    ms = metrics_of(perf)
    if ms:
        store_metrics.write_cycle(store, cluster_name(cfg), "production", ms, now)
    return len(ms)
