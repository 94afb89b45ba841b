"""Job states as Slurm names them, which of them are final, and the failure classes nomade uses."""

import re
from typing import Optional, Tuple

# Final (terminal) states: the job has an outcome.
FINAL_STATES = frozenset({
    "COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
    "DEADLINE", "CANCELLED", "REVOKED",
})
# Not outcomes yet: the row will be updated by a later ingest.
ACTIVE_STATES = frozenset({
    "PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "CONFIGURING", "COMPLETING",
    "REQUEUE_FED", "REQUEUE_HOLD", "SPECIAL_EXIT", "STOPPED", "SIGNALING", "STAGE_OUT",
})
KNOWN_STATES = FINAL_STATES | ACTIVE_STATES

# sacct abbreviations that appear in some outputs
_ABBREV = {"CA": "CANCELLED", "CD": "COMPLETED", "F": "FAILED", "TO": "TIMEOUT", "OOM": "OUT_OF_MEMORY",
           "NF": "NODE_FAIL", "PR": "PREEMPTED", "BF": "BOOT_FAIL", "DL": "DEADLINE", "RQ": "REQUEUED",
           "PD": "PENDING", "R": "RUNNING", "S": "SUSPENDED", "CG": "COMPLETING", "RV": "REVOKED"}
_CANCELLED_BY = re.compile(r"^CANCELLED\s+by\s+(-?\d+)$")

# failure classes (labels); see docs/features.md
SUCCESS = "success"
FAILED = "failed"
TIMEOUT = "timeout"
OOM = "oom"
SYSTEM = "system"              # NODE_FAIL, BOOT_FAIL, PREEMPTED, ...
CANCELLED_OWNER = "cancelled_owner"
CANCELLED_OTHER = "cancelled_other"
FAILURE_CLASSES = (FAILED, TIMEOUT, OOM, SYSTEM, CANCELLED_OWNER, CANCELLED_OTHER)


def parse_state(text: str) -> Tuple[str, Optional[int]]:
    """'CANCELLED by 1234' -> ('CANCELLED', 1234); 'COMPLETED' -> ('COMPLETED', None).
    Raises ValueError for an unknown state."""
    t = text.strip()
    m = _CANCELLED_BY.match(t)
    if m:
        return "CANCELLED", int(m.group(1))
    t = t.rstrip("+")  # sacct marks some states with a trailing '+'
    t = _ABBREV.get(t, t)
    if t not in KNOWN_STATES:
        raise ValueError(f"unknown job state {text!r}")
    return t, None


def failure_class(state: str, cancelled_by: Optional[int], uid: Optional[int],
                  exit_code: Optional[int] = None) -> Optional[str]:
    """The outcome class of a final state, or None if the state is not final."""
    if state not in FINAL_STATES:
        return None
    if state == "COMPLETED":
        return SUCCESS
    if state == "FAILED":
        return FAILED
    if state in ("TIMEOUT", "DEADLINE"):
        return TIMEOUT
    if state == "OUT_OF_MEMORY":
        return OOM
    if state == "CANCELLED":
        if cancelled_by is not None and uid is not None and cancelled_by != uid:
            return CANCELLED_OTHER
        return CANCELLED_OWNER
    return SYSTEM
