"""Reasons in words: a model's top contributing features (full schema, the Lua model's lite schema,
and the ensemble's pseudo-features for its non-tree bases) as short phrases a user understands,
for the risk line in the job's output, nomade-why and reports. Unknown features fall back to
``name = value``. Runtime-safe: stdlib only."""

import math
from typing import Any, Callable, Dict, Optional


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")  # lite: Monday = 0


def _pct(v: float) -> str:
    return f"{v * 100:.0f}%"


def _dur(seconds: float) -> str:
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    return f"{h}h{rem // 60:02d}m" if h else f"{rem // 60}m"


def _log_dur(v: float) -> str:
    return _dur(math.expm1(v))


def _ratio_tl(v: float) -> Optional[str]:
    if v < 1:
        return f"time limit is {v:.2g}x what your similar successful jobs needed"
    return None


def _log_ratio(what: str) -> Callable[[float], Optional[str]]:
    def text(v: float) -> Optional[str]:
        r = math.exp(v)
        return f"time limit is {r:.2g}x the usual runtime of {what}" if r < 1 else None
    return text


WORDS: Dict[str, Callable[[float], Optional[str]]] = {
    # the ensemble's non-tree bases (value NaN: their share of the stacked score)
    "similar_past_jobs": lambda v: "similar past jobs failed",
    "recent_job_sequence": lambda v: "how your most recent jobs ended",
    "unusual_request": lambda v: "this request is unlike the jobs that usually succeed",
    # full submit / start schema (nomade.features.schema)
    "u_fail_rate": lambda v: f"{_pct(v)} of your past jobs failed",
    "n_fail_rate": lambda v: f"{_pct(v)} of your past jobs with this name failed",
    "u_rate_timeout": lambda v: f"{_pct(v)} of your jobs hit their time limit",
    "u_rate_oom": lambda v: f"{_pct(v)} of your jobs ran out of memory",
    "u_rate_failed": lambda v: f"{_pct(v)} of your jobs exited with an error",
    "u_rate_system": lambda v: f"{_pct(v)} of your jobs ended by node failures or preemption",
    "u_last_fail": lambda v: "your previous job failed" if v == 1 else None,
    "n_last_fail": lambda v: "your previous job with this name failed" if v == 1 else None,
    "u_fail_streak": lambda v: f"your last {v:.0f} jobs failed" if v >= 2 else None,
    "n_fail_streak": lambda v: f"your last {v:.0f} jobs with this name failed" if v >= 2 else None,
    "tl_vs_user_runtime": _log_ratio("your jobs"),
    "tl_vs_name_runtime": _log_ratio("jobs with this name"),
    "timelimit_log": lambda v: f"time limit of {_log_dur(v)}",
    "timelimit_unset": lambda v: "no time limit given (partition default)" if v == 1 else None,
    "req_mem_unset": lambda v: "no memory request (the default may be too small)" if v == 1 else None,
    "req_cpus": lambda v: f"{v:.0f} CPUs requested",
    "req_nodes": lambda v: f"{v:.0f} nodes requested",
    "u_ended_log": lambda v: "little history for you on this cluster" if math.expm1(v) < 5 else None,
    "n_ended_log": lambda v: "first jobs with this name" if math.expm1(v) < 3 else None,
    "u_subs_1h": lambda v: f"{v:.0f} submissions in the last hour" if v >= 3 else None,
    "u_outstanding": lambda v: f"{v:.0f} of your jobs still queued or running",
    "g_fail_rate_recent": lambda v: f"{_pct(v)} of recent jobs on the cluster failed",
    "queue_wait_log": lambda v: f"waited {_log_dur(v)} in the queue",
    "node_recent_failures": lambda v: f"{v:.0f} node failures on its nodes this week" if v >= 1 else None,
    "running_jobs": lambda v: f"{v:.0f} jobs running on the cluster",
    # the Lua model's lite schema (nomade.scoring.lite_features) where it has no full-schema twin
    "timelimit_over_p90": _ratio_tl,
    "timelimit_s": lambda v: f"time limit of {_dur(v)}",
    "user_n": lambda v: "little history for you on this cluster" if v < 5 else None,
    "name_n": lambda v: "first jobs with this name" if v < 3 else None,
    "hour_utc": lambda v: f"submitted at {v:02.0f}:00 UTC",
    "weekday_utc": lambda v: "submitted on a " + _WEEKDAYS[int(v) % 7],
    "req_mem_total_mb": lambda v: f"memory request of {v / 1024:.1f} GiB",
    "mem_per_cpu_mb": lambda v: f"{v / 1024:.1f} GiB of memory per CPU",
    "req_gpus": lambda v: f"{v:.0f} GPUs requested" if v >= 1 else "no GPUs requested",
    "cpus_per_node": lambda v: f"{v:.0f} CPUs per node",
}


# lite-schema features that mean the same as a full-schema one (same value scale)
SAME_AS = {"user_fail_rate": "u_fail_rate", "name_fail_rate": "n_fail_rate",
           "user_last_failed": "u_last_fail", "name_last_failed": "n_last_fail",
           "user_fail_streak": "u_fail_streak", "name_fail_streak": "n_fail_streak",
           "recent_submits": "u_subs_1h"}


def reason_text(feature: str, value: Any = None) -> str:
    """One reason as words; ``feature = value`` when there are no words for it."""
    fn = WORDS.get(SAME_AS.get(feature, feature))
    v = value if isinstance(value, (int, float)) and value == value else None
    if fn is not None and (v is not None or feature in ("similar_past_jobs", "recent_job_sequence",
                                                        "unusual_request")):
        try:
            text = fn(float("nan") if v is None else float(v))
        except (ValueError, OverflowError):
            text = None
        if text:
            return text
    if v is None:
        return feature.replace("_", " ")
    return f"{feature} = {v:g}"
