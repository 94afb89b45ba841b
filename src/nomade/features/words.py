"""Reasons in words: a model's top contributing features (full schema, the Lua model's lite schema,
and the ensemble's pseudo-features for its non-tree bases) as short phrases a user understands,
for the risk line in the job's output, nomade-why and reports.

``reason_text`` always answers in words: the value in a sentence where the value says something in
the direction of a warning, else a neutral description of the feature (``DESCRIPTION``); never
``name = value``. ``warning_reason`` is the same, or None where the value does not point towards a
failure (a time limit longer than what similar jobs needed), for the lists users are warned with.
``distinct`` keeps one reason per family (the job name's over the user's). Every feature of every
schema has words (tests/unit/test_messages.py). Runtime-safe: stdlib only."""

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")  # Monday = 0
_PSEUDO = ("similar_past_jobs", "recent_job_sequence", "unusual_request")


def _pct(v: float) -> str:
    return f"{v * 100:.0f}%"


def _dur(seconds: float) -> str:
    s = int(round(max(seconds, 0.0)))
    h, rem = divmod(s, 3600)
    return f"{h}h{rem // 60:02d}m" if h else f"{rem // 60}m"


def _log_dur(v: float) -> str:
    return _dur(math.expm1(v))


def _log_hours(v: float) -> str:
    return _dur(math.expm1(v) * 3600.0)


def _log_gib(v: float) -> str:
    return f"{math.expm1(v) / 1024:.1f} GiB"


def _count(v: float) -> int:
    return int(round(math.expm1(v)))


def _ratio_tl(v: float) -> Optional[str]:
    if 0 < v < 1:
        return f"time limit is {v:.2g}x what your similar successful jobs needed"
    return None


def _log_ratio(what: str) -> Callable[[float], Optional[str]]:
    def text(v: float) -> Optional[str]:
        r = math.exp(v)
        return f"time limit is {r:.2g}x the usual runtime of {what}" if r < 1 else None
    return text


def _streak(what: str) -> Callable[[float], Optional[str]]:
    def text(v: float) -> Optional[str]:
        if v >= 2:
            return f"your last {v:.0f} jobs{what} failed"
        return f"your previous job{what} failed" if v == 1 else None
    return text


# value -> a sentence, or None when the value does not point towards a failure
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
    "u_rate_cancel": lambda v: f"{_pct(v)} of your jobs were cancelled",
    "u_last_fail": lambda v: "your previous job failed" if v == 1 else None,
    "n_last_fail": lambda v: "your previous job with this name failed" if v == 1 else None,
    "u_fail_streak": _streak(""),
    "n_fail_streak": _streak(" with this name"),
    "u_since_end_log": lambda v: f"your last job ended {_log_hours(v)} before",
    "n_since_end_log": lambda v: f"your last job with this name ended {_log_hours(v)} before",
    "u_since_submit_log": lambda v: f"your previous submission was {_log_hours(v)} before",
    "u_runtime_ratio": lambda v: f"your jobs use {_pct(v)} of their time limit on average",
    "n_runtime_ratio": lambda v: f"jobs with this name use {_pct(v)} of their time limit on average",
    "u_mem_ratio": lambda v: f"your jobs use {_pct(v)} of the memory they request",
    "u_runtime_log": lambda v: f"your jobs usually run {_log_dur(v)}",
    "n_runtime_log": lambda v: f"jobs with this name usually run {_log_dur(v)}",
    "tl_vs_user_runtime": _log_ratio("your jobs"),
    "tl_vs_name_runtime": _log_ratio("jobs with this name"),
    "timelimit_log": lambda v: f"time limit of {_log_dur(v)}",
    "timelimit_unset": lambda v: "no time limit given (partition default)" if v == 1 else None,
    "req_mem_unset": lambda v: "no memory request (the default may be too small)" if v == 1 else None,
    "req_mem_node_log": lambda v: f"memory request of {_log_gib(v)} per node",
    "req_mem_cpu_log": lambda v: f"{_log_gib(v)} of memory per CPU",
    "req_cpus": lambda v: f"{v:.0f} CPUs requested",
    "req_nodes": lambda v: f"{v:.0f} nodes requested",
    "u_ended_log": lambda v: "little history for you on this cluster" if math.expm1(v) < 5 else None,
    "n_ended_log": lambda v: "first jobs with this name" if math.expm1(v) < 3 else None,
    "u_subs_1h": lambda v: f"{v:.0f} submissions in the last hour" if v >= 3 else None,
    "u_subs_1d": lambda v: f"{v:.0f} submissions in the last day" if v >= 10 else None,
    "u_outstanding": lambda v: f"{v:.0f} of your jobs still queued or running",
    "g_fail_rate_recent": lambda v: f"{_pct(v)} of recent jobs on the cluster failed",
    "queue_wait_log": lambda v: f"waited {_log_dur(v)} in the queue",
    "node_recent_failures": lambda v: f"{v:.0f} node failures on its nodes this week" if v >= 1 else None,
    "running_jobs": lambda v: f"{v:.0f} jobs running on the cluster",
    "running_cpus_log": lambda v: f"{_count(v)} CPUs busy on the cluster",
    "name_len": lambda v: f"a job name of {v:.0f} characters",
    "name_digits": lambda v: f"{v:.0f} digits in the job name",
    "name_is_shell": lambda v: "a generic job name (a shell or an interactive session)" if v == 1 else None,
    "submit_hour": lambda v: f"submitted at {v:02.0f}:00 UTC",
    "submit_weekday": lambda v: "submitted on a " + _WEEKDAYS[int(v) % 7],
    # the Lua model's lite schema (nomade.scoring.lite_features) where it has no full-schema twin
    "timelimit_over_p90": _ratio_tl,
    "timelimit_s": lambda v: f"time limit of {_dur(v)}",
    "user_n": lambda v: "little history for you on this cluster" if v < 5 else None,
    "name_n": lambda v: "first jobs with this name" if v < 3 else None,
    "user_p90_runtime_s": lambda v: f"your successful jobs ran up to {_dur(v)}",
    "hour_utc": lambda v: f"submitted at {v:02.0f}:00 UTC",
    "weekday_utc": lambda v: "submitted on a " + _WEEKDAYS[int(v) % 7],
    "req_mem_total_mb": lambda v: f"memory request of {v / 1024:.1f} GiB",
    "mem_per_cpu_mb": lambda v: f"{v / 1024:.1f} GiB of memory per CPU",
    "req_gpus": lambda v: f"{v:.0f} GPUs requested" if v >= 1 else "no GPUs requested",
    "cpus_per_node": lambda v: f"{v:.0f} CPUs per node",
}

