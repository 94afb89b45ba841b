"""Prometheus names for nomade's metrics (docs/metrics.md): a collector's dotted metric with its
unit as suffix (``disk.used_bytes``, ``queue.wait_p50_s``, ``node.cpu_busy_pct``) becomes a valid
name that ``promtool check metrics`` does not lint (``nomade_disk_used_bytes``,
``nomade_queue_wait_p50_seconds``, ``nomade_node_cpu_busy_ratio``), with the factor that turns
the stored value into the base unit; label names and values are made safe the same way.

Rules, in order: ``nomade_`` + the name with every character outside ``[a-zA-Z0-9_]`` as ``_``
(dots included), camelCase split, lower case, runs of ``_`` folded; a unit suffix in
``UNIT_SUFFIXES`` replaced by its base unit (``_ms`` -> ``_seconds`` x 0.001, ``_pct`` ->
``_ratio`` x 0.01); an abbreviated unit inside the name glued to the word before it; the
suffixes Prometheus reserves (``_total`` for counters, ``_count``, ``_sum``, ``_bucket`` for
histograms and summaries) and a type name (``_gauge``) left out of a gauge's name
(``disk.inodes_total`` -> ``nomade_disk_inodes``). Stdlib only.
"""

import re
import unicodedata
from typing import Dict, NamedTuple, Tuple

PREFIX = "nomade"
LABEL_VALUE_MAX = 1024

_NOT_NAME = re.compile(r"[^a-zA-Z0-9_]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

# unit suffix (last word of the name) -> (Prometheus base unit words, factor to the base unit)
UNIT_SUFFIXES: Dict[str, Tuple[str, float]] = {
    "s": ("seconds", 1.0), "sec": ("seconds", 1.0), "secs": ("seconds", 1.0),
    "ms": ("seconds", 1e-3), "us": ("seconds", 1e-6), "ns": ("seconds", 1e-9),
    "ts": ("timestamp_seconds", 1.0),
    "pct": ("ratio", 0.01), "percent": ("ratio", 0.01),
    "c": ("celsius", 1.0), "w": ("watts", 1.0),
    "bps": ("bytes_per_second", 1.0), "pps": ("pages_per_second", 1.0),
    "b": ("bytes", 1.0), "kb": ("bytes", 1024.0), "kib": ("bytes", 1024.0),
    "mb": ("bytes", 1024.0 ** 2), "mib": ("bytes", 1024.0 ** 2),
    "gb": ("bytes", 1024.0 ** 3), "gib": ("bytes", 1024.0 ** 3),
    "tb": ("bytes", 1024.0 ** 4), "tib": ("bytes", 1024.0 ** 4),
    "milliseconds": ("seconds", 1e-3), "microseconds": ("seconds", 1e-6),
    "nanoseconds": ("seconds", 1e-9), "kilobytes": ("bytes", 1e3), "megabytes": ("bytes", 1e6),
    "gigabytes": ("bytes", 1e9),
}
_ABBREVIATED = {"s", "sec", "secs", "ms", "us", "ns", "b", "bb", "kb", "kib", "mb", "mib", "gb", "gib",
                "tb", "tib", "pb", "pib", "g", "m"}
_GAUGE_RESERVED = {"total": "", "count": "", "sum": "summed", "bucket": "buckets"}
_TYPE_WORDS = {"counter", "gauge", "histogram", "summary", "untyped"}
_RESERVED_LABELS = {"le", "quantile", "cluster", "host"}   # ours, or the histograms' and summaries'

# built-in metrics whose value is cumulative (docs/monitoring.md): exposed as counters
COUNTERS = frozenset({"slurm.rpc_count", "slurm.rpc_time_s", "slurm.rpc_user_count",
                      "slurm.rpc_user_time_s"})
# built-in metrics whose generic name would read badly
EXPLICIT: Dict[str, Tuple[str, float]] = {
    "slurm.agent_count": ("nomade_slurm_agents", 1.0),
    "slurm.rpc_count": ("nomade_slurm_rpcs", 1.0),
    "slurm.rpc_user_count": ("nomade_slurm_rpcs_by_user", 1.0),
    "slurm.rpc_user_time_s": ("nomade_slurm_rpc_time_by_user_seconds", 1.0),
}


class PromName(NamedTuple):
    """A stored metric's Prometheus form: ``name`` (a counter's without its ``_total``, which
    the exposition adds), ``kind`` (gauge or counter) and ``factor`` (stored value x factor =
    the value in the base unit)."""
    name: str
    kind: str
    factor: float


def _words(text: str) -> list:
    text = _CAMEL.sub("_", _NOT_NAME.sub("_", text)).lower()
    return [w for w in text.split("_") if w]


def metric_name(metric: str) -> PromName:
    """The Prometheus name, type and unit factor of a stored metric name (any text)."""
    kind = "counter" if metric in COUNTERS else "gauge"
    if metric in EXPLICIT:
        name, factor = EXPLICIT[metric]
        return PromName(name, kind, factor)
    words = _words(metric)
    factor = 1.0
    if len(words) >= 2 and words[-2:] == ["per", "s"]:
        words[-1] = "second"
    elif words and words[-1] in UNIT_SUFFIXES:
        unit, factor = UNIT_SUFFIXES[words[-1]]
        words[-1:] = unit.split("_")
    if words and kind == "counter" and words[-1] == "total":
        words.pop()                          # a counter's suffix: the exposition adds it again
    elif words and kind == "gauge" and words[-1] in _GAUGE_RESERVED:
        words[-1] = _GAUGE_RESERVED[words[-1]]
    words = [w for w in words if w and w not in _TYPE_WORDS]
    glued: list = []
    for i, w in enumerate(words):
        if w in _ABBREVIATED and glued and i < len(words) - 1:
            glued[-1] += w                   # "rtt_ms_max" -> "rttms_max": no lone abbreviation
        else:
            glued.append(w)
    if glued and glued[0] == PREFIX:
        glued = glued[1:]
    return PromName("_".join([PREFIX] + glued), kind, factor)


def label_name(key: str) -> str:
    """A collector's label key as a Prometheus label name: ``[a-z_][a-z0-9_]*`` in snake case, not
    starting with ``__`` (reserved); ``cluster`` and ``host`` (nomade's own labels), ``le`` and
    ``quantile`` become ``exported_<key>``."""
    words = _words(str(key))
    name = "_".join(words) or "label"
    if name[0].isdigit():
        name = "label_" + name
    if name in _RESERVED_LABELS:
        name = "exported_" + name
    return name


def label_value(value: object) -> str:
    """A label value as text Prometheus accepts: valid UTF-8 (lone surrogates from undecodable
    bytes become U+FFFD), control characters other than newline and tab as ``?`` (newline, quote
    and backslash are escaped by the exposition), at most LABEL_VALUE_MAX characters."""
    text = str(value)
    if text.isascii() and text.isprintable():
        return text[:LABEL_VALUE_MAX]
    out = []
    for ch in text[:LABEL_VALUE_MAX]:
        cat = unicodedata.category(ch)
        if cat == "Cs":
            out.append("\ufffd")
        elif cat == "Cc" and ch not in "\n\t":
            out.append("?")
        else:
            out.append(ch)
    return "".join(out)


def labels(raw: Dict[str, object]) -> Dict[str, str]:
    """A series' labels with safe names and values; two keys that sanitise alike keep both
    (the second gets ``_2``, ...)."""
    out: Dict[str, str] = {}
    for key in sorted(raw, key=str):
        name = label_name(key)
        base, n = name, 1
        while name in out:
            n += 1
            name = f"{base}_{n}"
        out[name] = label_value(raw[key])
    return out
