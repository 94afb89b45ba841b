"""What each rule finds in the store this pass: one ``Finding`` per fingerprint, its condition
"on" (with the severity of the highest level crossed), "hold" (between the threshold and the
clear value: a firing alert stays firing), "off", "nodata" (its collector stopped reporting) or
"error".

Metric rules read every series' newest sample once per pass (``store.alerts.latest_samples``) and,
for trend measures, the window of only the series they select (``window_points``), fitted with
``nomade.analysis``. A series is *current* when its newest sample is as new as the newest of its
collector on that host (within half the collector's interval): a series that stopped while its
collector goes on (a node no longer drained, a GPU without a new XID) no longer holds; a
collector that stopped altogether gives "nodata", never a silent resolve.
"""

import hashlib
import json
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..analysis.limits import time_to_limit_linear, time_to_limit_quadratic
from ..analysis.regression import fit_local
from ..analysis.samples import prepare
from ..analysis.trend import ACCELERATING, DECELERATING, GROWING, classify
from ..analysis.words import human_bytes, human_duration, printable
from ..errors import NomadeError
from ..store import alerts as store_alerts
from ..store import metrics as store_metrics
from .rules import Rule, render
from .series import SeriesCache

DAY = 86400.0
_OPS: Dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne}
DEFAULT_HYSTERESIS = 0.05      # of the lowest threshold, when a rule gives no clear value


@dataclass
class Finding:
    rule: str
    fingerprint: str
    cluster: str
    labels: Dict[str, str]
    state: str                    # on, hold, off, nodata, error
    severity: str
    value: Optional[float]
    summary: str
    description: str = ""
    owner: Optional[str] = None
    rule_failed: bool = False


def fingerprint(rule: str, cluster: str, labels: Dict[str, str]) -> str:
    """The identity of an alert: its rule, cluster and key labels (a 20-hex-digit hash)."""
    text = "\x1f".join([rule, cluster] + [f"{k}\x1e{v}" for k, v in sorted(labels.items())])
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=10).hexdigest()


def value_words(v: Optional[float], unit: str) -> str:
    """A number as people read it in a message: "91%", "3 days", "1.2 TB", "87 °C"."""
    if v is None:
        return "?"
    if unit == "percent":
        return f"{v:.0f}%"
    if unit == "seconds":
        return human_duration(v)
    if unit == "bytes":
        return human_bytes(v)
    if unit == "celsius":
        return f"{v:.0f} °C"
    if unit == "per_s":
        return f"{v:.1f}/s"
    if unit == "ms":
        return f"{v:.0f} ms"
    if unit == "count":
        return f"{v:.0f}"
    return f"{v:g}"


class Levels:
    """A rule's thresholds and hysteresis: which severity a value reaches, whether a firing
    alert may stay."""

    def __init__(self, rule: Rule):
        self.rule = rule
        self.cmp = _OPS[rule.op]
        clear = rule.clear
        if clear is None and rule.op in (">", ">=", "<", "<="):
            first = rule.levels[0][1]
            margin = abs(first) * DEFAULT_HYSTERESIS
            clear = first - margin if rule.op in (">", ">=") else first + margin
        self.clear = clear

    def judge(self, v: Optional[float]) -> Tuple[str, str]:
        """("on", severity) / ("hold", "") / ("off", "") for a measured value (None: off)."""
        if v is None:
            return "off", ""
        cmp, levels = self.cmp, self.rule.levels
        if cmp(v, levels[0][1]):
            sev = levels[0][0]
            for name, t in levels[1:]:
                if cmp(v, t):
                    sev = name
            return "on", sev
        if self.clear is not None and self.cmp(v, self.clear):
            return "hold", ""
        return "off", ""


