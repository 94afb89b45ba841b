"""The Python API: ``nomade.Nomade(config=...)`` - the monitoring engine as plain data.

    from nomade import Nomade
    nm = Nomade()                      # or Nomade(config="/etc/nomade/nomade.toml")
    nm.collectors["disk"]              # CollectorStatus(name, enabled, interval_s, ...)
    nm.collect_once()                  # run the enabled collectors once, store what they give
    nm.analysis                        # nomade.analysis.Analysis(store), where that module exists
    nm.jobs(since="7d")                # pandas DataFrames: .metrics(), .alerts(), .similar_jobs(), .profiles()
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .config import Config, load_config


@dataclass(frozen=True)
class CollectorStatus:
    """A registered collector: its settings, and its last recorded run (None: never ran)."""
    name: str
    enabled: bool
    required: bool
    interval_s: float
    needs: str
    last_run: Optional[float]
    ok: Optional[bool]
    message: str
    last_success: Optional[float]


class Nomade:
    """One site's nomade: configuration, store, collectors. ``config``: a TOML file path or a
    loaded ``Config`` (None: the usual search, $NOMADE_CONFIG then /etc/nomade/nomade.toml);
    ``overrides``: setting name -> value, as the command line gives them."""

    def __init__(self, config: Any = None, overrides: Optional[Mapping[str, Any]] = None):
        self.config: Config = config if isinstance(config, Config) else load_config(
            None if config is None else str(config), overrides)
        self._store = None

    @property
    def store(self):
        """The store (opened, migrated, on first use)."""
        if self._store is None:
            from .store.db import store_from_config
            self._store = store_from_config(self.config)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> "Nomade":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def collectors(self) -> Dict[str, CollectorStatus]:
        """{name: CollectorStatus} for every registered collector, with its last recorded run."""
        from .collectors.registry import registry
        from .monitor import collector_settings
        from .store.metrics import collector_health
        health = collector_health(self.store)
        out = {}
        for name, cls in registry().items():
            s = collector_settings(self.config, name, cls)
            h = health.get(name, {})
            out[name] = CollectorStatus(name, bool(s.get("enabled", True)), bool(s.get("required", False)),
                                        float(s.get("interval_s", cls.interval_s)), cls.needs,
                                        h.get("last_run"), h.get("ok"), h.get("message", ""),
                                        h.get("last_success"))
        return out

    def collect_once(self, only: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
        """Run the selected collectors (``only``, else the enabled ones) once and store what they
        give. Returns one dict per run: name, state (ok, skipped, failed), message, metrics
        (count), duration_s."""
        from .collectors.registry import registry
        from .monitor import Monitor
        results = Monitor(self.config, registry(), self.store, only=only).cycle()
        return [{"name": r.name, "state": r.state, "message": r.message, "metrics": r.n_metrics,
                 "duration_s": r.duration_s} for r in results]

    @property
    def analysis(self):
        """``nomade.analysis.Analysis``: trends and projections (``.disk("/scratch")``) of this
        site's cluster (the one ``nomade collect`` stores under)."""
        from . import analysis
        from .monitor import cluster_name
        return analysis.Analysis(self.store, cluster=cluster_name(self.config))

    # ---- DataFrames for notebooks (nomade.api_frames; pandas, the `web` extra; docs/api.md).
    # The caller is the real uid: non-admins get only their own jobs, as on the command line.
    def jobs(self, since: Any = None, user: Any = None, state: Any = None, cluster: Optional[str] = None,
             limit: int = 10000, job_id: Any = None):
        """Jobs with their scores, newest submission first (``since``: epoch s, datetime, "7d")."""
        from . import api_frames
        return api_frames.jobs(self.config, self.store, since=since, user=user, state=state,
                               cluster=cluster, limit=limit, job_id=job_id)

    def metrics(self, metric: str, hours: float = 24.0, host: Optional[str] = None,
                labels: Optional[Dict[str, Any]] = None, cluster: Optional[str] = None, until: Any = None):
        """One collector metric over the last ``hours``: a row per point of each series."""
        from . import api_frames
        return api_frames.metrics(self.config, self.store, metric, hours=hours, host=host,
                                  labels=labels, cluster=cluster, until=until)

    def alerts(self, unresolved: bool = False, severity: Optional[str] = None, since: Any = None,
               limit: int = 1000):
        """Alerts, newest first (empty where the alert engine is not installed)."""
        from . import api_frames
        return api_frames.alerts(self.config, self.store, unresolved=unresolved, severity=severity,
                                 since=since, limit=limit)

    def similar_jobs(self, job_id: str, k: int = 10, cluster: str = ""):
        """The ``k`` jobs most like ``job_id`` (by behaviour where available, else why's rule)."""
        from . import api_frames
        return api_frames.similar_jobs(self.config, self.store, job_id, k=k, cluster=cluster)

    def profiles(self, cluster: Optional[str] = None):
        """Job profiles of the behaviour analysis (empty where it is not installed)."""
        from . import api_frames
        return api_frames.profiles(self.config, self.store, cluster=cluster)
