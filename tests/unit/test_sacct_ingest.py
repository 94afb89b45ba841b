"""`nomade ingest sacct`: dumps, sacct --json, live/incremental runs (run_command replaced)."""

import gzip
import io
import json
import re
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from nomade.cli.main import cli
from nomade.command import CommandResult
from nomade.errors import IngestError, SlurmCommandError
from nomade.ingest import sacct as ing
from nomade.progress import Progress
from nomade.slurm.sacct_text import SacctText
from nomade.store.db import open_store
from nomade.store.jobs import get_high_water

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "sacct"
SAMPLE_FIELDS = ("JobID,JobName,User,Account,Partition,State,ExitCode,Submit,Start,End,Elapsed,"
                 "Timelimit,ReqMem,NNodes,AllocTRES,NCPUS,MaxRSS,TotalCPU")


@pytest.fixture
def store(store_target):
    """A store on each engine: SQLite, then PostgreSQL (tests/pg_fixture.py)."""
    s = open_store(store_target)
    yield s
    s.close()


def job(store, job_id, cluster=None):
    q = "SELECT * FROM jobs WHERE job_id = ?" + (" AND cluster = ?" if cluster else "")
    row = store.conn.execute(q, (job_id, cluster) if cluster else (job_id,)).fetchone()
    assert row is not None, f"job {job_id} not stored"
    return dict(row)


def steps(store, job_id):
    return {r["step_id"]: dict(r) for r in store.conn.execute(
        "SELECT * FROM job_steps WHERE job_id = ?", (job_id,))}


def quarantined(store):
    return [dict(r) for r in store.conn.execute("SELECT * FROM quarantine ORDER BY id")]


# ---------------------------------------------------------------- real captures (Slurm 22.05)

def test_real_state_matrix_dump(store):
    res = ing.ingest_file(store, str(FIX / "real_state_matrix_p.txt"))
    cases = json.loads((FIX / "real_state_matrix_cases.json").read_text())
    assert res.counts.quarantined == 0
    assert res.counts.new == 14  # 12 cases, the array has 3 tasks
    by_case = {name: job(store, jid) for name, jid in cases.items() if name != "array_alice"}
    assert by_case["node_fail_root"]["state"] == "NODE_FAIL"
    assert by_case["timeout_root"]["state"] == "TIMEOUT" and by_case["timeout_root"]["timelimit_s"] == 60
    assert by_case["failed_exit3_alice"]["exit_code"] == 3
    assert by_case["oom_root"]["state"] == "OUT_OF_MEMORY" and by_case["oom_root"]["exit_signal"] == 125
    assert by_case["cancel_running_alice"]["cancelled_by"] == 0
    pend = by_case["cancel_pending_alice"]
    assert pend["cancelled_by"] == 1001 and pend["timelimit_raw"] == "Partition_Limit"
    assert pend["eligible_time"] is None and pend["is_final"] == 1
    assert all(r["cluster"] == "lab" and r["is_final"] == 1 for r in by_case.values())
    # srun steps: max RSS over steps, TotalCPU from the job row
    st = steps(store, cases["srun_steps_root"])
    assert set(st) == {"batch", "0", "1"} and st["1"]["state"] == "FAILED"
    srun = by_case["srun_steps_root"]
    assert srun["max_rss_mb"] == pytest.approx(3300 / 1024)
    assert srun["total_cpu_s"] == pytest.approx(0.033)
    assert srun["derived_exit_code"] == 1
    # array tasks: job ids 10_1.. with their own raw ids
    arr = job(store, "10_1")
    assert arr["array_job_id"] == 10 and arr["array_task_id"] == "1" and arr["job_id_raw"] == 15
    assert job(store, "10_2")["state"] == "FAILED"
    # a '|' and unicode in the name, a '|' and a newline in the submit line
    weird = by_case["weird_name_alice"]
    assert weird["name"] == "naïve ünïcode | job with spaces"
    assert weird["work_dir"] == "/tmp"
    assert "echo 'line one'\necho \"line | two\"" in weird["submit_line"]
    assert "batch" in steps(store, cases["weird_name_alice"])


