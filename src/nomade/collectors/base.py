"""The collector contract: what every collector is, what it returns, how it says it cannot run.

A collector is a small class registered with ``@register``. It declares its name, its default
interval, its settings (in ``nomade.settings``, section ``collectors.<name>``) and what it needs;
``collect(ctx)`` returns a list of ``Metric`` for one cycle, or raises ``CollectorSkipped`` with
one line ("no nvidia driver") when its source is absent on this host - never an error. Parsers live
in plain functions that take text or paths (``root=Path("/proc")``) so tests replay captured output;
every subprocess goes through ``nomade.command.run_command`` (the context's ``run``).

Third-party collectors register through the entry point group ``nomade.collectors``
(``name = "package.module:ClassName"``); ``registry()`` loads them next to the built-in ones.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Type

from ..errors import NomadeError

ENTRY_POINT_GROUP = "nomade.collectors"


class CollectorSkipped(NomadeError):
    """The collector's source is absent here (one line saying what is missing); not a failure."""


@dataclass(frozen=True)
class Metric:
    """One value of one cycle. ``labels`` identify the series (mount, partition, node, gpu,
    feature, user, ...); ``host`` is where it was measured ("" = cluster-wide)."""

    metric: str                       # dotted, with its unit as a suffix: "disk.used_bytes"
    value: float
    labels: Tuple[Tuple[str, str], ...] = ()
    host: str = ""
    ts: Optional[float] = None        # None: the cycle's time

    @staticmethod
    def of(metric: str, value: float, host: str = "", ts: Optional[float] = None,
           **labels: Any) -> "Metric":
        return Metric(metric, float(value), tuple(sorted((k, str(v)) for k, v in labels.items())),
                      host, ts)

    def label(self, key: str, default: str = "") -> str:
        return dict(self.labels).get(key, default)


@dataclass
class CollectContext:
    """What a cycle gives every collector: its settings, the subprocess door, the clock, the
    roots of /proc and /sys (tests point them at captured trees), per-collector state kept
    between cycles (previous counter values for rates), and the store (read only)."""

    settings: Mapping[str, Any]                       # this collector's settings, keys without prefix
    run: Callable[..., Any]                           # nomade.command.run_command
    now: Callable[[], float] = time.time
    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    hostname: str = ""
    cluster: str = ""
    state: Dict[str, Any] = field(default_factory=dict)
    store: Any = None                                 # the store, for collectors that summarise
                                                      # what it holds (coverage); None in syscheck


class Collector:
    """Subclass, set the class attributes, implement ``collect``."""

    name: str = ""
    help: str = ""
    interval_s: float = 60.0          # default; [collectors.<name>] interval_s overrides
    phase_s: float = 0.0              # the daemon's first run waits this long ([..] phase_s overrides)
    needs: str = ""                   # one line for `nomade syscheck`: what it reads or runs

    def collect(self, ctx: CollectContext) -> List[Metric]:
        raise NotImplementedError


_BUILTIN: Dict[str, Type[Collector]] = {}


def register(cls: Type[Collector]) -> Type[Collector]:
    """Class decorator: a built-in collector."""
    if not cls.name or cls.name in _BUILTIN:
        raise ValueError(f"collector name {cls.name!r} missing or registered twice")
    _BUILTIN[cls.name] = cls
    return cls


def builtin() -> Dict[str, Type[Collector]]:
    return dict(_BUILTIN)
