"""Numbers in words for terminal output: bytes (decimal units, as df -H and vendors count),
durations ("about 3 days"), a fill bar, and a filesystem's trend as one sentence."""

import re
from typing import Optional

from .trend import ACCELERATING, DECELERATING, GROWING, SHRINKING, STABLE, Trend

DAY = 86400.0
_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """Text from the cluster (a drain reason, a mount, a message) with control characters
    escaped (\\x0a), so a newline or a terminal escape in it cannot redraw the screen."""
    return _CONTROL.sub(lambda m: "\\x%02x" % ord(m.group()), str(text))


def human_bytes(n: float) -> str:
    n, i = float(n), 0
    while abs(n) >= 999.5 and i < len(_UNITS) - 1:      # 999.7 GB reads "1.0 TB", not "1000 GB"
        n, i = n / 1000.0, i + 1
    return f"{n:.0f} {_UNITS[i]}" if abs(n) >= 9.95 or i == 0 else f"{n:.1f} {_UNITS[i]}"


def human_duration(s: Optional[float]) -> str:
    """"about 3 days"; "now" for 0; "never" for None."""
    if s is None:
        return "never"
    if s <= 0:
        return "now"
    for size, name in ((365 * DAY, "year"), (60 * DAY, "month"), (2 * DAY, "day"), (3600, "hour"),
                       (60, "minute")):
        if s >= size:
            unit = 30 * DAY if name == "month" else (DAY if name == "day" else size)
            k = round(s / unit)
            return f"{k} {name}{'s' if k != 1 else ''}"
    return "less than a minute"


def bar(fraction: float, width: int = 20) -> str:
    fraction = min(max(fraction, 0.0), 1.0)
    full = int(round(fraction * width))
    return "[" + "#" * full + "." * (width - full) + "]"


def disk_sentence(mount: str, used_percent: float, tr: Optional[Trend]) -> str:
    """"/scratch: 71 % used, filling at 15 GB/day and accelerating: full in about 3 days
    (linear: 10 days)"."""
    head = f"{mount}: {used_percent:.0f} % used"
    if tr is None or tr.trend not in (STABLE, GROWING, ACCELERATING, DECELERATING, SHRINKING):
        n = 0 if tr is None else tr.n
        return f"{head} (too few samples for a trend: {n})"
    per_day = human_bytes(abs(tr.rate_per(DAY))) + "/day"
    if tr.trend == STABLE:
        return f"{head}, stable"
    if tr.trend == SHRINKING:
        return f"{head}, shrinking by {per_day}"
    linear = human_duration(tr.ttl_linear_s)
    if tr.trend == GROWING:
        return f"{head}, filling at {per_day}: full in about {linear}"
    if tr.trend == ACCELERATING:
        return (f"{head}, filling at {per_day} and accelerating: full in about "
                f"{human_duration(tr.ttl_s)} (linear: {linear})")
    if tr.ttl_s is None:
        return f"{head}, filling at {per_day} but slowing down: levelling off below full (linear: {linear})"
    return (f"{head}, filling at {per_day} but slowing down: full in about "
            f"{human_duration(tr.ttl_s)} (linear: {linear})")
