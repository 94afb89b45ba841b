"""Alert rules as data (docs/alerts.md "Rules"): ``[[rule]]`` tables in TOML files, validated
when they are loaded. A bad rule is one ConfigError naming the file, the rule and the field.

The effective rules (``load_rules``) are the shipped defaults (``nomade.alerts.defaults``, driven
by the ``[alerts]`` settings) less ``alerts.disabled_rules``, then the rules of each file in
``alerts.rule_files``: a file's rule with a default's name replaces it.
"""

import functools
import math
import re
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..errors import ConfigError
from .notification import SEVERITIES

KINDS = ("metric", "collector", "high_risk", "early_warning", "blackhole", "model_age")
MEASURES = ("value", "rate", "accel", "ttl", "until")
OPS = (">", ">=", "<", "<=", "==", "!=")
UNITS = ("", "percent", "bytes", "seconds", "celsius", "count", "per_s", "ms")
TRENDS = ("stable", "growing", "accelerating", "decelerating", "shrinking")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
METRIC = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$")
FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, None: 1}
MAX_TEMPLATE = 1000


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str = "metric"
    severity: str = "warning"
    levels: Tuple[Tuple[str, float], ...] = ()    # (severity, threshold), lowest severity first
    metric: str = ""
    labels: Tuple[Tuple[str, str], ...] = ()      # matchers: "v" equal, "~re" matches, "!v" not equal
    divide_by: str = ""                           # value = metric / divide_by(same labels) * scale
    scale: float = 1.0
    unless: str = ""                              # skip series whose same-labelled metric is non-zero
    measure: str = "value"
    op: str = ">"
    clear: Optional[float] = None                 # hysteresis: firing until the value crosses this
    trend: str = ""                               # also require this trend class
    window_s: float = 6 * 3600.0
    limit: Optional[float] = None                 # ttl: the limit, or ...
    limit_metric: str = ""                        # ... a same-labelled metric (disk.size_bytes)
    for_s: float = 0.0
    key_labels: Tuple[str, ...] = ()              # fingerprint labels (empty: all, and the host)
    summary: str = "{rule} {value_words}"
    description: str = ""
    unit: str = ""
    send_resolved: bool = True
    nodata_after_s: Optional[float] = None
    params: Tuple[Tuple[str, float], ...] = ()    # numbers for the built-in kinds
    source: str = "defaults"                      # where the rule came from (file path)

    @property
    def param(self) -> Dict[str, float]:
        return dict(self.params)

    def as_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["levels"] = {s: t for s, t in self.levels}
        d["labels"] = dict(self.labels)
        d["params"] = dict(self.params)
        d["key_labels"] = list(self.key_labels)
        return d


def parse_duration(text: Any) -> float:
    """"90s", "5m", "4h", "3d", "1w" or a number of seconds -> seconds; ValueError otherwise."""
    if isinstance(text, bool):
        raise ValueError("expected a duration such as 5m, 4h or 3d")
    if isinstance(text, (int, float)):
        if not 0 <= text < float("inf"):
            raise ValueError("expected a duration >= 0")
        return float(text)
    m = DURATION.match(str(text)) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{str(text)[:40]!r} is not a duration such as 5m, 4h or 3d")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def template_fields(text: str) -> List[str]:
    """The placeholders of a message template; ValueError for anything but plain {name}."""
    if len(text) > MAX_TEMPLATE:
        raise ValueError(f"longer than {MAX_TEMPLATE} characters")
    out = []
    for _, name, spec, conv in string.Formatter().parse(text):
        if name is None:
            continue
        if not FIELD.match(name) or spec or conv:
            raise ValueError(f"placeholder {{{name}{'!' + conv if conv else ''}{':' + spec if spec else ''}}}"
                             " is not allowed: use plain {name}")
        out.append(name)
    return out


@functools.lru_cache(maxsize=1024)
def _parsed(template: str) -> Tuple[Tuple[str, Optional[str]], ...]:
    return tuple((literal, name) for literal, name, _, _ in string.Formatter().parse(template))


def render(template: str, values: Mapping[str, Any]) -> str:
    """A validated template filled in; an unknown placeholder reads "?"; one line."""
    parts = []
    for literal, name in _parsed(template):
        parts.append(literal)
        if name is not None:
            v = values.get(name)
            parts.append("?" if v is None or v == "" else str(v))
    return " ".join("".join(parts).split())