def test_real_json_matches_text_for_the_same_jobs(tmp_path):
    a = open_store(tmp_path / "text.db")
    b = open_store(tmp_path / "json.db")
    ing.ingest_file(a, str(FIX / "real_state_matrix_p.txt"))
    res = ing.ingest_json_file(b, str(FIX / "real_state_matrix.json"))
    assert res.counts.new == 14 and res.counts.quarantined == 0
    for jid in ("3", "4", "8", "10_1", "11", "12", "14"):
        t, j = job(a, jid), job(b, jid)
        for col in ("cluster", "name", "user", "state", "submit_time", "start_time", "end_time",
                    "timelimit_s", "req_mem_mb", "alloc_cpus", "array_job_id", "array_task_id"):
            assert t[col] == j[col], (jid, col)
        if j["max_rss_mb"] is None:
            assert t["max_rss_mb"] is None, jid
        else:
            assert t["max_rss_mb"] == pytest.approx(j["max_rss_mb"], rel=0.01), jid
    a.close()
    b.close()


def test_shared_sample_json_job9(store):
    res = ing.ingest_json_file(store, str(FIX / "lab_22.05_oom_cgroup_job9.json"))
    assert res.counts.as_dict() == {"new": 1, "updated": 0, "unchanged": 0, "quarantined": 0}
    r = job(store, "9")
    assert (r["cluster"], r["state"], r["exit_signal"], r["timelimit_raw"]) == ("lab", "OUT_OF_MEMORY", 125, "UNLIMITED")
    assert r["max_rss_mb"] == pytest.approx(1072 / 1024)
    assert r["total_cpu_s"] == pytest.approx(0.152436)
    assert r["work_dir"] == "/home/alice/jobs" and r["source"] == "sacct-json"


def test_shared_sample_with_and_without_header(tmp_path, store):
    res = ing.ingest_file(store, str(FIX / "lab_22.05_mixed_outcomes.txt"))
    assert res.counts.new == 13 and res.counts.quarantined == 0
    assert job(store, "7")["max_rss_mb"] == pytest.approx(629336 / 1024)
    assert job(store, "6")["timelimit_raw"] == "Partition_Limit"
    assert job(store, "10")["state_raw"] == "CANCELLED by 0"
    assert job(store, "2")["total_cpu_s"] == pytest.approx(0.509)
    headerless = tmp_path / "noheader.txt"
    headerless.write_text("".join((FIX / "lab_22.05_mixed_outcomes.txt").read_text().splitlines(True)[1:]))
    with pytest.raises(IngestError, match="no header"):
        ing.ingest_file(store, str(headerless))
    again = ing.ingest_file(store, str(headerless), fields=SAMPLE_FIELDS.split(","))
    assert again.counts.unchanged == 13 and again.counts.new == 0


def test_gzip_dump(tmp_path, store):
    gz = tmp_path / "dump.txt.gz"
    gz.write_bytes(gzip.compress((FIX / "real_state_matrix_p.txt").read_bytes()))
    assert ing.ingest_file(store, str(gz)).counts.new == 14


# ---------------------------------------------------------------- hand-made edge cases

def test_malformed_rows_are_quarantined_and_good_rows_land(store):
    res = ing.ingest_file(store, str(FIX / "handmade_malformed_dump.txt"))
    assert res.counts.new == 2
    assert res.counts.quarantined == 6
    assert {r["job_id"] for r in store.conn.execute("SELECT job_id FROM jobs")} == {"100", "106"}
    q = quarantined(store)
    reasons = [r["reason"] for r in q]
    assert reasons[0].startswith("Submit: bad time")
    assert reasons[1].startswith("ReqMem: bad memory '12Q'")
    assert reasons[2].startswith("wrong field count: 6 fields, expected 23")
    assert reasons[3].startswith("State: unknown job state 'EXPLODED'")
    assert reasons[4] == "JobID: empty JobID"
    assert reasons[5].startswith("wrong field count")  # the binary garbage line
    assert [r["location"] for r in q] == ["line 4", "line 5", "line 6", "line 7", "line 8", "line 9"]
    assert "bad_time" in q[0]["raw"] and q[0]["source"].startswith("sacct-file:")
    assert steps(store, "100")["batch"]["max_rss_mb"] == 1.0
    # quarantined once per raw text: re-ingest counts them again but stores nothing twice
    res2 = ing.ingest_file(store, str(FIX / "handmade_malformed_dump.txt"))
    assert res2.counts.unchanged == 2 and len(quarantined(store)) == 6


