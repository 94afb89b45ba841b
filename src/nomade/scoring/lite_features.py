"""Submit-time features that job_submit.lua can compute too ("lite" schema).

The Lua submit model (submit_model.lua) sees only the request job_submit.lua builds plus history
tables baked into the bundle. This module is the Python reference of exactly those features; the
Lua generator (nomade.train.lua_compile) mirrors it line by line and a parity test holds them
together. Runtime-safe: stdlib + numpy, Python 3.9.

Conventions (identical in Lua):
- calendar in UTC from epoch arithmetic: hour = floor(t/3600) % 24, weekday = (floor(t/86400)+3) % 7
  (Monday = 0);
- total memory = mem_mb * cpus when mem_per_cpu, else mem_mb * nodes (nodes default 1);
- history counts only jobs that ENDED strictly before the scoring moment and have a binary label;
- p90 runtime = the nearest-rank-below value over the last 20 successful runtimes:
  sorted(r)[int(0.9 * (len(r) - 1))].
"""

import hashlib
import math
from collections import deque
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

NAN = float("nan")
SITE_INDEPENDENT = ["req_cpus", "req_nodes", "req_gpus", "req_mem_total_mb", "timelimit_s",
                    "cpus_per_node", "mem_per_cpu_mb", "hour_utc", "weekday_utc"]
HISTORY = ["recent_submits", "user_n", "user_fail_rate", "user_last_failed", "user_fail_streak",
           "user_p90_runtime_s", "name_n", "name_fail_rate", "name_last_failed", "name_fail_streak",
           "timelimit_over_p90"]
RUNTIMES_KEPT = 20
STREAK_CAP = 10
KEY_SEP = "\x1f"


def lite_names(with_history: bool) -> List[str]:
    return SITE_INDEPENDENT + (HISTORY if with_history else [])


def schema_hash(names: List[str]) -> str:
    return hashlib.sha256(("lite:" + ",".join(names)).encode()).hexdigest()[:16]


def _num(v: Any) -> float:
    if v is None:
        return NAN
    f = float(v)
    return f


def request_features(req: Mapping[str, Any]) -> List[float]:
    """The site-independent part, from a request dict (keys of the Lua ``req`` table)."""
    cpus = _num(req.get("cpus"))
    nodes_raw = req.get("nodes")
    nodes = 1.0 if nodes_raw is None else float(nodes_raw)
    gpus = _num(req.get("gpus"))
    mem = _num(req.get("mem_mb"))
    per_cpu = bool(req.get("mem_per_cpu"))
    if mem != mem:
        mem_total = NAN
        mem_per_cpu = NAN
    elif per_cpu:
        mem_total = mem * cpus
        mem_per_cpu = mem
    else:
        mem_total = mem * nodes
        mem_per_cpu = mem_total / cpus if cpus == cpus and cpus > 0 else NAN
    tl = _num(req.get("timelimit_s"))
    cpn = cpus / nodes if cpus == cpus and nodes > 0 else NAN
    t = float(req.get("submit_time") or 0.0)
    hour = float(math.floor(t / 3600.0) % 24)
    weekday = float((math.floor(t / 86400.0) + 3) % 7)
    return [cpus, nodes, gpus, mem_total, tl, cpn, mem_per_cpu, hour, weekday]


class _Agg:
    """Outcome aggregate of one user or one (user, name)."""

    __slots__ = ("n", "fails", "last", "streak", "runtimes")

    def __init__(self) -> None:
        self.n = 0
        self.fails = 0
        self.last = -1
        self.streak = 0
        self.runtimes: deque = deque(maxlen=RUNTIMES_KEPT)

    def add(self, y: int, runtime: Optional[float]) -> None:
        self.n += 1
        self.fails += y
        self.last = y
        self.streak = min(self.streak + 1, STREAK_CAP) if y == 1 else 0
        if y == 0 and runtime is not None and runtime == runtime and runtime >= 0:
            self.runtimes.append(float(runtime))

    def p90(self) -> float:
        if not self.runtimes:
            return NAN
        r = sorted(self.runtimes)
        return r[int(0.9 * (len(r) - 1))]

    def to_list(self) -> list:
        return [self.n, self.fails, self.last, self.streak, list(self.runtimes)]

    @classmethod
    def from_list(cls, v: list) -> "_Agg":
        a = cls()
        a.n, a.fails, a.last, a.streak = int(v[0]), int(v[1]), int(v[2]), int(v[3])
        a.runtimes.extend(float(x) for x in v[4])
        return a

    def features(self) -> Tuple[float, float, float, float]:
        if self.n == 0:
            return 0.0, NAN, NAN, 0.0
        return float(self.n), self.fails / self.n, float(self.last), float(self.streak)


