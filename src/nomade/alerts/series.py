"""What the rules read of the metrics, kept between passes (``SeriesCache``): the newest sample
of every series and the trend windows of the series trend rules select.

``load`` reads every series' newest sample from the store (``store.alerts.latest_samples``);
``update`` takes a collection cycle's metrics as ``nomade collect`` just wrote them, so the pass
right after a cycle reads no sample back from the store; a series the cache does not know (a new
mount, a node that joined) makes the next pass load again, and so does age (``max_age_s``: other
writers, pruning). ``windows`` keeps each window's points and reads only the samples newer than
the ones it holds.
"""

import json
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ..store import alerts as store_alerts
from ..store.metrics import labels_text

Point = Tuple[float, float]
MAX_LABEL_TEXTS = 200_000


class SeriesCache:
    def __init__(self, store: Any, max_age_s: float = 300.0):
        self.store = store
        self.max_age_s = max_age_s
        self.rows: List[Dict[str, Any]] = []
        self.by_metric: Dict[str, List[Dict[str, Any]]] = {}
        self.by_key: Dict[Tuple[str, str, str, str], Dict[str, Any]] = {}
        self.newest: Dict[Tuple[str, str, str], float] = {}
        self.loaded_at: Optional[float] = None
        self.stale = True
        self._decoded: Dict[str, Dict[str, str]] = {}
        self._texts: Dict[Tuple[Tuple[str, str], ...], str] = {}
        self._points: Dict[int, List[Point]] = {}
        self._covers: Dict[int, float] = {}           # the cached window holds every sample since

    # ------------------------------------------------------------------ newest samples
    def ensure(self, now: float) -> None:
        if self.stale or self.loaded_at is None or now - self.loaded_at > self.max_age_s:
            self.load(now)

    def load(self, now: float) -> None:
        if len(self._decoded) > MAX_LABEL_TEXTS:
            self._decoded.clear()
        self.rows = store_alerts.latest_samples(self.store, decode=self._decode)
        self.by_metric, self.by_key, self.newest = {}, {}, {}
        for r in self.rows:
            self.by_metric.setdefault(r["metric"], []).append(r)
            self.by_key[(r["cluster"], r["metric"], r["host"], r["key"])] = r
            self._saw(r["cluster"], r["source"], r["host"], r["ts"])
        self.loaded_at, self.stale = now, False

    def update(self, cluster: str, source: str, metrics: Iterable[Any], ts: float) -> None:
        """Take one collector cycle's metrics (``collectors.base.Metric``) as written at ``ts``."""
        if self.stale:
            return
        for m in metrics:
            text = self._texts.get(m.labels)
            if text is None:
                if len(self._texts) > MAX_LABEL_TEXTS:
                    self._texts.clear()
                text = self._texts[m.labels] = labels_text(m.labels)
            host = m.host or ""
            row = self.by_key.get((cluster, m.metric, host, text))
            if row is None or row["source"] != source:
                self.stale = True                      # a series the cache does not hold yet
                return
            t = float(m.ts if m.ts is not None else ts)
            if t >= row["ts"]:
                row["ts"], row["value"] = t, float(m.value)
            self._saw(cluster, source, host, t)

    def _saw(self, cluster: str, source: str, host: str, ts: float) -> None:
        k = (cluster, source, host)
        if ts > self.newest.get(k, float("-inf")):
            self.newest[k] = ts

    def _decode(self, text: str) -> Dict[str, str]:
        found = self._decoded.get(text)
        if found is None:
            found = self._decoded[text] = json.loads(text)
        return found

    # ------------------------------------------------------------------ trend windows
    def windows(self, wanted: Dict[int, float]) -> Dict[int, List[Point]]:
        """{series id: its points at or after the time asked}, oldest first."""
        fresh = [i for i, since in wanted.items() if self._covers.get(i, float("inf")) > since]
        fresh_set = set(fresh)
        known = [i for i in wanted if i not in fresh_set]
        if fresh:
            since = min(wanted[i] for i in fresh)
            for i, pts in store_alerts.window_points(self.store, sorted(fresh), since).items():
                self._points[i], self._covers[i] = pts, since
        if known:
            last = {i: (self._points[i][-1][0] if self._points[i] else self._covers[i]) for i in known}
            got = store_alerts.window_points(self.store, sorted(known), min(last.values()))
            for i, pts in got.items():
                self._points[i].extend(p for p in pts if p[0] > last[i])
        out = {}
        for i, since in wanted.items():
            pts = self._points.get(i, [])
            k = _first_at_or_after(pts, since)
            if k:
                del pts[:k]
                self._covers[i] = max(self._covers.get(i, since), since)
            out[i] = pts
        return out

    def forget_windows(self, keep: Sequence[int]) -> None:
        wanted = set(keep)
        for i in [i for i in self._points if i not in wanted]:
            del self._points[i]
            self._covers.pop(i, None)


def _first_at_or_after(pts: List[Point], t: float) -> int:
    lo, hi = 0, len(pts)
    while lo < hi:
        mid = (lo + hi) // 2
        if pts[mid][0] < t:
            lo = mid + 1
        else:
            hi = mid
    return lo