def test_pipes_newlines_unicode(store):
    res = ing.ingest_file(store, str(FIX / "handmade_pipes_newlines_unicode.txt"))
    assert res.counts.quarantined == 0 and res.counts.new == 6
    assert job(store, "200")["name"] == "a|b" and job(store, "200")["work_dir"] == "/home/alice/p"
    assert "batch" in steps(store, "200")
    r = job(store, "201")
    assert r["name"] == "日本語 ジョブ" and r["work_dir"] == "/home/alice/my dir"
    assert r["submit_line"] == "sbatch --wrap=cat in | sort | uniq"
    assert job(store, "202")["submit_line"] == "sbatch --wrap='echo 1\necho 2\n'"
    assert "batch" in steps(store, "202")
    assert job(store, "203")["name"] == "x\ny"
    # documented limit: a '|' in WorkDir is given to SubmitLine
    r = job(store, "204")
    assert (r["name"], r["work_dir"], r["submit_line"]) == ("café", "/home/alice/r", "s|sbatch r.sh")
    assert job(store, "205")["submit_line"] is None


def test_arrays_het_steps_requeue_and_odd_values(store):
    res = ing.ingest_file(store, str(FIX / "handmade_arrays_het_requeue.txt"))
    assert res.counts.quarantined == 0
    a1 = job(store, "300_1")
    assert (a1["array_job_id"], a1["array_task_id"], a1["job_id_raw"]) == (300, "1", 301)
    assert a1["max_rss_mb"] == 3 * 1024  # max over batch (2 MiB), extern (0), .0 (3G)
    assert a1["total_cpu_s"] == 300.0  # the job row's TotalCPU wins
    a2 = job(store, "300_2")
    assert a2["total_cpu_s"] == 30.0 and a2["max_rss_mb"] == 100.0  # no job TotalCPU: sum of steps
    rng = job(store, "300_[3-5%2]")
    assert rng["array_task_id"] == "[3-5%2]" and rng["is_final"] == 0 and rng["start_time"] is None
    h0, h1 = job(store, "310+0"), job(store, "310+1")
    assert (h0["het_job_id"], h0["het_offset"], h1["het_offset"], h1["job_id_raw"]) == (310, 0, 1, 311)
    assert set(steps(store, "310+1")) == {"0"}
    rq = job(store, "320")  # -D: the newer run replaces the requeued one, with its own steps
    assert rq["state"] == "COMPLETED" and rq["max_rss_mb"] == 5.0
    assert set(steps(store, "320")) == {"batch", "extern"}
    run = job(store, "330")
    assert (run["is_final"], run["end_time"], run["timelimit_raw"], run["elapsed_s"]) == (0, None, "UNLIMITED", 93784)
    pend = job(store, "331")
    assert (pend["req_mem_mb"], pend["req_mem_per_cpu"], pend["timelimit_s"]) == (2000.0, 1, None)
    can = job(store, "332")
    assert (can["state"], can["cancelled_by"], can["req_mem_per_cpu"], can["timelimit_raw"]) == ("CANCELLED", 1234, 0, "INVALID")
    assert job(store, "333")["timelimit_s"] == 123
    assert job(store, "334")["req_mem_mb"] == 1536.0
    for jid, state in (("335", "NODE_FAIL"), ("336", "PREEMPTED"), ("337", "BOOT_FAIL"), ("338", "DEADLINE")):
        assert (job(store, jid)["state"], job(store, jid)["is_final"]) == (state, 1)


def test_ingest_twice_is_idempotent(store):
    first = ing.ingest_file(store, str(FIX / "handmade_arrays_het_requeue.txt"), batch_size=3)
    second = ing.ingest_file(store, str(FIX / "handmade_arrays_het_requeue.txt"), batch_size=3)
    n = store.conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
    assert first.counts.new == n and second.counts.new == 0 and second.counts.updated == 0
    assert second.counts.unchanged == n
    assert store.conn.execute("SELECT count(*) FROM job_steps").fetchone()[0] == 9


def test_reader_handles_a_free_text_field_in_the_middle():
    text = "JobID|JobName|State\n1|a|b|COMPLETED\n2|x\ny|FAILED\n"
    rows = list(SacctText(io.StringIO(text)))
    assert [r.values for r in rows] == [["1", "a|b", "COMPLETED"], ["2", "x\ny", "FAILED"]]
    assert [r.line for r in rows] == [2, 3]


