"""queue: pending/running jobs per partition, pending reasons, wait times, stuck jobs, fairshare.

ONE ``squeue`` call per cycle. ``squeue --json`` costs slurmctld one RPC (REQUEST_JOB_INFO); the
text form costs two (squeue also asks for the partition table), so JSON is used where squeue has
it and the text form where it does not (remembered for the daemon's life). JSON needs no
delimiter, so job names and comments (user text) cannot shift a field; the text format asks for
neither and puts the only free-ish field, the pending reason, last. Job arrays are counted by
task: a pending ``123_[1-20%4]`` record is 20 tasks. Fairshare (``sshare``, one more RPC) is read
by the slurm_health collector, in the cycles without ``sinfo`` (see docs/monitoring.md)."""

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import SlurmCommandError
from .base import CollectContext, Collector, Metric, register
from .external import clean_label, run_tool, setting

SQUEUE_FIELDS = ("%i", "%P", "%T", "%V", "%u", "%a", "%r")  # reason last: it may hold '|' or ','
SQUEUE_ARGV = ("squeue", "-h", "-a", "-o", "|".join(SQUEUE_FIELDS))
SQUEUE_JSON_ARGV = ("squeue", "-a", "--json")
SSHARE_ARGV = ("sshare", "-n", "-a", "-P", "-o", "Account,User,FairShare")
MAX_ARRAY_TASKS = 4000001   # Slurm's largest MaxArraySize: a bigger count is not a real array
_NO_JSON = re.compile(r"unrecognized option|invalid option|unknown option|json|serializ|data_parser|plugin",
                      re.IGNORECASE)
_ARRAY = re.compile(r"^\d+_\[([^\]]*)\]$")


@dataclass(frozen=True)
class QueueJob:
    job_id: str
    partition: str
    state: str
    submit_ts: Optional[float]
    user: str
    account: str
    reason: str
    tasks: int


