"""Recommendations that hold up: matched comparisons of a practice (scratch instead of NFS,
using the cores asked for) and per-user scores of how well requests
match use, with their trend.

A matched comparison pairs every job WITHOUT the practice (a user's, or everyone's) with its most
similar job WITH it (cosine similarity of the z-scored behaviour features that do not define the
practice, the project's blocked k-NN search, a pair kept only when the similarity is >= the
threshold; matching with replacement). The claim is the difference of success rates over the
pairs, with a 95 % interval (``stats.paired_difference``); below ``min_pairs`` pairs nothing is claimed.

Memory and time headroom are NOT compared this way: a job that ran out of memory or time used
all of it, so "jobs that used less than their limit succeeded more often" is true by
construction. They are the per-user scores' memory and time-limit dimensions instead."""

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from .. import states
from ..scoring.neighbours import search, unit_rows
from .network import Scaled
from .stats import PairedDifference, paired_difference
from .vectors import NAMES, BehaviourSet

MAX_QUERIES = 20000     # site-wide comparisons use a seeded sample of this many jobs without


@dataclass(frozen=True)
class Practice:
    key: str
    advice: str                       # "... instead of ..." phrase for the message
    uses: Sequence[str]               # features that define it (left out of the matching)
    has: Callable[[BehaviourSet], np.ndarray]   # 1 with, 0 without, -1 unknown


def _col(b: BehaviourSet, name: str) -> np.ndarray:
    return b.X[:, b.names.index(name)]


def _split(cond_with: np.ndarray, known: np.ndarray) -> np.ndarray:
    return np.where(known, cond_with.astype(np.int8), -1).astype(np.int8)


def _scratch(b: BehaviourSet) -> np.ndarray:
    s = _col(b, "nfs_share")
    return _split(s < 0.5, np.isfinite(s))


def _cores_used(b: BehaviourSet) -> np.ndarray:
    e = _col(b, "cpu_eff")
    return _split(e >= 0.5, np.isfinite(e))


PRACTICES = (
    Practice("local_scratch", "wrote mostly to local scratch instead of NFS",
             ("nfs_write", "local_write", "tmpfs_write", "nfs_share"), _scratch),
    Practice("cores_used", "kept at least half of their cores busy", ("cpu_eff",), _cores_used),
)


@dataclass
class Comparison:
    practice: str
    advice: str
    result: PairedDifference
    enough: bool

    def as_dict(self) -> Dict[str, object]:
        r = self.result
        return {"practice": self.practice, "advice": self.advice, "pairs": r.pairs,
                "success_with": _round(r.rate_with), "success_without": _round(r.rate_without),
                "difference": _round(r.difference), "ci": [_round(r.ci_low), _round(r.ci_high)],
                "enough": self.enough}

    def sentence(self) -> str:
        r = self.result
        return (f"jobs like yours that {self.advice} succeeded {100 * r.difference:+.0f} points "
                f"more often ({100 * r.rate_with:.0f} % vs {100 * r.rate_without:.0f} %, "
                f"95 % interval {100 * r.ci_low:+.0f} to {100 * r.ci_high:+.0f}; {r.pairs} matched pairs)")


def _round(v: float) -> Optional[float]:
    return None if v != v else round(float(v), 4)


def matched_comparison(b: BehaviourSet, practice: Practice, rows: Optional[np.ndarray] = None, *,
                       threshold: float = 0.7, min_pairs: int = 20, seed: int = 0) -> Comparison:
    """The practice's matched comparison for the jobs ``rows`` (None: everyone's) without it."""
    has = practice.has(b)
    lab = b.y >= 0
    bank = np.nonzero((has == 1) & lab)[0]
    query = np.nonzero((has == 0) & lab)[0]
    if rows is not None:
        query = np.intersect1d(query, rows)
    if query.size > MAX_QUERIES:
        query = np.sort(np.random.default_rng(seed).choice(query, MAX_QUERIES, replace=False))
    cols = [j for j, n in enumerate(b.names) if n not in practice.uses]
    none = Comparison(practice.key, practice.advice, paired_difference(np.zeros(0), np.zeros(0)), False)
    if bank.size == 0 or query.size == 0:
        return none
    sc = Scaled.of(b.X[:, cols])
    U = unit_rows(sc.Z)
    idx, valid = search(U[query], U[bank], 1)
    sims = np.einsum("ij,ij->i", U[query], U[bank[idx[:, 0]]])
    ok = valid[:, 0] & (sims >= threshold)
    if not ok.any():
        return none
    matched = bank[idx[ok, 0]]
    res = paired_difference(b.y[matched] == 0, b.y[query[ok]] == 0, matched_ids=matched)
    return Comparison(practice.key, practice.advice, res, res.pairs >= min_pairs)


