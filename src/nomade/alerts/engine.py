"""The alert engine's pass (docs/alerts.md "States"): evaluate the rules, move each fingerprint
through ok -> pending -> firing -> resolved (plus nodata and error), decide which notifications
go out (hold time, hysteresis, repeat interval and cooldown per severity, acknowledgements,
silences), write the pass and its outbox in one transaction, then deliver through the channels
and keep what could not be delivered for the next passes (backoff).

``Engine(cfg, store).evaluate()`` runs one pass; ``nomade collect`` calls it after each cycle,
``nomade ingest hooks`` / ``ingest spool`` for the prediction rules.
"""

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from ..errors import ConfigError, NomadeError
from ..store import alerts as store_alerts
from .evaluate import Finding, evaluate_rules
from .notification import SEVERITIES, Group, Notification, group_notifications, severity_rank
from .rules import Rule, RuleSet, load_rules, parse_duration
from .series import SeriesCache

PREDICTION_KINDS = ("high_risk", "early_warning")
OPEN_STATES = ("pending", "firing", "nodata", "error")
GIVE_UP_S = 86400.0          # an undelivered notification is retried this long
RETRY_BASE_S = 30.0
RETRY_MAX_S = 3600.0


@dataclass
class PassResult:
    """What one pass did: counts per state after it, notifications queued, deliveries made."""
    ts: float
    rules: int
    findings: int
    states: Dict[str, int] = field(default_factory=dict)
    notifications: List[Notification] = field(default_factory=list)
    deliveries: List[Dict[str, Any]] = field(default_factory=list)
    eval_s: float = 0.0
    total_s: float = 0.0

    def as_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["notifications"] = [asdict(n) for n in self.notifications]
        return d


def per_severity(cfg: Any, key: str) -> Dict[str, float]:
    """``alerts.repeat_interval`` / ``alerts.cooldown`` as seconds per severity."""
    table = dict(cfg.get(key))
    out = {}
    for sev in SEVERITIES:
        raw = table.get(sev, table.get("default", 0))
        try:
            out[sev] = parse_duration(raw)
        except ValueError as exc:
            raise ConfigError(f"{key}.{sev}: {exc}") from None
    unknown = sorted(set(table) - set(SEVERITIES) - {"default"})
    if unknown:
        raise ConfigError(f"{key}: unknown severity {unknown[0]!r} (expected info, warning, critical)")
    return out


def matches(matchers: Dict[str, str], labels: Dict[str, str]) -> bool:
    """A silence's matchers (``rule``, ``cluster``, ``severity`` and labels): all equal."""
    return all(labels.get(k) == v for k, v in matchers.items())


