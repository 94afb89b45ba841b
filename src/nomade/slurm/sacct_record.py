"""Turning ``sacct -P`` rows into JobRecords: one job row plus the step rows that follow it.

sacct prints a job row (``123``, ``123_4``, ``123+0``) followed by its steps (``123.batch``,
``123.extern``, ``123.0``). Resource use lives on the step rows, so a job's ``max_rss_mb`` is the
maximum over its steps (and its own row, if it has a value) and ``total_cpu_s`` is the job row's
TotalCPU, or the sum over the steps when the job row has none.

With ``sacct -D`` a requeued job appears once per run, oldest first; a job row with the id of the
job being assembled starts over (the newer run wins, its steps replace the older run's).
"""

import re
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..jobrecord import REQ_MEM_JOB, JobRecord, StepRecord
from .sacct_fields import (parse_duration, parse_exit, parse_int, parse_job_id, parse_mem,
                           parse_state_field, parse_time, parse_timelimit, tres_gpus)
from .sacct_text import RawRow, header_values

# field name (lower case) -> parser used only to name the field in a quarantine reason
_CHECKS: Dict[str, Callable[[str], object]] = {
    "jobid": parse_job_id, "jobidraw": parse_int, "uid": parse_int, "state": parse_state_field,
    "exitcode": parse_exit, "derivedexitcode": parse_exit, "submit": parse_time,
    "eligible": parse_time, "start": parse_time, "end": parse_time, "elapsed": parse_duration,
    "timelimit": parse_timelimit, "reqmem": parse_mem, "reqcpus": parse_int,
    "reqnodes": parse_int, "alloccpus": parse_int, "ncpus": parse_int, "nnodes": parse_int,
    "maxrss": lambda t: parse_mem(t, "K"), "totalcpu": parse_duration,
    "reqtres": tres_gpus, "alloctres": tres_gpus, "ntasks": parse_int,
}

_STEP_KEYS = frozenset({"jobid", "state", "exitcode", "start", "end", "elapsed", "alloccpus",
                        "ncpus", "maxrss", "totalcpu", "ntasks"})

_STEP_ID = re.compile(r"[A-Za-z0-9_+\-]+$")

# a quarantined row: (location, reason, raw text)
Bad = Tuple[str, str, str]


class RowMapper:
    """Maps a row's values to JobRecord / StepRecord fields by position (from the header)."""

    def __init__(self, fields: Sequence[str], cluster: Optional[str]):
        keys = [f.strip().lower() for f in fields]
        self.n = len(keys)

        def ix(*names: str) -> int:
            for name in names:
                if name in keys:
                    return keys.index(name)
            return -1  # the '' appended to every row

        self.cluster = cluster
        self.keys = keys
        self.names = [f.strip() for f in fields]
        (self.i_jobid, self.i_raw, self.i_cluster, self.i_name, self.i_user, self.i_uid,
         self.i_group, self.i_account, self.i_partition, self.i_qos, self.i_state, self.i_exit,
         self.i_dexit, self.i_submit, self.i_eligible, self.i_start, self.i_end, self.i_elapsed,
         self.i_limit, self.i_reqmem, self.i_reqcpus, self.i_reqnodes, self.i_reqtres,
         self.i_alloccpus, self.i_nnodes, self.i_alloctres, self.i_nodelist, self.i_maxrss,
         self.i_totalcpu, self.i_workdir, self.i_submitline, self.i_ntasks, self.i_tres_tot,
         self.i_tres_max) = (
            ix("jobid"), ix("jobidraw"), ix("cluster"), ix("jobname"), ix("user"), ix("uid"),
            ix("group"), ix("account"), ix("partition"), ix("qos"), ix("state"), ix("exitcode"),
            ix("derivedexitcode"), ix("submit"), ix("eligible"), ix("start"), ix("end"),
            ix("elapsed"), ix("timelimit"), ix("reqmem"), ix("reqcpus"), ix("reqnodes"),
            ix("reqtres"), ix("alloccpus", "ncpus"), ix("nnodes"), ix("alloctres"),
            ix("nodelist"), ix("maxrss"), ix("totalcpu"), ix("workdir"), ix("submitline"),
            ix("ntasks"), ix("tresusageintot"), ix("tresusageinmax"))

    def job(self, v: List[str], jid) -> JobRecord:
        """``v``: the row's values with '' appended. Raises ValueError on a bad value."""
        state, by, final = parse_state_field(v[self.i_state])
        code, sig = parse_exit(v[self.i_exit])
        dcode, dsig = parse_exit(v[self.i_dexit])
        limit_s, limit_raw = parse_timelimit(v[self.i_limit])
        mem, per_cpu = parse_mem(v[self.i_reqmem])
        elapsed = parse_duration(v[self.i_elapsed])
        reqtres = v[self.i_reqtres]
        alloctres = v[self.i_alloctres]
        rss = v[self.i_maxrss]
        cpu = v[self.i_totalcpu]
        cluster = self.cluster or v[self.i_cluster] or "default"
        return JobRecord(
            cluster, jid.job_id, parse_int(v[self.i_raw]), jid.array_job_id, jid.array_task_id,
            jid.het_job_id, jid.het_offset, v[self.i_name] or None, v[self.i_user] or None,
            parse_int(v[self.i_uid]), v[self.i_group] or None, v[self.i_account] or None,
            v[self.i_partition] or None, v[self.i_qos] or None,
            parse_time(v[self.i_submit]), parse_time(v[self.i_eligible]),
            parse_int(v[self.i_reqcpus]), parse_int(v[self.i_reqnodes]),
            mem, per_cpu if per_cpu is not None or mem is None else REQ_MEM_JOB,
            limit_s, limit_raw, tres_gpus(reqtres or alloctres), reqtres or None,
            v[self.i_workdir] or None, v[self.i_submitline] or None,
            state, v[self.i_state] or None, by, final, code, sig, dcode, dsig,
            parse_time(v[self.i_start]), parse_time(v[self.i_end]),
            None if elapsed is None else int(elapsed),
            parse_int(v[self.i_alloccpus]), parse_int(v[self.i_nnodes]),
            v[self.i_nodelist] or None, alloctres or None,
            parse_duration(cpu) if cpu else None,
            parse_mem(rss, "K")[0] if rss else None,
        )

    def step(self, v: List[str], step_id: str) -> StepRecord:
        state, _by, _final = parse_state_field(v[self.i_state])
        code, sig = parse_exit(v[self.i_exit])
        elapsed = parse_duration(v[self.i_elapsed])
        rss = v[self.i_maxrss]
        cpu = v[self.i_totalcpu]
        return StepRecord(
            step_id, v[self.i_name] or None, state, v[self.i_state] or None, code, sig,
            parse_time(v[self.i_start]), parse_time(v[self.i_end]),
            None if elapsed is None else int(elapsed), parse_int(v[self.i_alloccpus]),
            v[self.i_alloctres] or None, v[self.i_nodelist] or None,
            parse_mem(rss, "K")[0] if rss else None,
            parse_duration(cpu) if cpu else None,
            parse_int(v[self.i_ntasks]), v[self.i_tres_tot] or None, v[self.i_tres_max] or None,
        )

    def explain(self, v: List[str], is_step: bool = False) -> str:
        """Name the first field whose value does not parse (for the quarantine reason)."""
        for i, key in enumerate(self.keys):
            check = _CHECKS.get(key)
            if check is None or (is_step and key not in _STEP_KEYS):
                continue
            try:
                check(v[i])
            except ValueError as exc:
                return f"{self.names[i]}: {exc}"
        return "unreadable row"


