"""The systemd units and timers of nomade's moving parts, filled in for one install: ``nomade
install-slurm`` writes them (``--unit-dir``) or prints them (``--print-units``).

The templates in ``slurm_plugins/systemd/`` start nomade as ``/usr/bin/env nomade ...``; here
that becomes the ``nomade`` command next to the interpreter the hooks run (the shared prefix),
so a unit never depends on systemd's PATH. Every unit runs as root, the store's owner
(docs/deployment.md)."""

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from .errors import ConfigError

# every unit, in the order they are shown; ``host`` says where it belongs
UNITS = {
    "nomade-why.service": "store host",
    "nomade-ingest-sacct.service": "store host",
    "nomade-ingest-sacct.timer": "store host",
    "nomade-ingest-hooks.service": "store host",
    "nomade-ingest-hooks.timer": "store host",
    "nomade-train.service": "store host",
    "nomade-train.timer": "store host",
    "nomade-refresh-history.service": "store host",
    "nomade-refresh-history.timer": "store host",
    "nomade-ingest-spool.service": "store host",
    "nomade-ingest-spool.timer": "store host",
    "nomade-collect.service": "store host",
    "nomade-record.service": "compute nodes",
}
# what `systemctl enable --now` starts on the store host (the services are started by these)
ENABLE_ON_STORE_HOST = ("nomade-why.service", "nomade-ingest-sacct.timer", "nomade-ingest-hooks.timer",
                        "nomade-refresh-history.timer", "nomade-train.timer")
DEFAULT_CONFIG = Path("/etc/nomade/nomade.toml")
_TEMPLATE_COMMAND = "ExecStart=/usr/bin/env nomade "


@dataclass(frozen=True)
class Unit:
    name: str
    text: str
    host: str


def nomade_command(python: str, pythonpath: str = "") -> str:
    """How a unit starts nomade: the ``nomade`` script installed next to ``python`` (a venv or
    pipx prefix), else ``python -m nomade.cli`` (nomade on ``pythonpath``)."""
    script = Path(python).parent / "nomade"
    if script.is_file() and not pythonpath:
        return str(script)
    return f"{python} -c 'import nomade.cli.main as m; m.main()'"


def fill_unit(text: str, command: str, env: Sequence[str] = ()) -> str:
    """A service template ``text`` with ``command`` for ``/usr/bin/env nomade`` and ``env``
    (``KEY=value`` lines) added to its [Service] section; a timer as it is."""
    if "[Service]" not in text:
        return text
    if _TEMPLATE_COMMAND not in text:
        raise ConfigError("a nomade unit template has no `ExecStart=/usr/bin/env nomade ...` line",
                          hint="reinstall nomade: its slurm_plugins/systemd files were changed")
    text = text.replace(_TEMPLATE_COMMAND, f"ExecStart={command} ")
    if env:
        lines = "".join(f"Environment={e}\n" for e in env)
        text = text.replace("[Service]\n", "[Service]\n" + lines, 1)
    return text


def plan_units(source: Path, python: str, *, pythonpath: str = "", config_file: Path = DEFAULT_CONFIG,
               names: Optional[Sequence[str]] = None) -> List[Unit]:
    """The units ``names`` (default: all of UNITS) filled in for this install."""
    wanted = list(names) if names else list(UNITS)
    unknown = [n for n in wanted if n not in UNITS]
    if unknown:
        raise ConfigError(f"--unit {unknown[0]}: not a nomade unit", hint="one of " + ", ".join(UNITS))
    command = nomade_command(python, pythonpath)
    env = []
    if Path(config_file) != DEFAULT_CONFIG:
        env.append(f"NOMADE_CONFIG={config_file}")
    if pythonpath:
        env.append(f"PYTHONPATH={pythonpath}")
    units = []
    for name in wanted:
        template = source / "slurm_plugins" / "systemd" / name
        if not template.is_file():
            raise ConfigError(f"{template}: missing", hint="reinstall nomade or pass --source DIR")
        text = fill_unit(template.read_text(), command, env)
        units.append(Unit(name, text, UNITS[name]))
    return units


def format_units(units: Sequence[Unit]) -> str:
    """The units as one text (``--print-units``); a single unit is exactly its file."""
    if len(units) == 1:
        return units[0].text.rstrip("\n")
    return "\n".join(f"# ==> {u.name} ({u.host}) <==\n{u.text.rstrip()}\n" for u in units).rstrip("\n")


def enable_command(names: Sequence[str]) -> str:
    """The command that starts the store host's parts once the units are in place."""
    on = [n for n in ENABLE_ON_STORE_HOST if n in names]
    return "systemctl daemon-reload && systemctl enable --now " + " ".join(on) if on else ""
