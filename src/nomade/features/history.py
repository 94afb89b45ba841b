"""Incremental history of ended jobs and submissions, per user and per (user, job name).

``HistoryState`` consumes an event stream in time order: ``add_end`` (a job ended at t) and
``add_submit`` (a job was submitted at t). ``features_for(request, at_time)`` gives the feature
vector of one job scored at ``at_time`` from what the state has seen so far; the batch builder
(nomade.features.build) feeds end events strictly before the scoring moment first, the runtime
scorer loads the state the bundle ships (``to_json``/``from_json``) and calls the same method.
Runtime-safe: stdlib + numpy only.
"""

import json
import math
from bisect import bisect_left
from collections import deque
from typing import Dict, List, Optional

from .. import states
from .submit import NAN, Vocabulary, request_features

FORMAT = 1
SMOOTHING = 3.0        # pseudo-count of the prior (global rate) in smoothed rates
EWMA = 0.3             # weight of the newest job in per-key running averages
GLOBAL_EWMA = 0.005    # weight of the newest job in the cluster-wide recent failure rate
DAY = 86400.0

# per-key stats list layout
N_END, N_LAB, N_FAIL, C_FAILED, C_TIMEOUT, C_OOM, C_SYSTEM, C_CANCEL, LAST_Y, LAST_END, \
    RT_RATIO, MEM_RATIO, STREAK, RT_LOG = range(14)
_CLASS_SLOT = {states.FAILED: C_FAILED, states.TIMEOUT: C_TIMEOUT, states.OOM: C_OOM,
               states.SYSTEM: C_SYSTEM, states.CANCELLED_OWNER: C_CANCEL,
               states.CANCELLED_OTHER: C_CANCEL}


def _new_stats() -> List[float]:
    return [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, NAN, NAN, NAN, NAN, 0.0, NAN]


def _ewma(old: float, new: float, a: float) -> float:
    if new != new:
        return old
    return new if old != old else old + a * (new - old)


def _since_log(t: float, then: float) -> float:
    return math.log1p(max(t - then, 0.0) / 3600.0) if then == then else NAN