def array_task_count(job_id: str) -> int:
    """Tasks a squeue job id stands for: ``123_[1-20%4]`` -> 20, ``123_[1,3,5-7]`` -> 5,
    ``123_[1-9:2]`` -> 5, else 1."""
    match = _ARRAY.match(job_id)
    if not match:
        return 1
    count = 0
    for part in match.group(1).split("%", 1)[0].split(","):
        rng = re.match(r"^(\d+)(?:-(\d+))?(?::(\d+))?$", part.strip())
        if rng:
            low, high = int(rng.group(1)), int(rng.group(2) or rng.group(1))
            count += max((high - low) // max(int(rng.group(3) or 1), 1) + 1, 0)
    return min(max(count, 1), MAX_ARRAY_TASKS)


def parse_time(text: str) -> Optional[float]:
    """squeue's time: epoch seconds (SLURM_TIME_FORMAT=%s) or local ISO ``2026-12-03T07:56:28``."""
    text = text.strip()
    if text.isdigit():
        return float(text)
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def parse_squeue(text: str) -> List[QueueJob]:
    """Lines of ``squeue -h -a -o SQUEUE_FORMAT``; lines that do not parse are skipped."""
    jobs = []
    for line in text.splitlines():
        fields = line.split("|", len(SQUEUE_FIELDS) - 1)
        if len(fields) != len(SQUEUE_FIELDS) or not re.match(r"^\d+(_\S+)?$", fields[0].strip()):
            continue
        job_id, partition, state, submit, user, account, reason = (f.strip() for f in fields)
        jobs.append(QueueJob(job_id, partition, state, parse_time(submit), user, account,
                             clean_label(reason.split(",", 1)[0]) or "None",
                             array_task_count(job_id)))
    return jobs


def _plain(value: Any) -> Any:
    """A data_parser value as a plain one: v0.0.39+ numbers come as {"set", "infinite",
    "number"} (unset -> None), v0.0.40+ states as lists of flags (first is the base state)."""
    if isinstance(value, dict):
        return value.get("number") if value.get("set", True) and not value.get("infinite") else None
    if isinstance(value, list):
        return value[0] if value else ""
    return value


def _text(value: Any) -> str:
    value = _plain(value)
    return value.strip() if isinstance(value, str) else ""


def parse_squeue_json(text: str) -> List[QueueJob]:
    """Jobs of ``squeue --json`` (data_parser v0.0.37 to v0.0.4x); records that do not parse are
    skipped. Raises ValueError when the text is not squeue's JSON at all."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("jobs"), list):
        raise ValueError("no 'jobs' list")
    jobs = []
    for rec in doc["jobs"]:
        if not isinstance(rec, dict):
            continue
        job_id = _plain(rec.get("job_id"))
        if isinstance(job_id, bool) or not isinstance(job_id, int):
            continue
        array = _text(rec.get("array_task_string"))
        task = _plain(rec.get("array_task_id"))
        if array:
            shown = f"{job_id}_[{array}]"
        elif isinstance(task, int) and not isinstance(task, bool) and _plain(rec.get("array_job_id")):
            shown = f"{_plain(rec.get('array_job_id'))}_{task}"
        else:
            shown = str(job_id)
        submit = _plain(rec.get("submit_time"))
        submit_ts = float(submit) if isinstance(submit, (int, float)) and submit > 0 else None
        jobs.append(QueueJob(shown, clean_label(_text(rec.get("partition"))), _text(rec.get("job_state")).upper(),
                             submit_ts, clean_label(_text(rec.get("user_name"))),
                             clean_label(_text(rec.get("account"))),
                             clean_label(_text(rec.get("state_reason")).split(",", 1)[0]) or "None",
                             array_task_count(shown)))
    return jobs


def read_queue(ctx: CollectContext, timeout: float) -> List[QueueJob]:
    """The queue from ONE squeue call: JSON where this squeue has it, else the text form."""
    if ctx.state.get("json", True):
        try:
            return parse_squeue_json(run_tool(ctx, SQUEUE_JSON_ARGV, timeout).stdout)
        except SlurmCommandError as exc:
            if exc.rc is None or not _NO_JSON.search(exc.stderr or ""):
                raise               # timed out, slurmctld down, ...: not a missing --json
        except ValueError:
            pass
        ctx.state["json"] = False   # no --json here (older squeue, no serializer plugin)
    return parse_squeue(run_tool(ctx, SQUEUE_ARGV, timeout).stdout)


def parse_sshare(text: str) -> List[Tuple[str, str, float]]:
    """(account, user, fairshare) from ``sshare -n -a -P -o Account,User,FairShare``; rows
    without a number (account totals of some versions) are skipped."""
    rows = []
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < 3:
            continue
        try:
            value = float(fields[2])
        except ValueError:
            continue
        rows.append((fields[0].strip(), fields[1].strip(), value))
    return rows


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty sequence."""
    rank = max(int(-(-q * len(sorted_values) // 100)), 1)
    return sorted_values[min(rank, len(sorted_values)) - 1]


def queue_metrics(jobs: Sequence[QueueJob], now: float, stuck_after_s: float) -> List[Metric]:
    pending: Dict[str, int] = {}
    running: Dict[str, int] = {}
    reasons: Dict[Tuple[str, str], int] = {}
    waits: List[float] = []
    for job in jobs:
        if job.state == "PENDING":
            pending[job.partition] = pending.get(job.partition, 0) + job.tasks
            key = (job.partition, job.reason)
            reasons[key] = reasons.get(key, 0) + job.tasks
            if job.submit_ts is not None:
                waits.extend([max(now - job.submit_ts, 0.0)] * min(job.tasks, 100000))
        elif job.state == "RUNNING":
            running[job.partition] = running.get(job.partition, 0) + job.tasks
    out = []
    for part in sorted(set(pending) | set(running)):
        out.append(Metric.of("queue.pending", pending.get(part, 0), partition=part))
        out.append(Metric.of("queue.running", running.get(part, 0), partition=part))
    for (part, reason), n in sorted(reasons.items()):
        out.append(Metric.of("queue.pending_by_reason", n, partition=part, reason=reason))
    waits.sort()
    if waits:
        out.append(Metric.of("queue.wait_p50_s", percentile(waits, 50)))
        out.append(Metric.of("queue.wait_p90_s", percentile(waits, 90)))
        out.append(Metric.of("queue.wait_max_s", waits[-1]))
    out.append(Metric.of("queue.stuck", sum(1 for w in waits if w > stuck_after_s)))
    return out


@register
class QueueCollector(Collector):
    name = "queue"
    help = "Pending/running jobs per partition, pending reasons, wait times, stuck jobs."
    interval_s = 60.0
    needs = "squeue (one call per cycle; --json where available)"

    def collect(self, ctx: CollectContext) -> List[Metric]:
        timeout = float(setting(ctx, self.name, "timeout_s"))
        stuck_h = float(setting(ctx, self.name, "stuck_after_h"))
        return queue_metrics(read_queue(ctx, timeout), ctx.now(), stuck_h * 3600.0)


def fairshare_metrics(ctx: CollectContext, timeout: float, every: float) -> List[Metric]:
    """queue.fairshare from ``sshare`` (one slurmctld RPC) when ``every`` seconds have passed
    since the last reading; fairshare moves slowly. A failing sshare gives nothing (it is extra)."""
    now = ctx.now()
    if every <= 0 or now < ctx.state.get("sshare_due", float("-inf")):
        return []
    ctx.state["sshare_due"] = now + every
    try:
        shares = parse_sshare(ctx.run(list(SSHARE_ARGV), timeout=timeout).stdout)
    except SlurmCommandError as exc:
        ctx.state["sshare_error"] = str(exc)
        return []
    ctx.state.pop("sshare_error", None)
    return [Metric.of("queue.fairshare", value, account=account, user=user) for account, user, value in shares]