class _Checker:
    """Reads one ``[[rule]]`` table; every problem is a ConfigError naming file, rule and field."""

    KEYS = {"name", "kind", "enabled", "severity", "levels", "metric", "labels", "divide_by", "scale",
            "unless", "measure", "op", "threshold", "clear", "trend", "window", "limit", "limit_metric",
            "for", "key_labels", "summary", "description", "unit", "send_resolved", "nodata_after",
            "params"}

    def __init__(self, raw: Mapping[str, Any], where: str, index: int):
        self.raw, self.where = raw, where
        name = raw.get("name")
        self.rule = name if isinstance(name, str) and NAME.match(name) else f"#{index + 1}"

    def fail(self, fld: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where}: rule {self.rule}: {fld}: {problem}",
                           hint="see docs/alerts.md for the rule format; `nomade alerts rules` checks a file")

    def get(self, fld: str, kind: type, default: Any) -> Any:
        v = self.raw.get(fld, default)
        if kind is float:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise self.fail(fld, f"{_show(v)}: expected a finite number")
            return float(v)
        if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
            raise self.fail(fld, f"{_show(v)}: expected {kind.__name__}")
        return v

    def choice(self, fld: str, options: Tuple[str, ...], default: str) -> str:
        v = self.get(fld, str, default)
        if v not in options:
            shown = ", ".join(o or '""' for o in options)
            raise self.fail(fld, f"{_show(v)}: expected one of {shown}")
        return v

    def duration(self, fld: str, default: Any) -> Optional[float]:
        v = self.raw.get(fld, default)
        if v is None:
            return None
        try:
            return parse_duration(v)
        except ValueError as exc:
            raise self.fail(fld, str(exc)) from None

    def metric_name(self, fld: str, required: bool = False) -> str:
        v = self.get(fld, str, "")
        if (v or required) and not METRIC.match(v):
            raise self.fail(fld, f"{_show(v)}: expected a metric name such as disk.used_bytes")
        return v

    def template(self, fld: str, default: str) -> str:
        v = self.get(fld, str, default)
        try:
            template_fields(v)
        except ValueError as exc:
            raise self.fail(fld, str(exc)) from None
        return v


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def check_rule(raw: Any, where: str, index: int = 0) -> Optional[Rule]:
    """One ``[[rule]]`` table as a Rule (None when ``enabled = false``)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: rule #{index + 1}: expected a table ([[rule]])")
    c = _Checker(raw, where, index)
    unknown = sorted(set(map(str, raw)) - c.KEYS)
    if unknown:
        shown = unknown[0] if LABEL.match(unknown[0]) else _show(unknown[0])
        raise c.fail(shown, f"unknown field (known: {', '.join(sorted(c.KEYS))})")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise c.fail("name", f"{_show(name)}: expected letters, digits, _ . - (at most 64, a letter first)")
    if not c.get("enabled", bool, True):
        return None
    kind = c.choice("kind", KINDS, "metric")
    out: Dict[str, Any] = dict(name=name, kind=kind, source=where)
    out["severity"] = c.choice("severity", SEVERITIES, "warning")
    out["levels"] = _levels(c)
    out["metric"] = c.metric_name("metric", required=kind == "metric")
    out["labels"] = _labels(c)
    out["divide_by"], out["unless"] = c.metric_name("divide_by"), c.metric_name("unless")
    out["limit_metric"] = c.metric_name("limit_metric")
    out["scale"] = c.get("scale", float, 1.0)
    out["measure"] = c.choice("measure", MEASURES, "value")
    out["op"] = c.choice("op", OPS, ">")
    out["clear"] = c.get("clear", float, 0.0) if "clear" in raw else None
    out["trend"] = c.choice("trend", ("",) + TRENDS, "")
    out["window_s"] = c.duration("window", "6h")
    out["limit"] = c.get("limit", float, 0.0) if "limit" in raw else None
    out["for_s"] = c.duration("for", 0)
    out["nodata_after_s"] = c.duration("nodata_after", None)
    keys = c.get("key_labels", list, [])
    if not all(isinstance(k, str) and LABEL.match(k) for k in keys):
        raise c.fail("key_labels", "expected a list of label names")
    out["key_labels"] = tuple(keys)
    out["summary"] = c.template("summary", "{rule}: {value_words}")
    out["description"] = c.template("description", "")
    out["unit"] = c.choice("unit", UNITS, "")
    out["send_resolved"] = c.get("send_resolved", bool, True)
    params = c.get("params", dict, {})
    bad = [k for k, v in params.items() if not LABEL.match(str(k)) or isinstance(v, bool)
           or not isinstance(v, (int, float)) or not math.isfinite(v)]
    if bad:
        raise c.fail("params", f"{_show(bad[0])}: expected name = finite number")
    out["params"] = tuple(sorted((k, float(v)) for k, v in params.items()))
    if kind == "metric" and "levels" not in raw and "threshold" not in raw:
        raise c.fail("threshold", "required (or levels)")
    _check_measure(c, raw, out)
    return Rule(**out)


def _levels(c: _Checker) -> Tuple[Tuple[str, float], ...]:
    raw = c.raw
    if "levels" in raw and "threshold" in raw:
        raise c.fail("levels", "give either threshold (with severity) or levels, not both")
    if "levels" not in raw:
        return ((c.raw.get("severity", "warning"), c.get("threshold", float, 0.0)),)
    levels = c.get("levels", dict, {})
    if not levels:
        raise c.fail("levels", "expected at least one of info, warning, critical = threshold")
    out = []
    for sev, v in levels.items():
        if sev not in SEVERITIES:
            raise c.fail("levels", f"{_show(sev)}: expected info, warning or critical")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise c.fail(f"levels.{sev}", f"{_show(v)}: expected a finite number")
        out.append((sev, float(v)))
    return tuple(sorted(out, key=lambda p: SEVERITIES.index(p[0])))


def _labels(c: _Checker) -> Tuple[Tuple[str, str], ...]:
    labels = c.get("labels", dict, {})
    out = []
    for k, v in labels.items():
        if not LABEL.match(str(k)):
            raise c.fail("labels", f"{_show(k)}: expected a label name")
        if not isinstance(v, str):
            raise c.fail(f"labels.{k}", f"{_show(v)}: expected text (\"x\", \"~regex\" or \"!x\")")
        if v.startswith("~"):
            try:
                re.compile(v[1:])
            except re.error as exc:
                raise c.fail(f"labels.{k}", f"bad regular expression: {exc}") from None
        out.append((str(k), v))
    return tuple(sorted(out))


def _check_measure(c: _Checker, raw: Mapping[str, Any], out: Dict[str, Any]) -> None:
    if out["measure"] == "ttl" and out["limit"] is None and not out["limit_metric"]:
        raise c.fail("limit", "measure = \"ttl\" needs limit or limit_metric")
    if out["kind"] == "metric" and out["measure"] in ("rate", "accel", "ttl") and out["window_s"] <= 0:
        raise c.fail("window", "a trend needs a window > 0")
    if out["clear"] is not None and out["op"] in ("==", "!="):
        raise c.fail("clear", "hysteresis needs an ordering op (>, >=, <, <=)")
    lo = out["levels"]
    if out["clear"] is not None and lo:
        first = lo[0][1]
        wrong = out["clear"] > first if out["op"] in (">", ">=") else out["clear"] < first
        if wrong:
            raise c.fail("clear", f"{out['clear']:g} is on the firing side of {first:g}")


def rules_from_doc(doc: Mapping[str, Any], where: str, off: Optional[List[str]] = None) -> List[Rule]:
    """The rules of a parsed TOML document: ``[[rule]]`` tables, nothing else at the top. The
    names of rules with ``enabled = false`` are appended to ``off``."""
    extra = sorted(set(doc) - {"rule"})
    if extra:
        raise ConfigError(f"{where}: unknown top-level key {_show(extra[0])} (expected [[rule]] tables)")
    tables = doc.get("rule", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{where}: rule: expected [[rule]] tables")
    rules: List[Rule] = []
    seen = set()
    for i, raw in enumerate(tables):
        rule = check_rule(raw, where, i)
        name = raw.get("name") if isinstance(raw, Mapping) else None
        if name in seen:
            raise ConfigError(f"{where}: rule {name}: name: defined twice in this file")
        seen.add(name)
        if rule is not None:
            rules.append(rule)
        elif off is not None:
            off.append(name)
    return rules


def load_file(path: Path, off: Optional[List[str]] = None) -> List[Rule]:
    from ..config import read_toml
    return rules_from_doc(read_toml(path), str(path), off)


@dataclass
class RuleSet:
    rules: List[Rule] = field(default_factory=list)
    disabled: List[str] = field(default_factory=list)      # default rules switched off


def load_rules(cfg: Any) -> RuleSet:
    """The effective rules: defaults less ``alerts.disabled_rules``, then each rule file's."""
    from .defaults import default_rules
    disabled = list(cfg.get("alerts.disabled_rules"))
    by_name: Dict[str, Rule] = {}
    for r in default_rules(cfg):
        if r.name not in disabled:
            by_name[r.name] = r
    for path in cfg.get("alerts.rule_files"):
        off: List[str] = []
        for r in load_file(Path(path), off):
            by_name[r.name] = r
        for name in off:
            if by_name.pop(name, None) is not None:
                disabled.append(name)
    return RuleSet(list(by_name.values()), disabled)