# what a feature is about, for a value that says nothing towards a failure and for a value not
# known; categorical codes (an index in the bundle's vocabulary) have only this
DESCRIPTION: Dict[str, str] = {
    "similar_past_jobs": "how similar past jobs ended", "recent_job_sequence": "how your most recent jobs ended",
    "unusual_request": "how unusual this request is",
    "partition_code": "the partition", "qos_code": "the QOS", "account_code": "the account",
    "group_code": "your group", "user_code": "who submitted it", "name_code": "the job name",
    "name_len": "the length of the job name", "name_digits": "digits in the job name",
    "name_is_shell": "the job name", "submit_hour": "the hour of submission",
    "submit_weekday": "the day of submission", "req_cpus": "the CPUs requested",
    "req_nodes": "the nodes requested", "cpus_per_node": "the CPUs per node",
    "req_gpus": "the GPUs requested", "req_mem_node_log": "the memory request",
    "req_mem_cpu_log": "the memory per CPU", "req_mem_unset": "whether memory was requested",
    "timelimit_log": "the time limit", "timelimit_unset": "whether a time limit was given",
    "u_ended_log": "how many of your jobs ended before", "u_fail_rate": "your past failure rate",
    "u_rate_failed": "how often your jobs exited with an error",
    "u_rate_timeout": "how often your jobs hit their time limit",
    "u_rate_oom": "how often your jobs ran out of memory",
    "u_rate_system": "how often your jobs met node failures or preemption",
    "u_rate_cancel": "how often your jobs were cancelled", "u_last_fail": "how your previous job ended",
    "u_fail_streak": "how your recent jobs ended", "u_since_end_log": "when your last job ended",
    "u_runtime_ratio": "how much of their time limit your jobs use",
    "u_mem_ratio": "how much of their memory your jobs use", "u_runtime_log": "how long your jobs run",
    "tl_vs_user_runtime": "the time limit compared with your jobs' usual runtime",
    "u_outstanding": "your jobs still queued or running", "u_subs_1h": "your submissions in the last hour",
    "u_subs_1d": "your submissions in the last day", "u_since_submit_log": "when you last submitted",
    "n_ended_log": "how many jobs with this name ended before",
    "n_fail_rate": "the failure rate of jobs with this name",
    "n_last_fail": "how your previous job with this name ended",
    "n_fail_streak": "how your recent jobs with this name ended",
    "n_runtime_ratio": "how much of their time limit jobs with this name use",
    "n_runtime_log": "how long jobs with this name run",
    "tl_vs_name_runtime": "the time limit compared with the usual runtime of jobs with this name",
    "n_since_end_log": "when your last job with this name ended",
    "g_fail_rate_recent": "recent failures on the cluster", "queue_wait_log": "the time spent in the queue",
    "running_jobs": "the jobs running on the cluster", "running_cpus_log": "the CPUs busy on the cluster",
    "node_recent_failures": "recent failures of its nodes",
    "req_mem_total_mb": "the memory request", "timelimit_s": "the time limit",
    "mem_per_cpu_mb": "the memory per CPU", "hour_utc": "the hour of submission",
    "weekday_utc": "the day of submission", "recent_submits": "your submissions in the last hour",
    "user_n": "how many of your jobs ended before", "user_fail_rate": "your past failure rate",
    "user_last_failed": "how your previous job ended", "user_fail_streak": "how your recent jobs ended",
    "user_p90_runtime_s": "how long your successful jobs ran",
    "name_n": "how many jobs with this name ended before",
    "name_fail_rate": "the failure rate of jobs with this name",
    "name_last_failed": "how your previous job with this name ended",
    "name_fail_streak": "how your recent jobs with this name ended",
    "timelimit_over_p90": "the time limit compared with what your similar jobs needed",
}

