"""Listing jobs from the store: filters (user, state or failure class, since, cluster), newest
first, and outcome counts by failure class. The CLI (`nomade jobs`, `nomade demo`) formats these;
the queries are the store's (nomade.store.job_queries)."""

import re
import time
from datetime import datetime, timezone
from typing import Optional

from .store.job_queries import (UNKNOWN, JobQuery, JobRow, OutcomeCounts, outcome_class,
                                outcome_counts, state_condition)
from .store.job_queries import jobs_matching as list_jobs

__all__ = ["UNKNOWN", "JobQuery", "JobRow", "OutcomeCounts", "list_jobs", "outcome_class",
           "outcome_counts", "parse_since", "state_condition"]

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: Optional[float] = None) -> float:
    """'7d', '12h', '30m', '2w', '90s' (ago), or an ISO date/time ('2024-05-01', '2024-05-01T08:00',
    UTC unless it carries an offset) -> epoch seconds. Raises ValueError."""
    t = text.strip()
    m = _RELATIVE.match(t.lower())
    if m:
        now = time.time() if now is None else now
        return now - int(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(f"{text!r} is neither a relative time (7d, 12h, 30m) "
                         f"nor an ISO date (2024-05-01 or 2024-05-01T08:00)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()