class Pass:
    """The data one pass reads, loaded once and shared by the rules; the series come from a
    ``SeriesCache`` kept between passes (a new one, read from the store, when none is given)."""

    def __init__(self, cfg: Any, store: Any, now: float, series: Optional[SeriesCache] = None):
        self.cfg, self.store, self.now = cfg, store, now
        self.series = series if series is not None else SeriesCache(store)
        self._ready = False
        self._selections: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], List[Dict[str, Any]]] = {}
        self._intervals: Dict[str, float] = {}
        self._fresh: Dict[Tuple[str, str, str, Optional[float]], Tuple[bool, float]] = {}

    def latest(self) -> None:
        if not self._ready:
            self.series.ensure(self.now)
            self._ready = True

    def select(self, metric: str, matchers: Tuple[Tuple[str, str], ...]) -> List[Dict[str, Any]]:
        """The series of ``metric`` whose labels pass the matchers (remembered for the pass)."""
        key = (metric, matchers)
        if key not in self._selections:
            self._selections[key] = _match(self.rows(metric), matchers)
        return self._selections[key]

    def rows(self, metric: str) -> List[Dict[str, Any]]:
        self.latest()
        return self.series.by_metric.get(metric, [])

    def twin(self, row: Dict[str, Any], metric: str) -> Optional[Dict[str, Any]]:
        """The same-labelled series of another metric (disk.size_bytes for disk.used_bytes)."""
        return self.series.by_key.get((row["cluster"], metric, row["host"], row["key"]))

    def interval(self, source: str) -> float:
        if source not in self._intervals:
            try:
                iv = float(self.cfg.get(f"collectors.{source}.interval_s"))
            except KeyError:
                section = getattr(self.cfg, "plugin_sections", {}).get(source, {})
                iv = float(section.get("interval_s", 60.0))
            self._intervals[source] = iv
        return self._intervals[source]

    def any_nodata(self, nodata_after: Optional[float]) -> bool:
        """Whether any collector (on any host) stopped reporting, by ``nodata_after``."""
        self.latest()
        for cluster, source, host in self.series.newest:
            key = (cluster, source, host, nodata_after)
            if key not in self._fresh:
                self.freshness({"cluster": cluster, "source": source, "host": host, "ts": 0.0}, nodata_after)
            if self._fresh[key][0]:
                return True
        return False

    def freshness(self, row: Dict[str, Any], nodata_after: Optional[float]) -> str:
        """"current", "gone" (its collector goes on without it) or "nodata"."""
        key = (row["cluster"], row["source"], row["host"], nodata_after)
        known = self._fresh.get(key)
        if known is None:
            newest = self.series.newest[key[:3]]
            iv = self.interval(row["source"])
            limit = nodata_after if nodata_after is not None else max(3.0 * iv, 30.0)
            known = self._fresh[key] = (self.now - newest > limit, newest - max(1.0, 0.5 * iv))
        if known[0]:
            return "nodata"
        return "current" if row["ts"] >= known[1] else "gone"


def evaluate_rules(cfg: Any, store: Any, rules: List[Rule], now: float,
                   series: Optional[SeriesCache] = None) -> List[Finding]:
    """Every rule's findings; a rule that fails is one "error" finding, the others go on.
    ``series`` may be kept between passes (its label dicts are shared: read-only)."""
    p = Pass(cfg, store, now, series)
    trend_rows = _trend_windows(p, rules)
    out: List[Finding] = []
    for rule in rules:
        try:
            out += KINDS[rule.kind](p, rule, trend_rows)
        except (NomadeError, ValueError, KeyError, TypeError, ZeroDivisionError, re.error) as exc:
            cluster = cfg.get("cluster") or "local"
            out.append(Finding(rule.name, fingerprint(rule.name, cluster, {"error": "rule"}), cluster,
                               {"error": "rule"}, "error", rule.severity, None,
                               f"rule {rule.name} could not be evaluated: {printable(exc)}"[:300],
                               rule_failed=True))
    return _merge(out)


def _merge(findings: List[Finding]) -> List[Finding]:
    """Several series with one fingerprint (a node's state under two reasons): the worst wins."""
    rank = {"error": 5, "on": 4, "hold": 3, "nodata": 2, "off": 1}
    best: Dict[str, Finding] = {}
    for f in findings:
        have = best.get(f.fingerprint)
        if have is None or (rank[f.state], _sev(f.severity)) > (rank[have.state], _sev(have.severity)):
            best[f.fingerprint] = f
    return list(best.values())


def _sev(s: str) -> int:
    return ("info", "warning", "critical").index(s) if s in ("info", "warning", "critical") else -1


# ---------------------------------------------------------------------------------- metric rules
def _selected(p: Pass, rule: Rule) -> List[Dict[str, Any]]:
    return p.select(rule.metric, rule.labels)


