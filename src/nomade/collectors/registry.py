"""Which collectors exist: the built-in ones (every module of this package registers its classes
with ``@register`` when imported) and third-party ones (entry point group ``nomade.collectors``,
``name = "package.module:ClassName"``; docs/monitoring.md "Writing a collector").

A module or plugin that cannot be loaded is not a crash: it is left out and its one line is
kept in ``problems()`` (``nomade syscheck`` prints them).
"""

import importlib
import pkgutil
from typing import Any, Dict, Iterable, List, Optional, Type

from . import base
from .base import ENTRY_POINT_GROUP, Collector

_SKIP_MODULES = {"base", "registry", "runner"}
_problems: List[str] = []


def _import_builtin_modules() -> None:
    """Import every module of nomade.collectors (their ``@register`` runs); one that fails to
    import is recorded as a problem."""
    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__):
        if info.name in _SKIP_MODULES or info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{__package__}.{info.name}")
        except Exception as exc:  # noqa: BLE001 (a broken module must not take the others down)
            _note(f"collector module nomade.collectors.{info.name} failed to import: "
                  f"{type(exc).__name__}: {_one_line(exc)}")


def _entry_points(group: str) -> Iterable[Any]:
    from importlib import metadata
    eps = metadata.entry_points()
    if hasattr(eps, "select"):
        return eps.select(group=group)
    return eps.get(group, [])  # Python 3.9: a dict of group -> entry points


def _load_plugins(found: Dict[str, Type[Collector]], entry_points: Optional[Iterable[Any]]) -> None:
    for ep in (_entry_points(ENTRY_POINT_GROUP) if entry_points is None else entry_points):
        where = f"plugin {ep.name} ({ep.value})"
        try:
            cls = ep.load()
        except Exception as exc:  # noqa: BLE001 (a broken plugin is one line, never a crash)
            _note(f"{where} failed to load: {type(exc).__name__}: {_one_line(exc)}")
            continue
        if not (isinstance(cls, type) and issubclass(cls, Collector)):
            _note(f"{where} is not a nomade.collectors.base.Collector subclass")
            continue
        name = cls.name or ep.name
        if name in found:
            _note(f"{where}: collector name {name!r} is taken (by {found[name].__module__}); ignored")
            continue
        if cls.name != name:
            cls.name = name
        found[name] = cls


def registry(entry_points: Optional[Iterable[Any]] = None) -> Dict[str, Type[Collector]]:
    """{name: collector class}, sorted by name: the built-ins, then the plugins of the entry point
    group (``entry_points`` given: those instead, for tests). Problems found on the way are in
    ``problems()``."""
    del _problems[:]
    _import_builtin_modules()
    found = base.builtin()
    _load_plugins(found, entry_points)
    return dict(sorted(found.items()))


def problems() -> List[str]:
    """One line per collector module or plugin the last ``registry()`` could not load."""
    return list(_problems)


def _note(line: str) -> None:
    _problems.append(line)


def _one_line(exc: BaseException) -> str:
    return str(exc).replace("\n", " ")[:300]