class Engine:
    """One engine over one store. ``channels`` None: the ones the settings enable (built on first
    use); tests pass fakes. ``clock`` gives the pass time."""

    def __init__(self, cfg: Any, store: Any, *, rules: Optional[RuleSet] = None,
                 channels: Optional[Sequence[Any]] = None, clock: Callable[[], float] = time.time,
                 log: Callable[[str], None] = lambda line: None):
        self.cfg, self.store, self.clock, self.log = cfg, store, clock, log
        self.ruleset = rules if rules is not None else load_rules(cfg)
        self.cluster = cfg.get("cluster") or "local"     # Monitor sets its own (cluster_name)
        self.repeat = per_severity(cfg, "alerts.repeat_interval")
        self.cooldown = per_severity(cfg, "alerts.cooldown")
        self._channels = list(channels) if channels is not None else None
        self.attempts = int(_get(cfg, "alerts.delivery_attempts", 3))
        self.timeout_s = float(_get(cfg, "alerts.channel_timeout_s", 10.0))
        self.backoff_s: Tuple[float, ...] = (0.5, 1.0)     # between attempts within one pass
        self.series = SeriesCache(store)

    def reconfigure(self, cfg: Any) -> None:
        """Take a reloaded configuration (SIGHUP): rules, intervals, channels. Everything is
        checked first; a ConfigError leaves the engine as it was."""
        ruleset = load_rules(cfg)
        repeat, cooldown = per_severity(cfg, "alerts.repeat_interval"), per_severity(cfg, "alerts.cooldown")
        from .channels import enabled_channels
        channels = enabled_channels(cfg)
        self.cfg, self.ruleset, self.repeat, self.cooldown = cfg, ruleset, repeat, cooldown
        self._channels = channels
        self.attempts = int(_get(cfg, "alerts.delivery_attempts", 3))
        self.timeout_s = float(_get(cfg, "alerts.channel_timeout_s", 10.0))

    @property
    def rules(self) -> List[Rule]:
        return self.ruleset.rules

    def channels(self) -> List[Any]:
        if self._channels is None:
            from .channels import enabled_channels
            self._channels = enabled_channels(self.cfg)
        return self._channels

    # ------------------------------------------------------------------ the pass
    def evaluate(self, now: Optional[float] = None, kinds: Optional[Iterable[str]] = None,
                 deliver: bool = True, cycle_written: bool = False) -> PassResult:
        """One pass over the rules (of ``kinds``, else all); notifications delivered unless
        ``deliver`` is False (they stay queued). ``cycle_written``: the series cache has taken
        the last cycle's metrics (``after_cycle``), else it reads the store again."""
        start = time.perf_counter()
        now = self.clock() if now is None else now
        wanted = set(kinds) if kinds is not None else None
        rules = [r for r in self.rules if wanted is None or r.kind in wanted]
        if not cycle_written:
            self.series.stale = True            # others may have written: read the store again
        findings = evaluate_rules(self.cfg, self.store, rules, now, self.series)
        eval_s = time.perf_counter() - start
        result = PassResult(ts=now, rules=len(rules), findings=len(findings), eval_s=eval_s)
        changes = _Changes(self, now)
        changes.apply(rules, findings)
        result.notifications = changes.notifications
        groups = group_notifications(changes.notifications)
        channels = self.channels() if groups or deliver else []
        payloads = [(g.key, json.dumps(_group_dict(g), sort_keys=True)) for g in groups]

        def outbox(ids: Dict[str, int]) -> List[Tuple[str, str, str, float]]:
            out = []
            for key, payload in payloads:
                doc = json.loads(payload)
                for n in doc["notifications"]:
                    n["alert_id"] = ids.get(n["fingerprint"], n.get("alert_id"))
                text = json.dumps(doc, sort_keys=True)
                out += [(ch.name, key, text, now) for ch in channels]
            return out

        store_alerts.save_pass(self.store, changes.to_write(), changes.deleted, outbox)
        if deliver:
            result.deliveries = self.deliver_due(now)
        result.states = _count(changes.open_after())
        result.total_s = time.perf_counter() - start
        return result

    def after_cycle(self, results: Any = None) -> Optional[PassResult]:
        """``Monitor``'s after-cycle callback: one pass; a failure is logged, never raised
        (monitoring goes on)."""
        try:
            for r in results or []:
                if getattr(r, "ok", False) and r.metrics:
                    self.series.update(self.cluster, r.name, r.metrics, r.ts)
            res = self.evaluate(cycle_written=results is not None)
        except NomadeError as exc:
            self.log(f"alerts: {exc}")
            return None
        for n in res.notifications:
            self.log(f"alert {n.status}: {n.rule}: {n.summary}")
        for d in res.deliveries:
            if not d["ok"]:
                self.log(f"alerts: {d['channel']} did not take {d['group_key']}: {d['error']}")
        return res

    # ------------------------------------------------------------------ delivery
    def deliver_due(self, now: float) -> List[Dict[str, Any]]:
        """Send every queued notification that is due (new ones and retries): each channel in
        its own thread with its groups in order (``dispatch.deliver``: a channel that failed
        one group is not tried on its others this pass), so a dead channel costs one group's
        retries and never delays the others. Returns one dict per row tried."""
        due = store_alerts.due_deliveries(self.store, now)
        if not due:
            return []
        by_name = {ch.name: ch for ch in self.channels()}
        per_channel: Dict[str, List[Dict[str, Any]]] = {}
        for row in due:
            if row["channel"] not in by_name:
                store_alerts.finish_delivery(self.store, row["id"], ok=False, attempts=0,
                                             error="channel no longer enabled", next_try=now, done=True, now=now)
                continue
            per_channel.setdefault(row["channel"], []).append(row)
        results: Dict[str, List[Any]] = {}
        threads = [threading.Thread(target=self._send_one, args=(by_name[name], rows, results),
                                    name=f"nomade-alerts-{name}", daemon=True)
                   for name, rows in per_channel.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out = []
        for name, rows in per_channel.items():
            sent = results.get(name) or []
            for k, r in enumerate(rows):
                d = sent[k] if k < len(sent) else None
                out.append(self._record(r, d, now))
        return out

    def _send_one(self, channel: Any, rows: List[Dict[str, Any]], results: Dict[str, List[Any]]) -> None:
        from .dispatch import deliver
        groups = [_group_from(json.loads(r["payload"])) for r in rows]
        results[channel.name] = deliver([channel], groups, attempts=self.attempts,
                                        backoff_s=self.backoff_s, timeout_s=self.timeout_s)

    def _record(self, r: Dict[str, Any], d: Any, now: float) -> Dict[str, Any]:
        ok = bool(d is not None and d.ok)
        err = "" if ok else (d.error if d is not None else "no result from dispatch")
        attempts = d.attempts if d is not None else 0
        tries = r["attempts"] + attempts
        rounds = max(1, tries // max(1, self.attempts))
        give_up = not ok and now - r["created_at"] >= GIVE_UP_S
        store_alerts.finish_delivery(
            self.store, r["id"], ok=ok, attempts=attempts, error=err[:500],
            next_try=now + min(RETRY_MAX_S, RETRY_BASE_S * 2 ** (rounds - 1)), done=ok or give_up, now=now)
        return {"id": r["id"], "channel": r["channel"], "group_key": r["group_key"], "ok": ok,
                "attempts": tries, "error": err}

    def test_channel(self, name: str) -> Dict[str, Any]:
        """Send a test group through channel ``name`` (enabled or not) and say what happened."""
        from .channels import registry
        from .dispatch import deliver
        found = {ch.name: ch for ch in (self._channels or [])}
        if name not in found:
            classes = registry()
            if name not in classes:
                raise NomadeError(f"unknown channel {name!r} (known: {', '.join(classes)})")
            found[name] = classes[name](self.cfg)
        now = self.clock()
        cluster = self.cfg.get("cluster") or "local"
        n = Notification(fingerprint="test", rule="test", severity="info", status="test",
                         cluster=cluster, labels={"rule": "test"},
                         summary="nomade test message: if you read this, alerts reach you",
                         description="Sent by `nomade alerts test`.", starts_at=now)
        group = Group(f"test/{cluster}", "test", cluster, "info", (n,))
        d = deliver([found[name]], [group], attempts=1, timeout_s=self.timeout_s)[0]
        return {"channel": d.channel, "ok": d.ok, "attempts": d.attempts, "error": d.error}


def _get(cfg: Any, name: str, default: Any) -> Any:
    try:
        return cfg.get(name)
    except KeyError:
        return default


_WATCHED = ("state", "severity", "summary", "updated_at", "last_sent_at", "fired_at", "resolved_at",
            "owner", "acked_at")


def _changed(before: Dict[str, Any], row: Dict[str, Any]) -> bool:
    """Whether a row differs from its stored self in anything but its value (the engine changes
    only these fields; summary and labels change together, with updated_at)."""
    for k in _WATCHED:
        if before.get(k) != row.get(k):
            return True
    return False


def _count(rows: Iterable[Dict[str, Any]]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for r in rows:
        out[r["state"]] = out.get(r["state"], 0) + 1
    return out


def _group_dict(g: Group) -> Dict[str, Any]:
    return {"key": g.key, "rule": g.rule, "cluster": g.cluster, "severity": g.severity,
            "notifications": [asdict(n) for n in g.notifications]}


def _group_from(doc: Dict[str, Any]) -> Group:
    notes = tuple(Notification(**n) for n in doc["notifications"])
    return Group(doc["key"], doc["rule"], doc["cluster"], doc["severity"], notes)


class _Changes:
    """The state machine over one pass's findings: the rows to write, the pending rows to drop,
    the notifications to queue."""

    def __init__(self, engine: Engine, now: float):
        self.e, self.now = engine, now
        self.open = store_alerts.open_alerts(engine.store)
        self._before = {fp: dict(row) for fp, row in self.open.items()}
        self.silences = store_alerts.silences(engine.store, now)
        self.rows: List[Dict[str, Any]] = []
        self.deleted: List[int] = []
        self.notifications: List[Notification] = []
        self._sent: Dict[str, float] = {}

    def apply(self, rules: List[Rule], findings: List[Finding]) -> None:
        by_name = {r.name: r for r in rules}
        seen: Set[str] = set()
        failed_rules = {f.rule for f in findings if f.rule_failed}
        for f in findings:
            seen.add(f.fingerprint)
            self.step(by_name[f.rule], f, self.open.get(f.fingerprint))
        for fp, row in self.open.items():
            rule = by_name.get(row["rule"])
            if rule is None or fp in seen or rule.name in failed_rules:
                continue
            self.step(rule, None, row)      # its series is gone: the condition no longer holds

    def to_write(self) -> List[Dict[str, Any]]:
        """The rows this pass changed (a new value alone, same words, is not worth a write)."""
        out, seen = [], set()
        for r in self.rows:
            if id(r) in seen:
                continue
            seen.add(id(r))
            before = self._before.get(r["fingerprint"])
            if before is None or _changed(before, r):
                out.append(r)
        return out

    def open_after(self) -> List[Dict[str, Any]]:
        """The open alerts once this pass is written."""
        rows = {r["fingerprint"]: r for r in self.open.values()}
        rows.update({r["fingerprint"]: r for r in self.rows})
        gone = set(self.deleted)
        return [r for r in rows.values()
                if r["state"] in OPEN_STATES and (r.get("id") is None or r["id"] not in gone)]

    def step(self, rule: Rule, f: Optional[Finding], row: Optional[Dict[str, Any]]) -> None:
        now = self.now
        state = f.state if f is not None else "off"
        if state == "hold" and (row is None or row["state"] != "firing"):
            state = "off"
        if state == "off":
            if row is None:
                return
            if row["state"] == "pending":
                self.deleted.append(row["id"])
                return
            row.update(state="resolved", resolved_at=now, updated_at=now)
            if f is not None:
                row.update(value=f.value)
            if rule.send_resolved and row.get("last_sent_at") is not None:
                self._emit(rule, row, "resolved", True, cooldown=False)
            else:
                self.rows.append(row)           # never told, or a one-shot event: no message
            return
        if state == "nodata" and row is None and rule.kind != "collector":
            return                              # the collector_down rule says it once
        if row is None:
            row = self._new(rule, f)
        self._update(row, f)
        if state == "on":
            if row["state"] == "pending" and now - row["started_at"] < rule.for_s:
                self.rows.append(row)
                return
            changed = row["state"] != "firing" or severity_rank(f.severity) > severity_rank(row["severity"])
            row["severity"] = f.severity if row["state"] != "firing" or changed else row["severity"]
            if row["state"] != "firing":
                row["fired_at"] = row.get("fired_at") or now
            row["state"] = "firing"
            self._emit(rule, row, "firing", changed or row.get("last_sent_at") is None)
        elif state == "hold":
            self._emit(rule, row, "firing", row.get("last_sent_at") is None)
        else:                                   # nodata, error
            changed = row["state"] != state
            row["state"] = state
            self._emit(rule, row, state, changed or row.get("last_sent_at") is None)

    def _new(self, rule: Rule, f: Finding) -> Dict[str, Any]:
        return dict(id=None, fingerprint=f.fingerprint, rule=rule.name, cluster=f.cluster,
                    severity=f.severity, state="pending", labels=f.labels, value=f.value,
                    summary=f.summary, description=f.description, owner=f.owner,
                    started_at=self.now, fired_at=None, resolved_at=None, updated_at=self.now,
                    last_sent_at=None, last_sent_status=None, acked_at=None, acked_until=None,
                    acked_by=None, ack_note=None)

    def _update(self, row: Dict[str, Any], f: Finding) -> None:
        """Take the finding's words; a row whose message did not change keeps its updated_at
        (and is not rewritten unless something else changed: see ``_emit``)."""
        if row.get("id") is None or row["summary"] != f.summary or row["labels"] != f.labels:
            row.update(summary=f.summary, description=f.description, labels=f.labels, updated_at=self.now)
        row["value"] = f.value
        if f.owner:
            row["owner"] = f.owner

    def _emit(self, rule: Rule, row: Dict[str, Any], status: str, changed: bool,
              cooldown: bool = True) -> None:
        """Queue a notification when the state changed or a repeat is due, unless acknowledged
        (repeats only), silenced or within the cooldown; the row is written either way."""
        now = self.now
        self.rows.append(row)
        if not changed:
            last = row.get("last_sent_at")
            if last is None or now - last < self.e.repeat[row["severity"]] or self._acked(row):
                return
        if self._silenced(row):
            return
        if cooldown and status == "firing" and row.get("last_sent_at") is None:
            last_any = self._last_sent(row["fingerprint"])
            if last_any is not None and now - last_any < self.e.cooldown[row["severity"]]:
                return                          # fired again soon after it resolved: wait
        row["last_sent_at"], row["last_sent_status"] = now, status
        self._sent[row["fingerprint"]] = now
        self.notifications.append(Notification(
            fingerprint=row["fingerprint"], rule=row["rule"], severity=row["severity"], status=status,
            cluster=row["cluster"], labels=dict(row["labels"]), summary=row["summary"],
            description=row["description"], starts_at=row.get("fired_at") or row["started_at"],
            ends_at=row.get("resolved_at"), value=row.get("value"), alert_id=row.get("id"),
            owner_email=self._owner_email(rule, row)))

    def _last_sent(self, fp: str) -> Optional[float]:
        if fp not in self._sent:
            found = store_alerts.last_sent(self.e.store, [fp]).get(fp)
            if found is not None:
                self._sent[fp] = found
        return self._sent.get(fp)

    def _acked(self, row: Dict[str, Any]) -> bool:
        if row.get("acked_at") is None:
            return False
        until = row.get("acked_until")
        return until is None or until > self.now

    def _silenced(self, row: Dict[str, Any]) -> bool:
        labels = dict(row["labels"], rule=row["rule"], cluster=row["cluster"], severity=row["severity"])
        return any(matches(s["matchers"], labels) for s in self.silences)

    def _owner_email(self, rule: Rule, row: Dict[str, Any]) -> Optional[str]:
        if rule.kind != "early_warning" or not row.get("owner") or not _get(self.e.cfg, "alerts.notify_job_owner", False):
            return None
        domain = _get(self.e.cfg, "alerts.owner_email_domain", "")
        return f"{row['owner']}@{domain}" if domain else row["owner"]


def after_prediction_ingest(cfg: Any, store: Any, log: Callable[[str], None]) -> Optional[PassResult]:
    """``nomade ingest hooks`` / ``ingest spool``: evaluate the prediction rules (a high-risk
    score, an early warning) on what was just loaded. Off with alerts.enabled = false; a problem
    is one logged line, the ingest itself stands."""
    if not cfg.get("alerts.enabled"):
        return None
    try:
        res = Engine(cfg, store, log=log).evaluate(kinds=PREDICTION_KINDS)
    except NomadeError as exc:
        log(f"alerts not evaluated: {exc}")
        return None
    for d in res.deliveries:
        if not d["ok"]:
            log(f"alerts: {d['channel']} did not take {d['group_key']}: {d['error']}")
    return res