def comparisons(b: BehaviourSet, rows: Optional[np.ndarray] = None, *, threshold: float = 0.7,
                min_pairs: int = 20, seed: int = 0) -> List[Comparison]:
    return [matched_comparison(b, p, rows, threshold=threshold, min_pairs=min_pairs, seed=seed)
            for p in PRACTICES]


# ---------------------------------------------------------------- per-user dimension scores

DIMENSIONS = ("cpu", "memory", "time_limit", "io", "gpu")


def dimension_values(b: BehaviourSet) -> Dict[str, np.ndarray]:
    """Per job and dimension, how well the request matched use (0..1, NaN unknown): CPU and
    memory efficiency capped at 1 (an OOM job scores 0 for memory), the share of the time limit
    used (a timeout scores 0), the share of bytes written NOT to NFS, GPU utilisation of jobs
    that asked for GPUs."""
    cls = b.outcome
    mem = np.clip(_col(b, "mem_eff"), 0, 1)
    mem = np.where(cls == states.OOM, 0.0, mem)
    tl = np.clip(b.extra.get("runtime_frac", np.full(len(b), np.nan)), 0, 1)
    tl = np.where(cls == states.TIMEOUT, 0.0, tl)
    gpus = b.extra.get("req_gpus", np.full(len(b), np.nan))
    gpu = np.where(gpus > 0, np.clip(_col(b, "gpu_util"), 0, 1), np.nan)
    return {"cpu": np.clip(_col(b, "cpu_eff"), 0, 1), "memory": mem, "time_limit": tl,
            "io": 1.0 - _col(b, "nfs_share"), "gpu": gpu}


@dataclass
class UserScores:
    user: str
    jobs: int
    scores: Dict[str, Optional[float]]     # mean over the recent jobs that have the dimension
    trend: Dict[str, Optional[float]]      # mean of the newer half - mean of the older half
    overall: Optional[float]

    def as_dict(self) -> Dict[str, object]:
        return dict(self.__dict__)


def user_scores(b: BehaviourSet, rows: np.ndarray, user: str, recent: int = 50) -> UserScores:
    """Scores of one user's ``recent`` newest ended jobs (``rows``: that user's rows)."""
    order = rows[np.argsort(np.nan_to_num(b.end_time[rows], nan=-np.inf), kind="stable")][-recent:]
    vals = dimension_values(b)
    scores: Dict[str, Optional[float]] = {}
    trend: Dict[str, Optional[float]] = {}
    for dim in DIMENSIONS:
        v = vals[dim][order]
        v = v[np.isfinite(v)]
        scores[dim] = round(float(v.mean()), 4) if v.size else None
        h = v.size // 2
        trend[dim] = round(float(v[h:].mean() - v[:h].mean()), 4) if v.size >= 4 else None
    known = [s for s in scores.values() if s is not None]
    return UserScores(user, int(order.size), scores, trend,
                      round(sum(known) / len(known), 4) if known else None)


def all_user_scores(b: BehaviourSet, recent: int = 50) -> List[UserScores]:
    """Every user's scores, lowest overall first (who to help first)."""
    users = np.array([u if u is not None else "" for u in b.user], dtype=object)
    out = []
    for u in sorted(set(users.tolist()) - {""}):
        out.append(user_scores(b, np.nonzero(users == u)[0], u, recent))
    out.sort(key=lambda s: (s.overall if s.overall is not None else 2.0, s.user))
    return out


def feature_index(name: str) -> int:
    return NAMES.index(name)


# ---------------------------------------------------------------- reports (CLI, dashboard)