def _match(rows: List[Dict[str, Any]], matchers: Tuple[Tuple[str, str], ...]) -> List[Dict[str, Any]]:
    if not matchers:
        return rows
    tests = []
    for k, want in matchers:
        if want.startswith("~"):
            rx = re.compile(want[1:])
            tests.append(lambda labels, k=k, rx=rx: rx.search(labels.get(k, "")) is not None)
        elif want.startswith("!"):
            tests.append(lambda labels, k=k, v=want[1:]: labels.get(k) != v)
        else:
            tests.append(lambda labels, k=k, v=want: labels.get(k) == v)
    return [r for r in rows if all(t(r["labels"]) for t in tests)]


def _trend_windows(p: Pass, rules: List[Rule]) -> Dict[int, List[Tuple[float, float]]]:
    """The windows of every series a trend rule selects, read in one go (the longest window)."""
    ids: Dict[int, float] = {}
    for rule in rules:
        if rule.kind == "metric" and rule.measure in ("rate", "accel", "ttl"):
            for r in _selected(p, rule):
                ids[r["id"]] = max(ids.get(r["id"], 0.0), rule.window_s)
    p.series.forget_windows(list(ids))
    if not ids:
        return {}
    return p.series.windows({i: p.now - w for i, w in ids.items()})


def _metric(p: Pass, rule: Rule, windows: Dict[int, List[Tuple[float, float]]]) -> List[Finding]:
    levels = Levels(rule)
    out = []
    rows = _selected(p, rule)
    if rule.measure == "value" and not (rule.divide_by or rule.unless or rule.limit_metric):
        rows = _plain_candidates(p, rule, levels, rows)
    for row in rows:
        fresh = p.freshness(row, rule.nodata_after_s)
        if fresh == "gone":
            continue
        if rule.unless:
            twin = p.twin(row, rule.unless)
            if twin is not None and twin["value"] != 0:
                continue
        values = _values(p, rule, row)
        if values is None:
            continue
        if fresh == "nodata":
            state, sev = "nodata", rule.levels[0][0]
        elif rule.measure in ("rate", "accel", "ttl"):
            state, sev = _trend_judge(p, rule, row, windows, values, levels)
        else:
            state, sev = levels.judge(values["value"])
        if state == "off":      # no finding: an open alert without one this pass resolves
            continue
        sev = sev or rule.levels[0][0]
        labels = dict(row["labels"])
        key = {k: labels.get(k, "") for k in rule.key_labels} if rule.key_labels else dict(labels)
        if row["host"]:
            key["host"] = row["host"]
        fp = fingerprint(rule.name, row["cluster"], key)
        ctx = dict(labels, rule=rule.name, cluster=row["cluster"], host=row["host"],
                   where=row["host"] or row["cluster"], severity=sev, threshold=rule.levels[0][1], **values)
        ctx["value_words"] = value_words(values["value"], rule.unit)
        summary = render(rule.summary, ctx)
        if state == "nodata":
            age = p.now - p.series.newest[(row["cluster"], row["source"], row["host"])]
            summary = f"no data from {row['source']} for {human_duration(age)}; last: {summary}"
        out.append(Finding(rule.name, fp, row["cluster"], labels, state, sev, values["value"],
                           summary, render(rule.description, ctx)))
    return out