# lite-schema features that mean the same as a full-schema one (same value scale)
SAME_AS = {"user_fail_rate": "u_fail_rate", "name_fail_rate": "n_fail_rate",
           "user_last_failed": "u_last_fail", "name_last_failed": "n_last_fail",
           "user_fail_streak": "u_fail_streak", "name_fail_streak": "n_fail_streak",
           "recent_submits": "u_subs_1h"}

# reasons of one family say the same thing in other words: one of each is shown; the job name's
# (``_NAME_LEVEL``) is preferred over the user's (submit_model.lua's FAMILY/TWIN do the same)
_FAMILIES: Tuple[Tuple[str, ...], ...] = (
    ("u_fail_rate", "n_fail_rate", "u_last_fail", "n_last_fail", "u_fail_streak", "n_fail_streak",
     "u_ended_log", "n_ended_log", "user_n", "name_n", "user_fail_rate", "name_fail_rate",
     "user_last_failed", "name_last_failed", "user_fail_streak", "name_fail_streak", "u_rate_failed"),
    ("timelimit_log", "timelimit_s", "tl_vs_user_runtime", "tl_vs_name_runtime", "timelimit_over_p90",
     "user_p90_runtime_s", "u_runtime_log", "n_runtime_log", "timelimit_unset"),
    ("req_mem_node_log", "req_mem_cpu_log", "req_mem_total_mb", "mem_per_cpu_mb", "req_mem_unset"),
    ("req_cpus", "req_nodes", "cpus_per_node"),
    ("submit_hour", "submit_weekday", "hour_utc", "weekday_utc"),
    ("u_subs_1h", "u_subs_1d", "recent_submits"),
)
FAMILY: Dict[str, int] = {f: i for i, fam in enumerate(_FAMILIES) for f in fam}
_NAME_LEVEL = frozenset(f for f in FAMILY if f.startswith(("n_", "name_")) or f == "tl_vs_name_runtime")


def _known(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, (int, float)) and value == value else None


def warning_reason(feature: str, value: Any = None) -> Optional[str]:
    """The reason as a sentence, or None when the value says nothing towards a failure."""
    fn = WORDS.get(SAME_AS.get(feature, feature))
    v = _known(value)
    if fn is None or (v is None and feature not in _PSEUDO):
        return None
    try:
        return fn(float("nan") if v is None else v) or None
    except (ValueError, OverflowError, IndexError):
        return None


def reason_text(feature: str, value: Any = None) -> str:
    """One reason as words, always: the sentence, else what the feature is about."""
    text = warning_reason(feature, value)
    if text:
        return text
    return DESCRIPTION.get(feature) or DESCRIPTION.get(SAME_AS.get(feature, ""), "") or \
        feature.replace("_", " ")


def distinct(features: Sequence[str]) -> List[int]:
    """Indices of ``features`` to show: the first of each family, in order, except that a job
    name's reason later in the list takes the place of the user's of the same family."""
    keep: List[int] = []
    where: Dict[int, int] = {}
    for i, f in enumerate(features):
        fam = FAMILY.get(SAME_AS.get(f, f), FAMILY.get(f))
        if fam is None:
            keep.append(i)
        elif fam not in where:
            where[fam] = len(keep)
            keep.append(i)
        elif f in _NAME_LEVEL and features[keep[where[fam]]] not in _NAME_LEVEL:
            keep[where[fam]] = i
    return keep
