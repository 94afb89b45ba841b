"""The monitoring engine's loop (``nomade collect``) and its probe (``nomade syscheck``).

``Monitor`` runs each selected collector at its interval; a collector that raises or skips never
stops the others: every run is recorded (``store.metrics.record_run``), the metrics of one
collector's cycle are written in one transaction (``write_cycle``), old samples are rolled up
and pruned once an hour. ``run`` keeps going until ``stop`` is set (SIGTERM/SIGINT in the CLI)
and reloads the configuration when ``reload`` is set (SIGHUP). Library code: no printing; lines
worth logging go to the ``log`` callback.
"""

import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Type

from .collectors.base import CollectContext, Collector, CollectorSkipped
from .command import run_command
from .config import Config
from .errors import ConfigError

PRUNE_EVERY_S = 3600.0


@dataclass
class RunResult:
    """One collector run: state "ok", "skipped" (its source is absent) or "failed"."""
    name: str
    state: str
    message: str
    duration_s: float
    n_metrics: int
    ts: float
    metrics: List[Any] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.state == "ok"


@dataclass
class Signals:
    """Set by signal handlers, read by the loop between collectors and while it waits."""
    stop: bool = False
    reload: bool = False


def collector_settings(cfg: Config, name: str, cls: Type[Collector]) -> Dict[str, Any]:
    """The settings of collector ``name`` (keys without the section): declared ones from
    ``[collectors.<name>]``; for a plugin (nothing declared), its table as written over
    enabled = true, interval_s = the class's, required = false."""
    declared = cfg.section(f"collectors.{name}")
    if declared:
        return declared
    values: Dict[str, Any] = {"enabled": True, "interval_s": float(cls.interval_s), "required": False}
    values.update(cfg.plugin_sections.get(name, {}))
    _check_plugin_values(cfg, name, values)
    return values


def _check_plugin_values(cfg: Config, name: str, values: Dict[str, Any]) -> None:
    """A plugin's table is not declared in settings.py: its three common keys are checked here."""
    where = f"{cfg.file or 'configuration'}: collectors.{name}"
    for key in ("enabled", "required"):
        if not isinstance(values[key], bool):
            raise ConfigError(f"{where}.{key} = {values[key]!r}: expected true or false")
    iv = values["interval_s"]
    if isinstance(iv, bool) or not isinstance(iv, (int, float)) or not 0 < iv < float("inf"):
        raise ConfigError(f"{where}.interval_s = {iv!r}: expected a number > 0")
    values["interval_s"] = float(iv)


def cluster_name(cfg: Config) -> str:
    """The cluster metrics are stored under: the ``cluster`` setting, else slurm.conf's
    ClusterName, else "local" (the recorder's rule)."""
    if cfg.get("cluster"):
        return cfg.get("cluster")
    from .ingest.spool import local_cluster_name
    return local_cluster_name()


def select(cfg: Config, found: Mapping[str, Type[Collector]], only: Optional[Sequence[str]] = None) -> List[str]:
    """The collectors to run: ``only`` (``-C``), else ``monitoring.collectors``, else every one
    whose ``enabled`` is true. A name that is not registered is a ConfigError naming the known."""
    chosen = list(only) if only else list(cfg.get("monitoring.collectors"))
    unknown = [n for n in chosen if n not in found]
    if unknown:
        raise ConfigError(f"unknown collector {', '.join(unknown)} (known: {', '.join(found) or 'none'})")
    if chosen:
        return chosen
    return [n for n, cls in found.items() if collector_settings(cfg, n, cls).get("enabled", True)]


