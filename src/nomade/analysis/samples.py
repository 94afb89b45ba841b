"""A raw series made fit for regression: ordered, finite, one value per time, counter resets
handled, cut to the window.

A **reset** is a drop to near zero: ``v[i] < reset_fraction * v[i-1]`` with ``v[i-1] > 0``
(default fraction 0.1) - a monotone counter restarted (daemon restart, reboot, wrap), or a gauge
emptied (a scratch purge). ``resets="stitch"`` (counters): later values are offset by the value
before the drop, as if the counter had continued. ``resets="cut"`` (gauges, the default): only the
samples from the last reset on are kept - the trend before it says nothing about the one after.
``"none"``: left alone. Gaps need no filling: the regression weighs samples by their time, not
their index.
"""

import math
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple

Point = Tuple[float, float]
RESET_FRACTION = 0.1


@dataclass(frozen=True)
class Prepared:
    points: List[Point]
    resets: int               # resets seen (in the whole series given)
    max_gap_s: float          # longest interval between kept samples
    dropped: int              # non-finite or duplicate-time samples left out


def prepare(points: Iterable[Point], window_s: Optional[float] = None, resets: str = "cut",
            reset_fraction: float = RESET_FRACTION) -> Prepared:
    if resets not in ("cut", "stitch", "none"):
        raise ValueError(f"resets must be cut, stitch or none, not {resets!r}")
    raw = list(points)
    pts = _ordered_unique(raw)
    dropped = len(raw) - len(pts)
    found = reset_indexes(pts, reset_fraction)
    if resets == "stitch" and found:
        pts = _stitch(pts, found)
    elif resets == "cut" and found:
        pts = pts[found[-1]:]
    if window_s is not None and pts:
        newest = pts[-1][0]
        pts = [p for p in pts if p[0] >= newest - window_s]
    gaps = [b[0] - a[0] for a, b in zip(pts, pts[1:])]
    return Prepared(pts, len(found), max(gaps) if gaps else 0.0, dropped)


def reset_indexes(pts: List[Point], fraction: float = RESET_FRACTION) -> List[int]:
    """Indexes i where the series drops to near zero from a positive value."""
    return [i for i in range(1, len(pts))
            if pts[i - 1][1] > 0 and pts[i][1] < fraction * pts[i - 1][1]]


def _ordered_unique(raw: List[Point]) -> List[Point]:
    """Sorted by time; non-finite dropped; of several values at one time the last one given."""
    by_t = {}
    for t, v in raw:
        t, v = float(t), float(v)
        if math.isfinite(t) and math.isfinite(v):
            by_t[t] = v
    return sorted(by_t.items())


def _stitch(pts: List[Point], found: List[int]) -> List[Point]:
    out, offset, marks = [], 0.0, set(found)
    for i, (t, v) in enumerate(pts):
        if i in marks:
            offset += pts[i - 1][1]
        out.append((t, v + offset))
    return out
