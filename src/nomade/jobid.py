"""A job id as people type it (``nomade report``, ``nomade-why``, ``nomade jobs --job``).

Forms: ``123`` (a job, an array task's or het component's own id = JobIDRaw / SLURM_JOB_ID, or
an array / het job as a whole), ``123_4`` (array task), ``123_[5-9]`` (pending array range),
``123+1`` (het component); each may carry a ``.step`` (ignored). The store resolves a bare number
that is no job's JobID (``store.job_queries.jobs_by_number``): the array's tasks or the het job's
components, else the job whose JobIDRaw it is.
"""

import re
from typing import NamedTuple, Optional, Tuple

from .errors import NomadeError

_FORM = re.compile(r"(\d{1,19})(?:_(\d{1,10}|\[[0-9,\-%]{1,200}\])|\+(\d{1,10}))?(?:\.[A-Za-z0-9_+\-]{1,40})?")


class BadJobId(NomadeError):
    """Text that is not a job id."""


class JobRef(NamedTuple):
    job_id: str                 # as sacct prints it, without a step: '123', '123_4', '123+1'
    number: Optional[int]       # the bare number, for the store's raw / array / het lookup


def parse_job_ref(text: str) -> JobRef:
    """Raises BadJobId for anything but the forms above."""
    t = str(text).strip()
    m = _FORM.fullmatch(t)
    if m is None or int(m.group(1)) >= 2 ** 63:
        shown = t[:40].encode("ascii", "backslashreplace").decode("ascii")
        raise BadJobId(f"{shown!r} is not a job id",
                       hint="give it as Slurm prints it: 123, 123_4 (array task), 123+1 (het component)")
    base = m.group(1).lstrip("0") or "0"
    if m.group(2) is not None:
        task = m.group(2) if m.group(2).startswith("[") else (m.group(2).lstrip("0") or "0")
        return JobRef(f"{base}_{task}", None)
    if m.group(3) is not None:
        return JobRef(f"{base}+{m.group(3).lstrip('0') or '0'}", None)
    return JobRef(base, int(base))


def array_task(ref: JobRef) -> Optional[Tuple[int, int]]:
    """(array job id, task id) of a ``123_4`` reference; None for any other form. Hook records
    (Prolog, Epilog) hold these as SLURM_ARRAY_JOB_ID / SLURM_ARRAY_TASK_ID beside the raw id."""
    base, sep, task = ref.job_id.partition("_")
    return (int(base), int(task)) if sep and task.isdigit() else None
