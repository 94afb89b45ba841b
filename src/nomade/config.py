"""Load the effective configuration: CLI > NOMADE_* environment > TOML file > built-in default.

The TOML file is ``--config``, else ``$NOMADE_CONFIG``, else ``/etc/nomade/nomade.toml`` if it
exists, else none. Every value is validated against its declaration in ``settings.py``; errors are
one line naming the file, the key and what was expected.
"""

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .errors import ConfigError
from .settings import SETTINGS, Setting

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - exercised on the 3.9 runtime pass
    import tomli as _toml

SYSTEM_CONFIG = Path("/etc/nomade/nomade.toml")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass
class Config:
    values: Dict[str, Any]
    sources: Dict[str, str]
    file: Optional[Path] = None
    plugin_sections: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # [collectors.<plugin>]
    _derived: Dict[str, Any] = field(default_factory=dict)
    problems: List[str] = field(default_factory=list)   # what a lenient load ignored (one line each)

    def get(self, name: str) -> Any:
        return self.values[name]

    @property
    def data_dir(self) -> Path:
        return Path(self.values["data_dir"]).expanduser()

    @property
    def store_path(self) -> Path:
        p = self.values["store.path"]
        return Path(p).expanduser() if p else self.data_dir / "nomade.db"

    @property
    def registry_dir(self) -> Path:
        p = self.values["model.registry_dir"]
        return Path(p).expanduser() if p else self.data_dir / "models"

    def spool_dir(self, kind: str) -> Path:
        p = self.values[f"{kind}.spool_dir"]
        return Path(p).expanduser() if p else self.data_dir / "spool" / ("hooks" if kind == "hooks" else "samples")

    def section(self, section: str) -> Dict[str, Any]:
        """The settings of one section as {key: value} (``cfg.section("collectors.disk")``)."""
        return {s.key: self.values[s.name] for s in SETTINGS if s.section == section}

    def as_rows(self):
        """(name, value, source) for every setting, in declaration order."""
        return [(s.name, self.values[s.name], self.sources[s.name]) for s in SETTINGS]


def default_data_dir() -> str:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return "/var/lib/nomade"
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "nomade")


def coerce(setting: Setting, raw: Any, where: str) -> Any:
    """Check/convert one value. Strings (from the environment) are parsed; TOML values must
    already have the right type (ints are accepted for floats)."""
    t = setting.type
    if t is list:
        return _coerce_list(setting, raw, where)
    if t is dict:
        return _coerce_table(setting, raw, where)
    if isinstance(raw, str) and t is not str:
        text = raw.strip()
        try:
            if t is bool:
                if text.lower() in _TRUE:
                    return True
                if text.lower() in _FALSE:
                    return False
                raise ValueError(text)
            value = t(text)
        except ValueError:
            raise ConfigError(f"{where}: {setting.name} = {raw!r}: expected {_tname(t)}") from None
        return _finite(setting, value, where)
    if t is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if t is float and isinstance(raw, float):
        return _finite(setting, raw, where)
    if t is not bool and isinstance(raw, bool):
        raise ConfigError(f"{where}: {setting.name} = {raw!r}: expected {_tname(t)}")
    if not isinstance(raw, t):
        raise ConfigError(f"{where}: {setting.name} = {raw!r}: expected {_tname(t)}, got {type(raw).__name__}")
    return raw


def _coerce_list(setting: Setting, raw: Any, where: str) -> List[str]:
    """A list of strings: a TOML array of strings, or comma-separated text (the environment)."""
    if isinstance(raw, str):
        return [x.strip() for x in raw.split(",") if x.strip()]
    if isinstance(raw, (list, tuple)) and all(isinstance(x, str) for x in raw):
        return list(raw)
    raise ConfigError(f"{where}: {setting.name} = {raw!r}: expected a list of strings "
                      f"(in TOML [\"a\", \"b\"]; in the environment a,b)")


_SCALARS = (str, int, float, bool)