# ---------------------------------------------------------------- live, incremental

LIVE_DEFAULTS = dict(JobIDRaw="", Cluster="lab", User="alice", UID="1001", Group="alice",
                     Account="research", Partition="debug", QOS="normal", ExitCode="0:0",
                     DerivedExitCode="0:0", Submit="2026-11-21T10:00:00", Eligible="2026-11-21T10:00:00",
                     Start="2026-11-21T10:00:05", End="2026-11-21T10:10:05", Elapsed="00:10:00",
                     Timelimit="01:00:00", ReqMem="500M", ReqCPUS="1", ReqNodes="1",
                     ReqTRES="billing=1,cpu=1,mem=500M,node=1", AllocCPUS="1", NNodes="1",
                     AllocTRES="billing=1,cpu=1,mem=500M,node=1", NodeList="vm", MaxRSS="",
                     TotalCPU="00:01:00", JobName="j", WorkDir="/tmp", SubmitLine="sbatch j.sh | x")


def live_output(rows, fields=ing.LIVE_FIELDS, d="\x1f"):
    lines = [d.join(fields)]
    for r in rows:
        vals = dict(LIVE_DEFAULTS, **r)
        lines.append(d.join(vals.get(f, "") for f in fields))
    return "\n".join(lines) + "\n"


class FakeSacct:
    def __init__(self, outputs, reject=()):
        self.outputs = list(outputs)
        self.calls = []
        self.reject = set(reject)

    def __call__(self, argv, timeout, check=True, env=None, input_text=None):
        self.calls.append(list(argv))
        assert timeout == 30.0 and env["SLURM_TIME_FORMAT"] == "standard"
        fmt = next(a for a in argv if a.startswith("--format="))[len("--format="):].split(",")
        for bad in self.reject:
            if bad in fmt:
                raise SlurmCommandError(argv, 1, f'sacct: error: Invalid field requested: "{bad}"')
        rows = self.outputs.pop(0)
        delimiter = next(a for a in argv if a.startswith("--delimiter="))[len("--delimiter="):]
        return CommandResult(argv, 0, live_output(rows, fmt, delimiter), "")


def arg_after(argv, flag):
    return argv[argv.index(flag) + 1]


def test_live_incremental_high_water_overlap_and_pending_to_final(store, monkeypatch):
    fake = FakeSacct([
        [dict(JobID="1", State="COMPLETED"), dict(JobID="1.batch", State="COMPLETED", MaxRSS="2048K"),
         dict(JobID="2", State="PENDING", Start="Unknown", End="Unknown")],
        # overlapping window: job 1 again (unchanged), job 2 now running
        [dict(JobID="1", State="COMPLETED"), dict(JobID="1.batch", State="COMPLETED", MaxRSS="2048K"),
         dict(JobID="2", State="RUNNING", End="Unknown")],
        [dict(JobID="2", State="FAILED", ExitCode="2:0")],
        # an old snapshot arriving late never replaces the final record
        [dict(JobID="2", State="RUNNING", End="Unknown")],
    ])
    monkeypatch.setattr(ing, "run_command", fake)
    kw = dict(sacct="sacct", cluster=None, timeout=30.0, overlap_s=3600, lookback_days=7)
    t0 = 1_800_000_000.0
    r1 = ing.ingest_live(store, now=t0, **kw)
    argv = fake.calls[0]
    assert argv[:4] == ["sacct", "-a", "-D", "-P"]
    assert re.fullmatch("--delimiter=\x1f[0-9a-f]{32}", argv[4])
    assert arg_after(argv, "-S") == time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0 - 7 * 86400))
    assert arg_after(argv, "-E") == "now"
    assert set(arg_after(argv, "-s").split(",")) >= {"CA", "CD", "F", "TO", "OOM", "NF", "PD", "R", "PR"}
    assert r1.counts.as_dict() == {"new": 2, "updated": 0, "unchanged": 0, "quarantined": 0}
    assert get_high_water(store, "sacct:default") == t0
    assert job(store, "1")["submit_line"] == "sbatch j.sh | x"

    r2 = ing.ingest_live(store, now=t0 + 600, **kw)
    assert arg_after(fake.calls[1], "-S") == time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0 - 3600))
    assert (r2.counts.new, r2.counts.updated, r2.counts.unchanged) == (0, 1, 1)
    assert job(store, "2")["state"] == "RUNNING"

    r3 = ing.ingest_live(store, now=t0 + 1200, **kw)
    assert r3.counts.updated == 1 and job(store, "2")["state"] == "FAILED" and job(store, "2")["exit_code"] == 2
    r4 = ing.ingest_live(store, now=t0 + 1800, **kw)
    assert r4.counts.unchanged == 1 and job(store, "2")["state"] == "FAILED"
    assert store.conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 2
    assert get_high_water(store, "sacct:default") == t0 + 1800