def user_report(b: BehaviourSet, rows: np.ndarray, user: str, *, threshold: float = 0.7,
                min_pairs: int = 20, recent: int = 50, seed: int = 0) -> Dict[str, object]:
    """One user's recommendations (matched comparisons of their jobs that do not follow a
    practice, shown only with >= min_pairs pairs and a positive difference) and scores."""
    comps = comparisons(b, rows, threshold=threshold, min_pairs=min_pairs, seed=seed)
    shown = [c for c in comps if c.enough and c.result.difference > 0]
    return {"user": user, "jobs": int(rows.size),
            "recommendations": [dict(c.as_dict(), sentence=c.sentence()) for c in shown],
            "not_enough_evidence": [c.practice for c in comps if not c.enough],
            "scores": user_scores(b, rows, user, recent).as_dict() if rows.size else None}


def site_report(b: BehaviourSet, *, threshold: float = 0.7, min_pairs: int = 20, recent: int = 50,
                seed: int = 0, users: int = 50) -> Dict[str, object]:
    """For admins: the site-wide matched comparisons, data-driven defaults per partition and
    every user's scores, lowest first."""
    comps = comparisons(b, None, threshold=threshold, min_pairs=min_pairs, seed=seed)
    return {"site": [dict(c.as_dict(), sentence=c.sentence() if c.enough else None) for c in comps],
            "defaults": site_defaults(b, min_pairs),
            "users": [s.as_dict() for s in all_user_scores(b, recent)[:users]]}


DEFAULT_QUANTILE = 95.0
DEFAULT_MARGIN = 1.2


def site_defaults(b: BehaviourSet, min_count: int = 20) -> List[Dict[str, object]]:
    """Per partition with >= min_count successful jobs: what its successful jobs used (median and
    95th percentile of runtime and of peak memory per core) and a data-driven default request =
    the 95th percentile x 1.2 (time limit in minutes, memory per core in MiB), next to what they
    requested (median). A default is left out where fewer than min_count jobs have the number.
    Jobs without a partition (SWF traces, ...) form the partition ""."""
    raw = b.extra.get("partition", np.full(len(b), None, dtype=object))
    part = np.array(["" if x is None else str(x) for x in raw], dtype=object)   # "" = no partition
    ok = b.outcome == states.SUCCESS
    out = []
    for p in sorted(set(part[ok].tolist())):
        rows = ok & (part == p)
        if rows.sum() < min_count:
            continue
        d: Dict[str, object] = {"partition": p, "successful_jobs": int(rows.sum())}
        run = b.extra["elapsed_s"][rows]
        tl = b.extra["timelimit_s"][rows]
        cores = np.where(b.extra["cpus"][rows] > 0, b.extra["cpus"][rows], np.nan)
        mem = b.extra["mem_peak_mb"][rows] / cores
        req = b.extra["mem_req_mb"][rows] / cores
        for key, v, unit in (("runtime_min", run / 60.0, "time_limit_min"), ("mem_per_core_mb", mem, "mem_per_core_mb")):
            v = v[np.isfinite(v)]
            if v.size >= min_count:
                d[key] = {"median": round(float(np.median(v)), 1),
                          "p95": round(float(np.percentile(v, DEFAULT_QUANTILE)), 1)}
                d["default_" + unit] = round(float(np.percentile(v, DEFAULT_QUANTILE)) * DEFAULT_MARGIN, 1)
        for key, v in (("requested_time_limit_min", tl / 60.0), ("requested_mem_per_core_mb", req)):
            v = v[np.isfinite(v)]
            if v.size >= min_count:
                d[key] = round(float(np.median(v)), 1)
        out.append(d)
    return out


def recommendations_for(store, caller, cfg=None, cluster: Optional[str] = None) -> Dict[str, object]:
    """``user_report`` of ``caller``'s own jobs in ``store`` (the dashboard's "my page")."""
    from .analysis import Options, is_own
    from .vectors import load
    opts = Options.from_config(cfg) if cfg is not None else Options()
    b = load(store, cluster)
    rows = np.nonzero(is_own(b, np.arange(len(b)), caller))[0]
    return user_report(b, rows, caller.name or f"uid {caller.uid}", threshold=opts.threshold,
                       min_pairs=opts.min_count, recent=opts.recent_jobs, seed=opts.seed)