class Monitor:
    """Runs collectors and writes what they give. ``store`` None: nothing is written (syscheck)."""

    def __init__(self, cfg: Config, found: Mapping[str, Type[Collector]], store: Any = None, *,
                 only: Optional[Sequence[str]] = None, interval_s: Optional[float] = None,
                 run: Callable[..., Any] = run_command, clock: Callable[[], float] = time.time,
                 log: Callable[[str], None] = lambda line: None, hostname: Optional[str] = None,
                 after_cycle: Optional[Callable[[List["RunResult"]], Any]] = None):
        self.found = dict(found)
        self.after_cycle = after_cycle      # e.g. the alert engine's pass, right after the writes
        self.store = store
        self.only = list(only) if only else None
        self.interval_override = interval_s
        self.run_cmd, self.clock, self.log = run, clock, log
        self.hostname = hostname or socket.gethostname().split(".")[0]
        self._instances: Dict[str, Collector] = {}
        self._state: Dict[str, Dict[str, Any]] = {}
        self._next_due: Dict[str, float] = {}
        self._last_prune = float("-inf")
        self._said: Dict[str, tuple] = {}
        self.apply_config(cfg)

    def apply_config(self, cfg: Config) -> None:
        """Take a (re)loaded configuration: selection, intervals and settings; kept state stays."""
        self.cfg = cfg
        self.cluster = cluster_name(cfg)
        self.names = select(cfg, self.found, self.only)
        self.settings = {n: collector_settings(cfg, n, self.found[n]) for n in self.names}
        self._next_due = {n: self._next_due.get(n, float("-inf")) for n in self.names}

    def interval(self, name: str) -> float:
        if self.interval_override is not None:
            return float(self.interval_override)
        return float(self.settings[name].get("interval_s", self.found[name].interval_s))

    def run_one(self, name: str, now: float) -> RunResult:
        """Run collector ``name`` once; write its metrics and record the run when there is a store."""
        start = time.monotonic()
        metrics: List[Any] = []
        try:
            inst = self._instances.get(name) or self._instances.setdefault(name, self.found[name]())
            ctx = CollectContext(settings=self.settings[name], run=self.run_cmd, now=self.clock,
                                 hostname=self.hostname, cluster=self.cluster,
                                 state=self._state.setdefault(name, {}), store=self.store)
            metrics = list(inst.collect(ctx) or [])
            state, message = "ok", ""
        except CollectorSkipped as exc:
            state, message = "skipped", _one_line(exc)
        except Exception as exc:  # noqa: BLE001 (one failing collector never stops the others: it is recorded)
            state, message = "failed", f"{type(exc).__name__}: {_one_line(exc)}"
        result = RunResult(name, state, message, time.monotonic() - start, len(metrics), now, metrics)
        if self.store is not None:
            self._write(result)
        return result

    def _write(self, r: RunResult) -> None:
        from .store import metrics as store_metrics
        if r.metrics:
            try:
                store_metrics.write_cycle(self.store, self.cluster, r.name, r.metrics, r.ts)
            except (TypeError, ValueError, AttributeError) as exc:  # a collector gave bad metrics
                r.state, r.message, r.n_metrics = "failed", f"bad metric: {_one_line(exc)}", 0
        store_metrics.record_run(self.store, r.name, r.ts, r.ok, r.message, r.duration_s, r.n_metrics, r.state)
        said = (r.state, r.message)
        if self._said.get(r.name, ("ok", "")) != said:  # a change is logged, not every cycle
            self.log(f"collector {r.name}: {r.state}" + (f": {r.message}" if r.message else ""))
        self._said[r.name] = said

    def cycle(self, now: Optional[float] = None, signals: Optional[Signals] = None) -> List[RunResult]:
        """Run every collector that is due at ``now`` (all of them the first time); then prune
        once an hour; then call ``after_cycle(runs)`` when something ran. Returns the runs."""
        now = self.clock() if now is None else now
        results = []
        for name in self.names:
            if signals is not None and signals.stop:
                break
            if self._next_due[name] <= now:
                results.append(self.run_one(name, now))
                self._next_due[name] = now + self.interval(name)
        if self.store is not None and now - self._last_prune >= PRUNE_EVERY_S:
            self.prune(now)
        if results and self.after_cycle is not None:
            self.after_cycle(results)
        return results

    def prune(self, now: float) -> Dict[str, int]:
        from .store import metrics as store_metrics
        self._last_prune = now
        return store_metrics.prune(self.store, now, self.cfg.get("monitoring.raw_days"),
                                   self.cfg.get("monitoring.rollup_days"))

    def run(self, signals: Signals, reload: Callable[[], Config],
            sleep: Callable[[float], None] = time.sleep, max_cycles: Optional[int] = None) -> int:
        """Cycle until ``signals.stop``; on ``signals.reload`` take ``reload()`` (a bad file is
        logged and the old configuration kept). Waits in slices of at most 1 s so signals are
        answered quickly. Returns the number of cycles run."""
        self.apply_phases(self.clock())
        cycles = 0
        while not signals.stop and (max_cycles is None or cycles < max_cycles):
            if signals.reload:
                signals.reload = False
                self._reload(reload)
            self.cycle(signals=signals)
            cycles += 1
            if max_cycles is not None and cycles >= max_cycles:
                break
            wake = min(self._next_due.values(), default=self.clock() + 60.0)
            while not signals.stop and not signals.reload and self.clock() < wake:
                sleep(min(1.0, max(0.0, wake - self.clock())))
        return cycles

    def apply_phases(self, start: float) -> None:
        """A collector not yet run first runs ``phase_s`` after ``start`` (the daemon only:
        ``--once`` runs everything; ``--interval`` runs everything every cycle)."""
        if self.interval_override is not None:
            return
        for name in self.names:
            phase = float(self.settings[name].get("phase_s", self.found[name].phase_s) or 0.0)
            if phase > 0 and self._next_due[name] == float("-inf"):
                self._next_due[name] = start + phase

    def _reload(self, reload: Callable[[], Config]) -> None:
        try:
            self.apply_config(reload())
        except ConfigError as exc:
            self.log(f"configuration not reloaded, the previous one stays: {_one_line(exc)}")
        else:
            self.log(f"configuration reloaded: collectors {', '.join(self.names) or 'none'}")


@dataclass
class CheckLine:
    """What ``nomade syscheck`` says of one collector."""
    name: str
    state: str          # ok, skipped, failed, disabled
    message: str
    needs: str
    required: bool
    enabled: bool

    @property
    def missing_required(self) -> bool:
        return self.required and self.state != "ok"


def syscheck(cfg: Config, found: Mapping[str, Type[Collector]], *, only: Optional[Sequence[str]] = None,
             run: Callable[..., Any] = run_command, clock: Callable[[], float] = time.time) -> List[CheckLine]:
    """Probe every registered collector (or ``only``) once, writing nothing: present (ok),
    skipped (its one line), failed, or disabled (not probed; enabled = false and not asked for)."""
    names = select(cfg, found, only) if only else list(found)
    monitor = Monitor(cfg, found, None, only=names, run=run, clock=clock)
    lines = []
    now = clock()
    for name in names:
        settings = monitor.settings[name]
        enabled = bool(settings.get("enabled", True))
        required = bool(settings.get("required", False))
        needs = found[name].needs
        if not enabled and not only and not required:
            lines.append(CheckLine(name, "disabled", "enabled = false", needs, required, enabled))
            continue
        r = monitor.run_one(name, now)
        lines.append(CheckLine(name, r.state, r.message, needs, required, enabled))
    return lines


def _one_line(exc: BaseException) -> str:
    return str(exc).replace("\n", " ")[:500]
