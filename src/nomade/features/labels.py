"""The training target: a binary failure label and the failure class of every job.

Rules (docs/features.md, "Labels"):
- not final (pending, running, no end time) -> y = -1 (no label yet);
- COMPLETED -> 0;
- FAILED, TIMEOUT/DEADLINE, OUT_OF_MEMORY, NODE_FAIL/BOOT_FAIL/PREEMPTED/REVOKED -> 1;
- CANCELLED by someone else (admin, operator: ``cancelled_by`` != the owner's uid) -> 1;
- CANCELLED by the owner, or by an unknown canceller (SWF traces and old sacct records have no
  canceller; most cancellations are the owner's) -> 1 when ``model.owner_cancel_is_failure`` is
  on, else -1: excluded from the binary target (neither a failure nor a success), but the job
  still counts in history features as an ended job with class ``cancelled_owner``.
"""

from typing import Tuple

import numpy as np

from .. import states
from .jobtable import JobTable


def _opt_int(v: float):
    return None if v != v else int(v)


def failure_classes(jt: JobTable) -> np.ndarray:
    """Failure class per job (object array; None while not final)."""
    out = np.empty(len(jt), dtype=object)
    st, cb, uid, fin = jt["state"], jt["cancelled_by"], jt["uid"], jt["is_final"]
    for i in range(len(jt)):
        if st[i] is None or fin[i] != 1:
            out[i] = None
            continue
        out[i] = states.failure_class(st[i], _opt_int(cb[i]), _opt_int(uid[i]))
    return out


def label_from_class(cls, owner_cancel_is_failure: bool = False) -> int:
    if cls is None:
        return -1
    if cls == states.SUCCESS:
        return 0
    if cls == states.CANCELLED_OWNER and not owner_cancel_is_failure:
        return -1
    return 1


def make_labels(jt: JobTable, owner_cancel_is_failure: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """(y int8, cls object) per job."""
    cls = failure_classes(jt)
    y = np.array([label_from_class(c, owner_cancel_is_failure) for c in cls], dtype=np.int8)
    return y, cls