def _plain_candidates(p: Pass, rule: Rule, levels: Levels, rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """For a plain value rule: only the series that can give a finding (past the clear value,
    or whose collector may have stopped); the rest cost one comparison."""
    edge = levels.clear if levels.clear is not None else rule.levels[0][1]
    cmp = levels.cmp
    scale = rule.scale
    if rule.op in ("==", "!=") or p.any_nodata(rule.nodata_after_s):
        return rows
    return [r for r in rows if cmp(r["value"] * scale, edge) or r["value"] * scale == edge]


def _values(p: Pass, rule: Rule, row: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    v = float(row["value"])
    out: Dict[str, Any] = {}
    if rule.divide_by:
        twin = p.twin(row, rule.divide_by)
        if twin is None or not twin["value"]:
            return None                       # no limit (a quota of 0 = none) or not measured
        v = v / float(twin["value"])
    v *= rule.scale
    if rule.measure == "until":
        v = v - p.now
    if rule.limit_metric:
        lim = p.twin(row, rule.limit_metric)
        if lim is None or not lim["value"]:
            return None
        out["limit"] = float(lim["value"])
        out["percent"] = f"{100.0 * row['value'] / float(lim['value']):.0f}%"
    out["value"] = v
    return out


def _trend_judge(p: Pass, rule: Rule, row: Dict[str, Any], windows: Dict[int, List[Tuple[float, float]]],
                 values: Dict[str, Any], levels: "Levels") -> Tuple[str, str]:
    pts = [(t, x * rule.scale) for t, x in windows.get(row["id"], []) if t >= p.now - rule.window_s]
    limit = values.get("limit", rule.limit)
    if limit is not None:
        limit = limit * rule.scale
    tr = trend_of(pts, limit, rule.window_s) if len(pts) >= 3 else None
    if tr is None:
        values["value"] = None
        return "off", ""
    trend, t, rate, accel, ttl = tr
    values["trend"] = trend
    values["pace"] = "at the current acceleration" if trend == ACCELERATING else "at the current rate"
    if rule.measure == "rate":
        values["value"] = rate
    elif rule.measure == "accel":
        values["value"] = accel
    else:
        values["value"] = None if ttl is None else max(0.0, ttl - (p.now - t))
    if rule.trend and trend != rule.trend:
        return "off", ""
    return levels.judge(values["value"])


def trend_of(points: List[Tuple[float, float]], limit: Optional[float],
             window_s: float) -> Optional[Tuple[str, float, float, float, Optional[float]]]:
    """(trend class, newest time, rate, acceleration, time to ``limit``) of a series, as
    ``nomade.analysis.analyse`` computes them, without the uncertainty band (a rule needs the
    estimate, not its interval). None without samples."""
    prep = prepare(points, window_s=window_s)
    if not prep.points:
        return None
    fit = fit_local(prep.points, weights="tricube")
    trend = classify(fit)
    ttl = None
    if limit is not None:
        if trend in (ACCELERATING, DECELERATING):
            ttl = time_to_limit_quadratic(fit.value, fit.rate, fit.accel, limit)
        elif trend in (GROWING,):
            ttl = time_to_limit_linear(fit.value, fit.rate, limit)
        else:
            ttl = 0.0 if fit.value >= limit else None
    return trend, fit.t, fit.rate, fit.accel, ttl


# ---------------------------------------------------------------------------------- built-in kinds
def _collector(p: Pass, rule: Rule, _w: Any) -> List[Finding]:
    out = []
    cluster = p.cfg.get("cluster") or "local"
    only = list(p.cfg.get("monitoring.collectors"))
    for name, h in store_metrics.collector_health(p.store).items():
        if h["last_success"] is None or (only and name not in only):
            continue
        try:
            if not p.cfg.get(f"collectors.{name}.enabled"):
                continue
        except KeyError:
            pass
        iv = p.interval(name)
        limit = rule.nodata_after_s if rule.nodata_after_s is not None else max(3.0 * iv, 30.0)
        age = p.now - h["last_run"]
        labels = {"collector": name}
        if age > limit:
            state, problem = "nodata", f"has not reported for {human_duration(age)}"
        elif not h["ok"]:   # it worked before: now skipped (its source went away) or failed
            how = "is skipped" if h.get("state") == "skipped" else "failed"
            state, problem = "error", f"{how}: {printable(h['message'])[:200]}"
        else:
            state, problem = "off", "is fine"
        ctx = dict(labels, rule=rule.name, cluster=cluster, problem=problem)
        out.append(Finding(rule.name, fingerprint(rule.name, cluster, labels), cluster, labels, state,
                           rule.severity, age, render(rule.summary, ctx), render(rule.description, ctx)))
    return out


def _high_risk(p: Pass, rule: Rule, _w: Any) -> List[Finding]:
    out = []
    threshold = rule.levels[0][1]
    since = p.now - float(p.cfg.get("alerts.event_window_h")) * 3600.0
    for s in store_alerts.recent_scores(p.store, since, threshold):
        labels = {"job_id": str(s["job_id"]), "stage": str(s["stage"]), "user": str(s["user"] or "?"),
                  "level": str(s["level"] or "")}
        key = {"job_id": labels["job_id"]}
        ctx = dict(labels, rule=rule.name, cluster=s["cluster"], value_words=f"{100 * s['risk']:.0f}%")
        out.append(Finding(rule.name, fingerprint(rule.name, s["cluster"], key), s["cluster"], labels, "on",
                           _level_of(rule, s["risk"]), s["risk"], render(rule.summary, ctx),
                           render(rule.description, ctx), owner=s["user"]))
    return out


def _level_of(rule: Rule, v: float) -> str:
    reached = [sev for sev, t in rule.levels if v >= t]
    return reached[-1] if reached else rule.levels[0][0]


def _early_warning(p: Pass, rule: Rule, _w: Any) -> List[Finding]:
    out = []
    since = p.now - float(p.cfg.get("alerts.event_window_h")) * 3600.0
    for e in store_alerts.recent_events(p.store, since):
        try:
            detail = json.loads(e["detail"] or "{}")
        except ValueError:
            detail = {}
        detail = detail if isinstance(detail, dict) else {}
        labels = {"job_id": str(e["job_id"]), "node": str(e["node"]), "kind": str(e["kind"]),
                  "user": str(e["user"] or "?")}
        ttl = detail.get("ttl_s")
        if e["kind"] == "memory_projection" and isinstance(ttl, (int, float)):
            message = (f"{labels['user']}'s job {labels['job_id']} on {labels['node']} will hit its memory "
                       f"limit in about {human_duration(float(ttl))}")
        else:
            message = str(detail.get("message") or f"job {labels['job_id']} on {labels['node']}: {labels['kind']}")
        ctx = dict(labels, rule=rule.name, cluster=e["cluster"], message=printable(message)[:300])
        out.append(Finding(rule.name, fingerprint(rule.name, e["cluster"], {k: labels[k] for k in ("job_id", "node", "kind")}),
                           e["cluster"], labels, "on", rule.severity, ttl if isinstance(ttl, (int, float)) else None,
                           render(rule.summary, ctx), render(rule.description, ctx), owner=e["user"]))
    return out


def _blackhole(p: Pass, rule: Rule, _w: Any) -> List[Finding]:
    prm = rule.param
    min_jobs, factor = prm.get("min_jobs", 5.0), prm.get("factor", 3.0)
    min_rate, usual_days = prm.get("min_rate", 0.5), prm.get("usual_days", 30.0)
    out = []
    for r in store_alerts.failure_rates(p.store, p.now - rule.window_s, p.now - usual_days * DAY):
        n, failed = r["recent_n"] or 0, r["recent_failed"] or 0
        usual = (r["usual_failed"] or 0) / r["usual_n"] if r["usual_n"] else 0.0
        rate = failed / n if n else 0.0
        on = n >= min_jobs and rate >= max(min_rate, factor * usual)
        labels = {"kind": r["kind"], "name": str(r["name"])}
        ctx = dict(labels, rule=rule.name, cluster=r["cluster"], value_words=f"{100 * rate:.0f}%",
                   window=human_duration(rule.window_s), usual=f"{100 * usual:.0f}%")
        out.append(Finding(rule.name, fingerprint(rule.name, r["cluster"], labels), r["cluster"], labels,
                           "on" if on else "off", rule.severity, rate, render(rule.summary, ctx),
                           render(rule.description, ctx)))
    return out


def _model_age(p: Pass, rule: Rule, _w: Any) -> List[Finding]:
    from ..store import models as store_models
    version = store_models.current_version(p.store)
    if version is None:
        return []
    model = store_models.get_model(p.store, version)
    if model is None:
        return []
    age = p.now - float(model.created_at)
    cluster = p.cfg.get("cluster") or "local"
    labels = {"version": version}
    state, sev = Levels(rule).judge(age)
    ctx = dict(labels, rule=rule.name, cluster=cluster, value_words=human_duration(age),
               every=human_duration(rule.levels[0][1]))
    return [Finding(rule.name, fingerprint(rule.name, cluster, {}), cluster, labels, state,
                    sev or rule.severity, age, render(rule.summary, ctx), render(rule.description, ctx))]


KINDS: Dict[str, Callable[[Pass, Rule, Any], List[Finding]]] = {
    "metric": _metric, "collector": _collector, "high_risk": _high_risk,
    "early_warning": _early_warning, "blackhole": _blackhole, "model_age": _model_age}