class HistoryState:
    """What is known about past jobs at a moment: see the module doc."""

    def __init__(self, k: int = 16):
        self.k = k
        self.vocab = Vocabulary()
        self.glob = _new_stats()
        self.g_recent = NAN
        self.users: Dict[str, List[float]] = {}
        self.names: Dict[str, Dict[str, List[float]]] = {}
        self.subs: Dict[str, List[float]] = {}       # user -> submit times (last day kept)
        self.n_sub: Dict[str, int] = {}
        self.recent_rows: Dict[str, deque] = {}     # user -> row indices of last K ended jobs

    # ------------------------------------------------------------------ events
    def add_submit(self, req: Dict[str, object], t: float) -> None:
        u = req.get("user") or ""
        self.vocab.register(req)
        lst = self.subs.get(u)
        if lst is None:
            lst = self.subs[u] = []
        lst.append(t)
        if len(lst) > 512 and lst[0] < t - DAY:
            del lst[:bisect_left(lst, t - DAY)]
        self.n_sub[u] = self.n_sub.get(u, 0) + 1

    def add_end(self, user: str, name: Optional[str], y: int, cls: Optional[str], end_t: float,
                runtime_s: float = NAN, rt_ratio: float = NAN, mem_ratio: float = NAN,
                row: int = -1) -> None:
        user = user or ""
        st = self.users.get(user)
        if st is None:
            st = self.users[user] = _new_stats()
        by_name = self.names.get(user)
        if by_name is None:
            by_name = self.names[user] = {}
        nk = name or ""
        nst = by_name.get(nk)
        if nst is None:
            nst = by_name[nk] = _new_stats()
        rt_log = math.log1p(runtime_s) if runtime_s == runtime_s and runtime_s >= 0 else NAN
        for s in (st, nst, self.glob):
            s[N_END] += 1
            slot = _CLASS_SLOT.get(cls)
            if slot is not None:
                s[slot] += 1
            if y >= 0:
                s[N_LAB] += 1
                s[N_FAIL] += y
                s[LAST_Y] = float(y)
                s[STREAK] = s[STREAK] + 1 if y == 1 else 0.0
            s[LAST_END] = end_t
            s[RT_RATIO] = _ewma(s[RT_RATIO], rt_ratio, EWMA)
            s[MEM_RATIO] = _ewma(s[MEM_RATIO], mem_ratio, EWMA)
            s[RT_LOG] = _ewma(s[RT_LOG], rt_log, EWMA)
        if y >= 0:
            self.g_recent = _ewma(self.g_recent, float(y), GLOBAL_EWMA)
        if row >= 0:
            dq = self.recent_rows.get(user)
            if dq is None:
                dq = self.recent_rows[user] = deque(maxlen=self.k)
            dq.append(row)

    # ------------------------------------------------------------------ features
    def prior(self) -> float:
        g = self.glob
        return (g[N_FAIL] + 1.0) / (g[N_LAB] + 2.0)

    def _class_prior(self, slot: int) -> float:
        g = self.glob
        return (g[slot] + 0.5) / (g[N_END] + 1.0)

    def _rate(self, s: List[float], slot: int, denom: int, prior: float) -> float:
        return (s[slot] + SMOOTHING * prior) / (s[denom] + SMOOTHING)

    def submissions(self, user: str, t: float):
        """(in the last hour, in the last day, time of the last) submissions strictly before t
        or at t but already fed."""
        lst = self.subs.get(user)
        if not lst:
            return 0.0, 0.0, NAN
        n = len(lst)
        return (float(n - bisect_left(lst, t - 3600.0)), float(n - bisect_left(lst, t - DAY)),
                lst[-1])

    def features_for(self, request: Dict[str, object], at_time: float) -> List[float]:
        """Request + history features (schema.REQUEST_NAMES + HISTORY_NAMES order) of one job
        scored at ``at_time``. A ``recent_submits`` key in the request (counted by
        job_submit.lua) overrides the state's count of the last hour's submissions."""
        t = float(at_time)
        user = request.get("user") or ""
        name = request.get("name") or ""
        prior = self.prior()
        us = self.users.get(user) or _new_stats()
        ns = (self.names.get(user) or {}).get(name) or _new_stats()
        s1h, s1d, last_sub = self.submissions(user, t)
        if request.get("recent_submits") is not None:
            s1h = float(request["recent_submits"])
        tl = request.get("timelimit_s")
        tl_log = math.log1p(float(tl)) if tl is not None and tl == tl and float(tl) >= 0 else NAN
        u_fail = self._rate(us, N_FAIL, N_LAB, prior)
        feats = request_features(request, self.vocab)
        feats.extend([
            math.log1p(us[N_END]), u_fail,
            self._rate(us, C_FAILED, N_END, self._class_prior(C_FAILED)),
            self._rate(us, C_TIMEOUT, N_END, self._class_prior(C_TIMEOUT)),
            self._rate(us, C_OOM, N_END, self._class_prior(C_OOM)),
            self._rate(us, C_SYSTEM, N_END, self._class_prior(C_SYSTEM)),
            self._rate(us, C_CANCEL, N_END, self._class_prior(C_CANCEL)),
            us[LAST_Y], us[STREAK], _since_log(t, us[LAST_END]),
            us[RT_RATIO], us[MEM_RATIO], us[RT_LOG], tl_log - us[RT_LOG],
            float(max(self.n_sub.get(user, 0) - int(us[N_END]), 0)), s1h, s1d,
            _since_log(t, last_sub),
            math.log1p(ns[N_END]), self._rate(ns, N_FAIL, N_LAB, u_fail), ns[LAST_Y], ns[STREAK],
            ns[RT_RATIO], ns[RT_LOG], tl_log - ns[RT_LOG], _since_log(t, ns[LAST_END]),
            self.g_recent if self.g_recent == self.g_recent else prior,
        ])
        return feats

    def last_ended_rows(self, user: str) -> List[int]:
        """Row indices of the user's last K ended jobs, most recent first."""
        dq = self.recent_rows.get(user or "")
        return list(reversed(dq)) if dq else []

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> str:
        def clean(s):
            return [None if v != v else v for v in s]
        return json.dumps({
            "format": FORMAT, "k": self.k, "vocab": self.vocab.tables,
            "global": clean(self.glob), "g_recent": None if self.g_recent != self.g_recent else self.g_recent,
            "users": {u: clean(s) for u, s in self.users.items()},
            "names": {u: {n: clean(s) for n, s in d.items()} for u, d in self.names.items()},
            "subs": self.subs, "n_sub": self.n_sub,
        }, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> "HistoryState":
        from ..errors import ModelError
        d = json.loads(text)
        if d.get("format") != FORMAT:
            raise ModelError(f"history tables have format {d.get('format')!r}, this nomade reads {FORMAT}",
                             hint="retrain the model with this nomade version (`nomade train`)")

        def unclean(s):
            return [NAN if v is None else float(v) for v in s]
        st = cls(k=int(d["k"]))
        st.vocab = Vocabulary(d["vocab"])
        st.glob = unclean(d["global"])
        st.g_recent = NAN if d["g_recent"] is None else float(d["g_recent"])
        st.users = {u: unclean(s) for u, s in d["users"].items()}
        st.names = {u: {n: unclean(s) for n, s in m.items()} for u, m in d["names"].items()}
        st.subs = {u: [float(x) for x in v] for u, v in d["subs"].items()}
        st.n_sub = {u: int(v) for u, v in d["n_sub"].items()}
        return st
