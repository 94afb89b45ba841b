"""Parsers for the values ``sacct -P`` prints: times, durations, memory, exit codes, job ids, TRES.

Each parser takes the text of one field and returns Python values; a value that cannot be read
raises ``ValueError`` with a short, specific reason (the caller quarantines the record). The hot
ones (times, memory, time limits, exit codes) cache by text or by text prefix, so that a dump of a
million jobs is not dominated by ``time.strptime``/``mktime``.

Times: sacct prints local time without a zone (``2026-11-21T13:54:07``, the ``standard`` form of
SLURM_TIME_FORMAT). They are converted with this process's local time zone (``TZ``). The cache is
per date-and-hour prefix, so zones whose DST shift is not a whole hour (Lord Howe) may be off by
30 minutes for one hour a year; the repeated hour when DST ends is read as one of its two meanings.
"""

import math
import re
import time
from typing import Dict, NamedTuple, Optional, Tuple

from ..jobrecord import JOB_COLUMNS, STEP_COLUMNS, JobRecord
from ..states import FINAL_STATES, parse_state

# values sacct prints for "no value" in time and limit fields
_NO_TIME = frozenset({"", "Unknown", "None", "N/A"})
_NO_LIMIT = frozenset({"", "UNLIMITED", "Partition_Limit", "INVALID", "NONE", "None", "Unknown"})
_CACHE_MAX = 20_000

_hour_cache: Dict[str, float] = {}
_time_cache: Dict[str, float] = {}  # whole stamps: a job's times repeat on its step rows


def parse_time(text: str) -> Optional[float]:
    """``2026-11-21T13:54:07`` (local time) -> epoch seconds; ``Unknown``/``None``/'' -> None."""
    hit = _time_cache.get(text)
    if hit is not None:
        return hit
    res = _parse_time(text)
    if res is not None:
        if len(_time_cache) > _CACHE_MAX:
            _time_cache.clear()
        _time_cache[text] = res
    return res


def _parse_time(text: str) -> Optional[float]:
    base = _hour_cache.get(text[:13])
    if base is not None and len(text) == 19 and text[13] == ":" and text[16] == ":":
        try:
            mi = int(text[14:16])
            se = int(text[17:19])
        except ValueError:
            raise ValueError(f"bad time {text!r}") from None
        if 0 <= mi < 60 and 0 <= se <= 60:
            return base + mi * 60 + se
        raise ValueError(f"bad time {text!r}")
    if text in _NO_TIME:
        return None
    return _parse_time_slow(text)


def _parse_time_slow(text: str) -> float:
    if (len(text) != 19 or text[4] != "-" or text[7] != "-" or text[10] != "T"
            or text[13] != ":" or text[16] != ":"):
        raise ValueError(f"bad time {text!r}")
    try:
        y, mo, d, h = int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13])
        mi, se = int(text[14:16]), int(text[17:19])
    except ValueError:
        raise ValueError(f"bad time {text!r}") from None
    if not (1970 <= y <= 2200 and 1 <= mo <= 12 and 1 <= d <= 31 and 0 <= h < 24
            and 0 <= mi < 60 and 0 <= se <= 60):
        raise ValueError(f"bad time {text!r}")
    try:
        base = time.mktime((y, mo, d, h, 0, 0, 0, 0, -1))
    except (OverflowError, ValueError):
        raise ValueError(f"bad time {text!r}") from None
    if len(_hour_cache) > _CACHE_MAX:
        _hour_cache.clear()
    _hour_cache[text[:13]] = base
    return base + mi * 60 + se