def test_live_drops_fields_this_sacct_does_not_know(store, monkeypatch):
    fake = FakeSacct([[dict(JobID="5", State="COMPLETED")]], reject={"SubmitLine"})
    monkeypatch.setattr(ing, "run_command", fake)
    res = ing.ingest_live(store, cluster="site", timeout=30.0, now=1_800_000_000.0)
    assert len(fake.calls) == 2 and "SubmitLine" not in fake.calls[1][5]
    assert res.counts.new == 1 and job(store, "5", "site")["submit_line"] is None
    assert get_high_water(store, "sacct:site") == 1_800_000_000.0


def test_live_sacct_failure_is_raised_and_mark_not_moved(store, monkeypatch):
    def broken(argv, timeout, **kw):
        raise SlurmCommandError(argv, 1, "sacct: error: Problem talking to the database")
    monkeypatch.setattr(ing, "run_command", broken)
    with pytest.raises(SlurmCommandError, match="database"):
        ing.ingest_live(store, timeout=30.0)
    assert get_high_water(store, "sacct:default") is None


# ---------------------------------------------------------------- CLI

def test_cli_file_json_file_and_summary(tmp_path):
    runner = CliRunner()
    args = ["--data-dir", str(tmp_path), "ingest", "sacct"]
    r = runner.invoke(cli, args + ["--file", str(FIX / "handmade_malformed_dump.txt")])
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1] == "sacct: 2 new, 0 updated, 0 unchanged, 6 quarantined"
    r = runner.invoke(cli, args + ["--file", str(FIX / "handmade_malformed_dump.txt"), "--json"])
    assert json.loads(r.output)["unchanged"] == 2
    r = runner.invoke(cli, args + ["--json-file", str(FIX / "lab_22.05_oom_cgroup_job9.json")])
    assert r.output.strip() == "sacct: 1 new, 0 updated, 0 unchanged, 0 quarantined"
    r = runner.invoke(cli, args + ["--file", "-", "--format", SAMPLE_FIELDS],
                      input="".join((FIX / "lab_22.05_mixed_outcomes.txt").read_text().splitlines(True)[1:]))
    assert r.exit_code == 0, r.output
    assert "13 new" in r.output
    con = sqlite3.connect(tmp_path / "nomade.db")
    assert con.execute("SELECT count(*) FROM jobs").fetchone()[0] == 2 + 1 + 13


def test_cli_errors_are_one_line(tmp_path):
    from nomade.cli.main import run_cli
    assert run_cli(cli, ["--data-dir", str(tmp_path), "ingest", "sacct", "--file", str(tmp_path / "nope.txt")]) == 1
    headerless = tmp_path / "h.txt"
    headerless.write_text("1|wrap|root\n")
    assert run_cli(cli, ["--data-dir", str(tmp_path), "ingest", "sacct", "--file", str(headerless)]) == 1


def test_progress_is_silent_when_not_a_terminal():
    buf = io.StringIO()
    p = Progress("sacct", stream=buf, every_s=0)
    p(10)
    p.done()
    assert buf.getvalue() == ""
    shown = Progress("sacct", stream=buf, enabled=True, every_s=0)
    shown(1234)
    shown.done()
    assert "sacct: 1,234 rows" in buf.getvalue()


def test_reader_streams_without_reading_ahead():
    consumed = []

    def lines():
        yield "JobID|State|JobName\n"
        for i in range(1, 10**9):
            consumed.append(i)
            yield f"{i}|COMPLETED|n{i}\n"

    it = iter(SacctText(lines()))
    first = next(it)
    assert first.values == ["1", "COMPLETED", "n1"]
    assert len(consumed) <= 2  # one line of look-ahead for continuation lines