def finish(rec: JobRecord) -> JobRecord:
    """Aggregate step use into the job: max RSS over steps; TotalCPU from the job row or the sum."""
    if rec.steps:
        rss = [s.max_rss_mb for s in rec.steps if s.max_rss_mb is not None]
        if rss:
            rec.max_rss_mb = max(rss + ([rec.max_rss_mb] if rec.max_rss_mb is not None else []))
        if rec.total_cpu_s is None:
            cpu = [s.total_cpu_s for s in rec.steps if s.total_cpu_s is not None]
            if cpu:
                rec.total_cpu_s = sum(cpu)
    return rec


def assemble(rows: Iterable[RawRow], mapper: RowMapper,
             bad: List[Bad]) -> Iterator[Tuple[JobRecord, List[List[str]]]]:
    """Group rows into finished JobRecords, each with the values of the rows it was read from.
    Bad rows are appended to ``bad`` (location, reason, raw) and skipped; a step row whose job row
    is not the one just before it (missing, or quarantined) is bad too."""
    cur: Optional[JobRecord] = None
    cur_rows: List[List[str]] = []
    prefix = "\0"  # '<job id>.' of the job being assembled: its step rows skip the JobID regex
    i_jobid = mapper.i_jobid
    for row in rows:
        if row.values is None:
            bad.append((f"line {row.line}", row.error or "unreadable row", row.text))
            continue
        v = row.values
        v.append("")
        text = v[i_jobid]
        try:
            if text.startswith(prefix) and _STEP_ID.match(text, len(prefix)) is not None:
                cur.steps.append(mapper.step(v, text[len(prefix):]))  # type: ignore[union-attr]
                cur_rows.append(v)
                continue
            jid = parse_job_id(text)
            if jid.step_id is None:
                rec = mapper.job(v, jid)
            else:
                mapper.step(v, jid.step_id)     # parsed only to find its bad values
        except ValueError:
            if header_values(v[:-1]) is not None:
                continue    # a header line repeated inside the dump (dumps appended): not data
            bad.append((f"line {row.line}", mapper.explain(v, "." in text), row.text))
            if "." not in text:
                # a quarantined job row ends the job before it: the steps that follow are its own
                if cur is not None:
                    yield finish(cur), cur_rows
                cur, cur_rows, prefix = None, [], "\0"
            continue
        if jid.step_id is None:
            if cur is not None and cur.job_id != rec.job_id:
                yield finish(cur), cur_rows
            cur, cur_rows = rec, [v]
            prefix = rec.job_id + "."
        else:
            bad.append((f"line {row.line}",
                        f"step {jid.job_id}.{jid.step_id} without its job row just before it "
                        f"(the job row is missing or was quarantined)", row.text))
    if cur is not None:
        yield finish(cur), cur_rows