def format_time(epoch: float) -> str:
    """Epoch seconds -> the local-time form sacct's ``-S``/``-E`` accept."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(epoch))


_dur_cache: Dict[str, float] = {}


def parse_duration(text: str) -> Optional[float]:
    """``1-02:03:04``, ``02:03:04``, ``02:03`` (MM:SS), ``00:00.509`` (MM:SS.mmm) -> seconds.
    '' -> None. Limit words (``UNLIMITED``...) are for ``parse_timelimit``, here they raise."""
    hit = _dur_cache.get(text)
    if hit is not None:
        return hit
    if not text:
        return None
    res = _parse_duration(text)
    if len(_dur_cache) > _CACHE_MAX:
        _dur_cache.clear()
    _dur_cache[text] = res
    return res


def _parse_duration(text: str) -> float:
    days = 0
    rest = text
    if "-" in text:
        d, _, rest = text.partition("-")
        if not _digits(d) or len(d) > 9:
            raise ValueError(f"bad duration {text[:40]!r}")
        days = int(d)
    parts = rest.split(":")
    try:
        if len(parts) == 3:
            h, m, s = int(parts[0]), int(parts[1]), float(parts[2])
        elif len(parts) == 2:
            h, m, s = 0, int(parts[0]), float(parts[1])
        elif len(parts) == 1 and days:
            h, m, s = int(parts[0]), 0, 0.0
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"bad duration {text!r}") from None
    if h < 0 or m < 0 or not 0 <= s < 61 or m >= 60 or h >= 10 ** 9:
        raise ValueError(f"bad duration {text[:40]!r}")
    return days * 86400 + h * 3600 + m * 60 + s


_limit_cache: Dict[str, Tuple[Optional[int], str]] = {}


def parse_timelimit(text: str) -> Tuple[Optional[int], Optional[str]]:
    """Timelimit -> (seconds or None, raw text or None). ``UNLIMITED``/``Partition_Limit``/
    ``INVALID`` -> (None, that word)."""
    hit = _limit_cache.get(text)
    if hit is not None:
        return hit
    if text in _NO_LIMIT:
        res: Tuple[Optional[int], Optional[str]] = (None, text or None)
    else:
        sec = parse_duration(text)
        res = (None if sec is None else int(sec), text)
    if len(_limit_cache) > _CACHE_MAX:
        _limit_cache.clear()
    _limit_cache[text] = res
    return res


_MEM_UNITS = {"K": 1.0 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 ** 2, "P": 1024.0 ** 3}
_mem_cache: Dict[Tuple[str, str], Tuple[Optional[float], Optional[int]]] = {}


def parse_mem(text: str, bare_unit: str = "M") -> Tuple[Optional[float], Optional[int]]:
    """Memory -> (MiB, per_cpu). ``500M`` -> (500.0, None); ``3324K``; ``1.5G``; old forms
    ``4000Mn`` (per node) -> (4000.0, 0) and ``2000Mc`` (per CPU) -> (2000.0, 1). A bare number is
    in ``bare_unit`` (ReqMem: M; MaxRSS: K, though sacct prints ``0`` only). '' -> (None, None)."""
    key = (text, bare_unit)
    hit = _mem_cache.get(key)
    if hit is not None:
        return hit
    res = _parse_mem(text, bare_unit)
    if len(_mem_cache) > _CACHE_MAX:
        _mem_cache.clear()
    _mem_cache[key] = res
    return res


def _parse_mem(text: str, bare_unit: str) -> Tuple[Optional[float], Optional[int]]:
    if not text:
        return None, None
    t = text
    per_cpu = None
    if t[-1] in "nc":
        per_cpu = 1 if t[-1] == "c" else 0
        t = t[:-1]
    unit = bare_unit
    if t and t[-1].upper() in _MEM_UNITS:
        unit = t[-1].upper()
        t = t[:-1]
    try:
        num = float(t)
    except ValueError:
        raise ValueError(f"bad memory {text!r} (expected a number with K/M/G/T)") from None
    if not 0 <= num < math.inf:  # negative, NaN, inf (1e999)
        raise ValueError(f"bad memory {text[:40]!r}")
    return num * _MEM_UNITS[unit], per_cpu


_exit_cache: Dict[str, Tuple[Optional[int], Optional[int]]] = {}


def parse_exit(text: str) -> Tuple[Optional[int], Optional[int]]:
    """``1:0`` -> (1, 0) (exit code, signal); '' -> (None, None)."""
    hit = _exit_cache.get(text)
    if hit is not None:
        return hit
    if not text:
        res: Tuple[Optional[int], Optional[int]] = (None, None)
    else:
        code, sep, sig = text.partition(":")
        if not sep or not _digits(code) or not _digits(sig) or len(code) > 10 or len(sig) > 10:
            raise ValueError(f"bad exit code {text[:40]!r} (expected CODE:SIGNAL)")
        res = (check_count(int(code), "exit code"), check_count(int(sig), "signal"))
    if len(_exit_cache) > _CACHE_MAX:
        _exit_cache.clear()
    _exit_cache[text] = res
    return res


_state_cache: Dict[str, Tuple[str, Optional[int], int]] = {}


def parse_state_field(text: str) -> Tuple[Optional[str], Optional[int], int]:
    """State -> (state, cancelled_by uid, is_final). ``CANCELLED by 1234`` -> ('CANCELLED', 1234, 1).
    '' -> (None, None, 0). Unknown names raise ValueError."""
    hit = _state_cache.get(text)
    if hit is not None:
        return hit
    if not text:
        return None, None, 0
    state, by = parse_state(text)
    if by is not None:
        check_count(by, "cancelling uid")
    res = (state, by, 1 if state in FINAL_STATES else 0)
    if len(_state_cache) > _CACHE_MAX:
        _state_cache.clear()
    _state_cache[text] = res
    return res


# what SQLite's INTEGER holds (a signed 64-bit integer)
INT64_MAX = (1 << 63) - 1


def check_count(value: int, what: str = "number") -> int:
    """``value`` if it is an int in 0..INT64_MAX (counts, ids, uids: never negative, and what a
    SQLite INTEGER holds), else ValueError naming it (the row is quarantined)."""
    if not 0 <= value <= INT64_MAX:
        raise ValueError(f"{what} {value} out of range (0..2^63-1)")
    return value


def check_storable(rec: "JobRecord") -> None:
    """Raise ValueError naming the first value of ``rec`` (or of a step) that the store cannot
    hold or that means nothing: an int outside 0..2^63-1 (every int column is an id, a count, a
    code or seconds), a float that is NaN or infinite. For readers whose values do not come
    through the parsers above (sacct --json, SWF)."""
    for name in JOB_COLUMNS:
        _check_value(getattr(rec, name), name)
    for step in rec.steps:
        for name in STEP_COLUMNS:
            _check_value(getattr(step, name), f"step {step.step_id} {name}")


def _check_value(v: object, name: str) -> None:
    if v is None or isinstance(v, str):
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{name}: not a number: {v!r}"[:120])
    if isinstance(v, int):
        check_count(v, name)
    elif not -math.inf < v < math.inf:
        raise ValueError(f"{name}: {v} is not a finite number")


def _digits(text: str) -> bool:
    """ASCII digits only (str.isdigit() also takes '²' and other scripts' digits)."""
    return text.isascii() and text.isdigit()


def parse_int(text: str) -> Optional[int]:
    """'' -> None; ``12`` -> 12; anything else (a sign, spaces, '_', > 2^63-1) raises."""
    if not text:
        return None
    if not _digits(text) or len(text) > 19:
        raise ValueError(f"bad number {text[:40]!r}")
    return check_count(int(text))


class JobId(NamedTuple):
    job_id: str                 # the job part: '123', '123_4', '123_[5-9]', '123+0'
    step_id: Optional[str]      # 'batch', 'extern', '0', ... or None for the job row
    array_job_id: Optional[int]
    array_task_id: Optional[str]
    het_job_id: Optional[int]
    het_offset: Optional[int]


JOB_ID_PATTERN = r"\d+(?:_(?:\d+|\[[0-9,\-%:]+\]))?(?:\+\d+)?(?:\.[A-Za-z0-9_+\-]+)?"
_JOB_ID = re.compile(r"^(\d+)(?:_(\d+|\[[0-9,\-%:]+\]))?(?:\+(\d+))?(?:\.([A-Za-z0-9_+\-]+))?$")
_jobid_cache: Dict[str, JobId] = {}


def parse_job_id(text: str) -> JobId:
    """``123`` / ``123_4`` / ``123_[5-9%2]`` / ``123+0`` / ``123.batch`` / ``123_4.0`` -> JobId."""
    m = _JOB_ID.match(text)
    if m is None:
        raise ValueError("empty JobID" if not text else f"bad JobID {text[:40]!r}")
    base, task, het, step = m.groups()
    if len(base) > 19 or int(base) > INT64_MAX or (het is not None and (len(het) > 19 or int(het) > INT64_MAX)):
        raise ValueError(f"JobID {text[:40]!r}: number out of range (0..2^63-1)")
    job_id = text if step is None else text[: len(text) - len(step) - 1]
    if task is not None:
        return JobId(job_id, step, int(base), task, None, None)
    if het is not None:
        return JobId(job_id, step, None, None, int(base), int(het))
    return JobId(job_id, step, None, None, None, None)


_gpu_cache: Dict[str, Optional[int]] = {}


def _gpu_count(digits: str) -> int:
    if len(digits) > 19:
        raise ValueError(f"GPU count {digits[:40]} out of range (0..2^63-1)")
    return check_count(int(digits), "GPU count")
_GPU = re.compile(r"(?:^|,)gres/gpu(?::[^=,]*)?=(\d+)")


def tres_gpus(text: str) -> Optional[int]:
    """GPUs in a TRES string (``billing=4,cpu=4,gres/gpu=2,mem=8G,node=1`` -> 2); None if absent.
    Typed entries (``gres/gpu:a100=2``) are counted only when there is no untyped total."""
    hit = _gpu_cache.get(text, -1)
    if hit != -1:
        return hit  # type: ignore[return-value]
    res: Optional[int] = None
    if "gpu" in text:
        plain = re.search(r"(?:^|,)gres/gpu=(\d+)", text)
        if plain:
            res = _gpu_count(plain.group(1))
        else:
            typed = [_gpu_count(n) for n in _GPU.findall(text)]
            res = check_count(sum(typed), "GPU count") if typed else None
    if len(_gpu_cache) > _CACHE_MAX:
        _gpu_cache.clear()
    _gpu_cache[text] = res
    return res