def _coerce_table(setting: Setting, raw: Any, where: str) -> Dict[str, Any]:
    """A table of string keys to scalars: a TOML table, or ``key=value,key=value`` text (values
    then strings)."""
    if isinstance(raw, str):
        table: Dict[str, Any] = {}
        for item in (x.strip() for x in raw.split(",")):
            if not item:
                continue
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ConfigError(f"{where}: {setting.name} = {raw!r}: expected key=value,key=value")
            table[key.strip()] = value.strip()
        return table
    if isinstance(raw, dict) and all(isinstance(v, _SCALARS) for v in raw.values()):
        for v in raw.values():
            _finite(setting, v, where)
        return dict(raw)
    raise ConfigError(f"{where}: {setting.name} = {raw!r}: expected a table of strings, numbers "
                      f"or booleans")


def _finite(setting: Setting, value: Any, where: str) -> Any:
    """nan and inf are numbers to TOML and to float(), never a sensible setting: `hooks.timeout_s =
    nan` passed every `<= 0` check and left the hooks without a time bound."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: {setting.name} = {value!r}: expected a finite number")
    return value


def _tname(t: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            list: "a list of strings", dict: "a table"}[t]


def read_toml(path: Path) -> Dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return _toml.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except PermissionError:
        raise ConfigError(f"{path}: config file not readable (permission denied)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a TOML file") from None
    except _toml.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid UTF-8 text") from None


def _flatten(doc: Mapping[str, Any], path: Path, prefix: str = "",
             plugins: Optional[Dict[str, Dict[str, Any]]] = None,
             problems: Optional[List[str]] = None) -> Dict[str, Any]:
    """{setting name: value} from a TOML document whose tables may nest (``[collectors.disk]``
    is {"collectors": {"disk": {...}}}); a table-typed setting's value stays a table. A
    ``[collectors.<name>]`` table no setting declares (a third-party collector's) goes, as
    written, to ``plugins[name]``. With ``problems``, an unknown key or section is noted there
    and skipped instead of raised."""
    known = {s.name: s for s in SETTINGS}
    sections = {s.section for s in SETTINGS if s.section}
    flat: Dict[str, Any] = {}
    for k, v in doc.items():
        name = f"{prefix}.{k}" if prefix else k
        setting = known.get(name)
        if setting is not None and (setting.type is dict or not isinstance(v, dict)):
            flat[name] = v
        elif isinstance(v, dict) and (name in sections or name == "collectors" or any(x.startswith(name + ".") for x in sections)):
            flat.update(_flatten(v, path, name, plugins, problems))
        elif isinstance(v, dict) and prefix == "collectors" and plugins is not None:
            plugins[k] = dict(v)
        elif isinstance(v, dict):
            roots = sorted({x for x in sections if "." not in x} | {x.split(".")[0] for x in sections})
            known_here = sorted(x for x in sections if x.startswith(prefix + ".")) if prefix else roots
            listed = f" (known: {', '.join(known_here)})" if known_here else ""
            _problem(problems, f"{path}: unknown section [{name}]{listed}")
        elif prefix:
            _problem(problems, f"{path}: unknown key {name} in [{prefix}]")
        else:
            _problem(problems, f"{path}: unknown key {k}")
    return flat


def _problem(problems: Optional[List[str]], message: str) -> None:
    """Raise ``message`` as a ConfigError, or note it in ``problems`` (a lenient load)."""
    if problems is None:
        raise ConfigError(message)
    problems.append(message)


def config_file_path(explicit: Optional[str], environ: Mapping[str, str]) -> Optional[Path]:
    if explicit:
        return Path(explicit)
    if environ.get("NOMADE_CONFIG"):
        return Path(environ["NOMADE_CONFIG"])
    return SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else None


def csv_setting(cfg: "Config", name: str, allowed: Sequence[str]) -> List[str]:
    """A comma-separated setting as a list, every item checked against ``allowed``."""
    items = [x.strip() for x in str(cfg.get(name)).split(",") if x.strip()]
    bad = [x for x in items if x not in allowed]
    if bad or not items:
        raise ConfigError(f"{name} = {cfg.get(name)!r}: expected a comma-separated list of "
                          f"{', '.join(allowed)}")
    return items


def load_config(
    config_path: Optional[str] = None,
    overrides: Optional[Mapping[str, Any]] = None,
    environ: Optional[Mapping[str, str]] = None,
    lenient: bool = False,
) -> Config:
    """Build the effective configuration. ``overrides`` are CLI values keyed by setting name.

    ``lenient`` (the parts that must keep running: hooks, MailProg, the why-service, collect):
    an unknown key is skipped and a value that does not check out keeps its default (the
    environment's, then the file's, then the declared one); each is one line in
    ``Config.problems`` for the caller to log once. A file that cannot be read or parsed at all
    is still an error (nothing says where the data go). Strict (every command an admin runs):
    the first problem is an error."""
    environ = os.environ if environ is None else environ
    problems: Optional[List[str]] = [] if lenient else None
    path = config_file_path(config_path, environ)
    plugins: Dict[str, Dict[str, Any]] = {}
    file_values: Dict[str, Any] = {}
    if path is not None:   # a file that cannot be read or parsed at all is an error even when lenient:
        file_values = _flatten(read_toml(path), path, "", plugins, problems)   # where would data go?
    values: Dict[str, Any] = {}
    sources: Dict[str, str] = {}
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    for s in SETTINGS:
        candidates = []
        if s.name in overrides:
            candidates.append((overrides[s.name], "command line", "command line"))
        if s.env_var in environ:
            candidates.append((environ[s.env_var], f"environment {s.env_var}", f"env {s.env_var}"))
        if s.name in file_values:
            candidates.append((file_values[s.name], str(path), f"file {path}"))
        values[s.name], sources[s.name] = _copy(s.default), "default"
        for raw, where, source in candidates[:1] if problems is None else candidates:
            try:
                values[s.name], sources[s.name] = coerce(s, raw, where), source
                break
            except ConfigError as exc:
                _problem(problems, f"{exc} (ignored)")
    if values["data_dir"] is None:
        values["data_dir"] = default_data_dir()
        sources["data_dir"] = "default (derived)"
    if problems is None:
        _validate(values, path)
    else:
        _validate_lenient(values, sources, path, problems)
    return Config(values=values, sources=sources, file=path, plugin_sections=plugins, problems=problems or [])


def _validate_lenient(values: Dict[str, Any], sources: Dict[str, str], path: Optional[Path],
                      problems: List[str]) -> None:
    """_validate, each value that fails put back to its default and noted."""
    defaults = {s.name: s.default for s in SETTINGS}
    for _ in range(len(values)):
        try:
            _validate(values, path)
            return
        except ConfigError as exc:
            name = next((n for n in values if f" {n} = " in f" {exc}"), None)
            if name is None or values[name] == defaults[name]:
                raise
            problems.append(f"{exc} (ignored)")
            values[name], sources[name] = _copy(defaults[name]), "default"


def _copy(default: Any) -> Any:
    """A fresh list or table for each Config, so no caller can change the declared default."""
    return type(default)(default) if isinstance(default, (list, dict)) else default


def _validate(values: Dict[str, Any], path: Optional[Path]) -> None:
    where = str(path) if path else "configuration"
    positive = [n for n in values if n.startswith("collectors.") and n.endswith(".interval_s")]
    for name in positive + ["monitoring.raw_days", "monitoring.rollup_days"]:
        if values[name] <= 0:
            raise ConfigError(f"{where}: {name} = {values[name]}: expected a number > 0")
    for name in ("store.busy_timeout_ms", "slurm.overlap_s", "ingest.batch_size", "train.min_jobs"):
        if values[name] < 0 or (name == "ingest.batch_size" and values[name] == 0):
            raise ConfigError(f"{where}: {name} = {values[name]}: expected a positive number")
    for name in ("slurm.command_timeout_s", "hooks.timeout_s", "recorder.interval_s"):
        if values[name] <= 0:
            raise ConfigError(f"{where}: {name} = {values[name]}: expected a number > 0")
    for name in ("model.alert_threshold", "model.alert_budget", "model.min_precision", "train.alert_budget"):
        if not 0.0 <= values[name] <= 1.0:
            raise ConfigError(f"{where}: {name} = {values[name]}: expected 0..1")
