"""Build the FeatureMatrix of a JobTable for one stage: every row's features are computed by
``HistoryState.features_for`` from events strictly before the row's scoring moment (its submit
time, or its start time for the start stage). Runtime-safe."""

import math
from typing import Optional, Tuple

import numpy as np

from .history import HistoryState
from .jobtable import JobTable
from .labels import make_labels
from .matrix import FeatureMatrix
from .schema import CATEGORICAL, feature_names, schema_hash
from .start import start_features
from ..efficiency import requested_mem
from .submit import request_from_table

DEFAULT_K = 16
# Traces without wait times (SWF wait = -1: LLNL Atlas/Thunder) have no start/end time, only a
# runtime. Their outcome is taken as known at submit + runtime + ASSUMED_WAIT_S (docs/features.md).
ASSUMED_WAIT_S = 86400.0


def outcome_times(jt: JobTable, assumed_wait_s: float = ASSUMED_WAIT_S) -> np.ndarray:
    """When each job's outcome became known: its end time, else (no start recorded) submit +
    runtime + ``assumed_wait_s``; NaN for jobs with neither."""
    est = jt["submit_time"] + jt["elapsed_s"] + assumed_wait_s
    return np.where(np.isnan(jt["end_time"]), est, jt["end_time"])


def _cfg_value(cfg, name: str, default):
    """A value from a Config (settings name) or a plain dict; ``default`` when absent."""
    if cfg is None:
        return default
    if isinstance(cfg, dict):
        return cfg.get(name, default)
    try:
        return cfg.get(name)
    except KeyError:
        return default


def assumed_wait_s(cfg) -> float:
    """Setting model.assumed_wait_s (a plain dict may give "assumed_wait_s"): when a job without
    a recorded end (SWF traces without waits) counts as known, after submit + runtime."""
    value = _cfg_value(cfg, "model.assumed_wait_s", None)
    if value is None:
        value = _cfg_value(cfg, "assumed_wait_s", ASSUMED_WAIT_S)
    return float(value)


def _owner_cancel(cfg) -> bool:
    return bool(_cfg_value(cfg, "model.owner_cancel_is_failure", False))


def end_event_inputs(jt: JobTable):
    """Per job: runtime (s), runtime / time limit, peak memory / requested memory per node."""
    runtime = jt["end_time"] - jt["start_time"]
    runtime = np.where(np.isnan(runtime), jt["elapsed_s"], runtime)
    tl = jt["timelimit_s"]
    with np.errstate(invalid="ignore", divide="ignore"):
        rt_ratio = np.where(tl > 0, runtime / tl, np.nan)
    mem_ratio = np.full(len(jt), np.nan)
    rss = jt["max_rss_mb"]     # the whole job's peak (store.job_queries.jobs_for_training)
    c = jt.cols
    for i in np.flatnonzero(~np.isnan(rss)):
        req, _src = requested_mem({k: _opt(c[k][i]) for k in _REQ_MEM_COLUMNS})
        if req is not None and req > 0:
            mem_ratio[i] = rss[i] / req
    return runtime, rt_ratio, mem_ratio


# what nomade.efficiency.requested_mem reads of a JobTable row (no TRES text there: ReqMem by form)
_REQ_MEM_COLUMNS = ("req_mem_mb", "req_mem_per_cpu", "req_cpus", "req_nodes", "alloc_cpus")


def _opt(v: float):
    return None if v != v else (int(v) if float(v).is_integer() else float(v))


def _moments(jt: JobTable, stage: str) -> np.ndarray:
    if stage == "submit":
        return jt["submit_time"].copy()
    return np.where(np.isnan(jt["start_time"]), jt["submit_time"], jt["start_time"])


def build_matrix(jt: JobTable, stage: str = "submit", cfg=None, k: int = DEFAULT_K,
                 until: Optional[float] = None) -> FeatureMatrix:
    """Features, labels and history indices for every job of ``jt`` (see module doc).
    ``meta['history']`` holds the HistoryState after every event up to ``until`` (default: all),
    ready to ship in a bundle."""
    names = feature_names(stage)
    y, cls = make_labels(jt, _owner_cancel(cfg))
    wait = assumed_wait_s(cfg)
    X, hidx, state = _stream(jt, stage, y, cls, k, len(names), until, wait)
    fm_meta_wait = wait
    if stage == "start":  # jobs that never started are not scored at start
        y = np.where(np.isnan(jt["start_time"]), -1, y).astype(np.int8)
    if stage == "start":
        X[:, -4:] = start_features(jt, cls)
    fm = FeatureMatrix(
        X=X, names=names, categorical=[c for c in CATEGORICAL if c in names], stage=stage,
        cluster=jt["cluster"], job_id=jt["job_id"], user=jt["user"],
        submit_time=jt["submit_time"], start_time=jt["start_time"], end_time=jt["end_time"],
        y=y, cls=cls, history_idx=hidx, schema_hash=schema_hash(names),
    )
    fm.meta["history"] = state
    fm.meta["assumed_wait_s"] = fm_meta_wait
    fm.meta["outcome_time"] = outcome_times(jt, fm_meta_wait)
    return fm


def _stream(jt: JobTable, stage: str, y: np.ndarray, cls: np.ndarray, k: int, d: int,
            until: Optional[float], assumed_wait_s: float) -> Tuple[np.ndarray, np.ndarray, HistoryState]:
    n = len(jt)
    X = np.full((n, d), np.nan, dtype=np.float32)
    hidx = np.full((n, k), -1, dtype=np.int32)
    state = HistoryState(k=k)
    moments = _moments(jt, stage)
    order = np.argsort(moments, kind="stable")
    end_t = outcome_times(jt, assumed_wait_s)
    ended = np.flatnonzero(~np.isnan(end_t) & np.array([c is not None for c in cls], dtype=bool))
    ends = ended[np.argsort(end_t[ended], kind="stable")]
    runtime, rt_ratio, mem_ratio = end_event_inputs(jt)
    users, jnames, sub = jt["user"], jt["name"], jt["submit_time"]
    reqs = [request_from_table(jt, i) for i in range(n)]
    ep, sp, ne = 0, 0, len(ends)
    hist_cols = d - (4 if stage == "start" else 0)

    def apply_end(j):
        state.add_end(users[j], jnames[j], int(y[j]), cls[j], float(end_t[j]), float(runtime[j]),
                      float(rt_ratio[j]), float(mem_ratio[j]), int(j))

    for i in order:
        t = float(moments[i])
        while ep < ne and end_t[ends[ep]] < t:
            apply_end(ends[ep])
            ep += 1
        if stage == "start":
            while sp < n and sub[sp] <= t:
                state.add_submit(reqs[sp], float(sub[sp]))
                sp += 1
        X[i, :hist_cols] = state.features_for(reqs[i], t)
        rows = state.last_ended_rows(users[i])
        if rows:
            hidx[i, :len(rows)] = rows
        if stage == "submit":
            state.add_submit(reqs[i], t)
    # bring the state up to date (or up to ``until``) for shipping
    limit = math.inf if until is None else until
    while ep < ne and end_t[ends[ep]] < limit:
        apply_end(ends[ep])
        ep += 1
    while stage == "start" and sp < n and sub[sp] < limit:
        state.add_submit(reqs[sp], float(sub[sp]))
        sp += 1
    return X, hidx, state