class LiteHistory:
    """Per-user and per-(user, name) outcome aggregates over ENDED jobs. Feed ended jobs in
    end-time order with ``add_ended``; read features with ``features``."""

    def __init__(self) -> None:
        self.users: Dict[str, _Agg] = {}
        self.names: Dict[str, _Agg] = {}
        self.last_end: float = NAN

    def add_ended(self, user: str, name: str, y: int, runtime: Optional[float], end_time: float) -> None:
        if y not in (0, 1):
            return
        self.users.setdefault(user, _Agg()).add(y, runtime)
        self.names.setdefault(user + KEY_SEP + (name or ""), _Agg()).add(y, runtime)
        if not (self.last_end >= end_time):
            self.last_end = float(end_time)

    def history_features(self, user: str, name: str, timelimit_s: float) -> List[float]:
        empty = _Agg()
        u = self.users.get(user, empty)
        k = self.names.get(user + KEY_SEP + (name or ""), empty)
        un, ur, ul, us = u.features()
        nn, nr, nl, ns = k.features()
        up90 = u.p90()
        np90 = k.p90()
        ref = np90 if np90 == np90 else up90
        ratio = timelimit_s / ref if (timelimit_s == timelimit_s and ref == ref and ref > 0) else NAN
        return [un, ur, ul, us, up90, nn, nr, nl, ns, ratio]

    def features(self, req: Mapping[str, Any], with_history: bool = True) -> List[float]:
        base = request_features(req)
        if not with_history:
            return base
        recent = _num(req.get("recent_submits"))
        return base + [recent] + self.history_features(str(req.get("user") or ""),
                                                        str(req.get("name") or ""), base[4])

    def to_json(self) -> dict:
        return {"format": 1, "last_end": None if self.last_end != self.last_end else self.last_end,
                "users": {k: v.to_list() for k, v in self.users.items()},
                "names": {k: v.to_list() for k, v in self.names.items()}}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "LiteHistory":
        h = cls()
        h.users = {k: _Agg.from_list(v) for k, v in obj.get("users", {}).items()}
        h.names = {k: _Agg.from_list(v) for k, v in obj.get("names", {}).items()}
        h.last_end = NAN if obj.get("last_end") is None else float(obj["last_end"])
        return h


def _feed(hist: LiteHistory, d: Mapping[str, Any]) -> None:
    hist.add_ended(str(d.get("user") or ""), str(d.get("name") or ""), int(d["y"]), d.get("runtime"),
                   d["end_time"])


def build_lite_rows(jobs: List[Mapping[str, Any]], with_history: bool) -> Tuple[np.ndarray, LiteHistory]:
    """Features for every job (dicts with the request keys plus ``y``, ``runtime`` and
    ``end_time`` = when the outcome became known), each computed from jobs that ended strictly before its submit time, in one
    sweep. ``jobs`` must be sorted by submit_time. Returns (X float64 (n, d), final history)."""
    hist = LiteHistory()
    ends = sorted((j["end_time"], i) for i, j in enumerate(jobs)
                  if j.get("end_time") is not None and j["end_time"] == j["end_time"] and j.get("y", -1) in (0, 1))
    e = 0
    recent: Dict[str, deque] = {}
    rows = []
    for j in jobs:
        t = float(j["submit_time"])
        while e < len(ends) and ends[e][0] < t:
            _feed(hist, jobs[ends[e][1]])
            e += 1
        if with_history:
            q = recent.setdefault(str(j.get("user") or ""), deque())
            while q and q[0] < t - 3600.0:
                q.popleft()
            req = dict(j)
            if req.get("recent_submits") is None:
                req["recent_submits"] = float(sum(1 for s in q if s < t))
            q.append(t)
            rows.append(hist.features(req, True))
        else:
            rows.append(request_features(j))
    while e < len(ends):
        _feed(hist, jobs[ends[e][1]])
        e += 1
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1), hist
