"""The ordered feature names per scoring stage, which of them are categorical, and the schema
hash a model bundle records (a bundle scored with another schema is refused)."""

import hashlib
from typing import List, Sequence

SCHEMA_VERSION = 1

# from the request alone (nomade.features.submit)
REQUEST_NAMES = (
    "req_cpus", "req_nodes", "cpus_per_node", "req_gpus",
    "req_mem_node_log", "req_mem_cpu_log", "req_mem_unset",
    "timelimit_log", "timelimit_unset",
    "partition_code", "qos_code", "account_code", "group_code", "user_code", "name_code",
    "name_len", "name_digits", "name_is_shell",
    "submit_hour", "submit_weekday",
)
# from the user's / the (user, job name)'s ended jobs and recent submissions (nomade.features.history)
HISTORY_NAMES = (
    "u_ended_log", "u_fail_rate", "u_rate_failed", "u_rate_timeout", "u_rate_oom",
    "u_rate_system", "u_rate_cancel", "u_last_fail", "u_fail_streak", "u_since_end_log",
    "u_runtime_ratio", "u_mem_ratio", "u_runtime_log", "tl_vs_user_runtime",
    "u_outstanding", "u_subs_1h", "u_subs_1d", "u_since_submit_log",
    "n_ended_log", "n_fail_rate", "n_last_fail", "n_fail_streak", "n_runtime_ratio",
    "n_runtime_log", "tl_vs_name_runtime", "n_since_end_log",
    "g_fail_rate_recent",
)
# known only when the job starts (nomade.features.start)
START_NAMES = ("queue_wait_log", "running_jobs", "running_cpus_log", "node_recent_failures")

CATEGORICAL = ("partition_code", "qos_code", "account_code", "group_code", "user_code", "name_code")
SUBMISSION_BASED = ("u_outstanding", "u_subs_1h", "u_subs_1d", "u_since_submit_log")


def feature_names(stage: str) -> List[str]:
    if stage == "submit":
        return list(REQUEST_NAMES + HISTORY_NAMES)
    if stage == "start":
        return list(REQUEST_NAMES + HISTORY_NAMES + START_NAMES)
    raise ValueError(f"unknown stage {stage!r} (submit or start)")


def schema_hash(names: Sequence[str]) -> str:
    h = hashlib.sha256(f"nomade-features-v{SCHEMA_VERSION}\n".encode())
    h.update("\n".join(names).encode())
    return h.hexdigest()
