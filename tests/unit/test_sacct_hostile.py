"""Hostile sacct input: forged rows through free-text fields (live and saved dumps), rows that
contradict the store or each other about a job's owner, and integers a SQLite INTEGER cannot hold
(2^63 and more) or that mean nothing (negative uids). Bad rows are quarantined with their reason,
ingestion goes on; every case through the three ways of writing (C reader + C writer, C reader +
write_rows, Python reader), sacct --json and SWF."""

import io
import json
import re
from pathlib import Path

import pytest

from nomade.command import CommandResult
from nomade.ingest import sacct as ing
from nomade.ingest import swf
from nomade.slurm import sacct_fields as F
from nomade.slurm import sacct_scan
from nomade.store.db import open_store
from nomade.store.jobs import get_high_water

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "sacct"
BIG = 2 ** 63
PATHS = ["c_reader_c_writer", "c_reader_write_rows", "python_reader"]


@pytest.fixture
def store(store_target):
    s = open_store(store_target)   # SQLite, then PostgreSQL (tests/pg_fixture.py)
    yield s
    s.close()


def ingest(store, text, way, monkeypatch, qsource="test", **kw):
    if way != "python_reader" and sacct_scan._sacct_scan is None:
        pytest.skip("the C reader is not built")
    monkeypatch.setattr(ing, "C_WRITER", way == "c_reader_c_writer")
    return ing.ingest_text(store, io.StringIO(text, newline="\n"), qsource=qsource,
                           fast=way != "python_reader", **kw)


def jobs(store):
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in
            store.conn.execute("SELECT job_id, user, uid, name, submit_line FROM jobs")}


def quarantined(store):
    return [(r[0], r[1]) for r in store.conn.execute("SELECT location, reason FROM quarantine ORDER BY id")]


# ---------------------------------------------------------------- item 10: integers out of range

@pytest.mark.parametrize("text", [str(BIG), "99999999999999999999999", "-1", "+1", "1_000", " 1",
                                  "\u0661\u0662", "1\n2", "1|2", "\x001"])
def test_parse_int_refuses_what_the_store_cannot_hold_or_is_not_a_count(text):
    with pytest.raises(ValueError):
        F.parse_int(text)


def test_parse_int_keeps_the_largest_integer():
    assert F.parse_int(str(BIG - 1)) == BIG - 1 and F.parse_int("0") == 0


@pytest.mark.parametrize("parse,text", [
    (F.parse_job_id, str(BIG)), (F.parse_job_id, f"12+{BIG}"), (F.parse_job_id, f"{BIG}_3"),
    (F.parse_exit, f"{BIG}:0"), (F.parse_exit, f"0:{BIG}"), (F.parse_state_field, f"CANCELLED by {BIG}"),
    (F.tres_gpus, f"cpu=1,gres/gpu={BIG}"), (F.tres_gpus, f"gres/gpu:a100={BIG - 1},gres/gpu:v100=1"),
    (F.parse_duration, "9" * 30 + "-00:00:00"), (F.parse_duration, "9" * 400 + ":00:00"),
    (F.parse_timelimit, "9" * 30 + "-00:00:00"), (F.parse_mem, "1e999M"), (F.parse_mem, "nanM"),
])
def test_value_parsers_raise_valueerror_for_huge_numbers(parse, text):
    with pytest.raises(ValueError):
        parse(text)


@pytest.mark.parametrize("way", PATHS)
def test_integers_of_2p63_in_a_dump_are_quarantined_not_fatal(store, monkeypatch, way):
    text = (FIX / "hostile_integers_2p63_quarantined.txt").read_text(encoding="utf-8")
    res = ingest(store, text, way, monkeypatch, batch_size=3)
    got = jobs(store)
    assert set(got) == {"100", "114"}
    # in a '|' dump a line that starts like a row starts one (the documented limit): the short
    # fragment is quarantined, never stored as bob's job 115
    assert got["114"][:3] == ("alice", 1001, "ok after\nbob|1002|line") and got["114"][3] == "sbatch x"
    reasons = dict(quarantined(store))
    assert res.counts.quarantined == len(reasons) == 15   # with the orphaned step 101.batch
    assert reasons["line 20"].startswith("wrong field count")
    for name in ("UID", "ReqCPUS", "AllocCPUS", "JobIDRaw", "ExitCode", "State", "ReqTRES",
                 "Elapsed", "ReqMem", "NNodes"):
        assert any(r.startswith(name + ":") for r in reasons.values()), name
    assert sum(r.startswith("JobID:") for r in reasons.values()) == 2       # het offset, job id
    assert any("out of range" in r for r in reasons.values())


def test_live_run_with_a_2p63_uid_quarantines_it_and_moves_the_mark(store, monkeypatch):
    fake = FakeSacct([[dict(JobID="1"), dict(JobID="2", UID=str(BIG)), dict(JobID="3", AllocCPUS=str(BIG * 4))]])
    monkeypatch.setattr(ing, "run_command", fake)
    res = ing.ingest_live(store, timeout=30.0, now=1_800_000_000.0)
    assert set(jobs(store)) == {"1"} and res.counts.quarantined == 2
    assert get_high_water(store, "sacct:default") == 1_800_000_000.0


def _json_job(job_id, **over):
    job = {"job_id": job_id, "user": "alice", "group": "alice", "cluster": "lab", "name": "n\nx|y",
           "state": {"current": "COMPLETED"}, "exit_code": {"status": "SUCCESS", "return_code": 0},
           "required": {"CPUs": 1, "memory": 500}, "time": {"submission": 1_800_000_000, "start": 1_800_000_005,
                                                            "end": 1_800_000_600, "elapsed": 595, "limit": 60},
           "tres": {"allocated": [{"type": "cpu", "count": 1}], "requested": [{"type": "node", "count": 1}]},
           "steps": []}
    job.update(over)
    return job


def test_json_dump_with_huge_integers_quarantines_those_jobs(store, tmp_path):
    doc = {"jobs": [
        _json_job(1), _json_job(BIG), _json_job(3, required={"CPUs": BIG, "memory": 500}),
        _json_job(4, exit_code={"status": "FAILED", "return_code": BIG}),
        _json_job(5, time={"submission": 10 ** 400, "limit": 1}),
        _json_job(6, time={"limit": BIG // 60 + 1}),
        _json_job(7, het={"job_id": 7, "job_offset": BIG}),
        _json_job(8, tres={"allocated": [{"type": "cpu", "count": -1}]}),
        _json_job(9, user="bob\n10|bob|1002"),
    ]}
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    res = ing.ingest_json_file(store, str(path))
    assert set(jobs(store)) == {"1", "9"} and jobs(store)["9"][0] == "bob\n10|bob|1002"
    assert res.counts.quarantined == 7
    assert all("cannot read job" in r for _, r in quarantined(store))


def test_swf_lines_with_huge_numbers_are_quarantined(store, tmp_path):
    ok = "1 0 10 100 4 -1 -1 4 3600 -1 1 7 3 2 1 1 -1 -1"
    lines = ["; UnixStartTime: 1800000000", ok,
             ok.replace("1 0 10", "2 0 10", 1).replace(" 7 3 ", f" {BIG} 3 "),
             ok.replace("1 0 10", f"3 {'9' * 400} 10", 1),
             ok.replace("1 0 10", "4 0 1e999", 1),
             ok.replace("1 0 10", f"{BIG} 0 10", 1),
             ok.replace("1 0 10", "6 0 10", 1).replace(" 4 3600 ", f" {BIG * 2} 3600 ")]
    path = tmp_path / "trace.swf"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = swf.import_swf(store, str(path))
    assert set(jobs(store)) == {"1"}
    assert res.counts.quarantined == 5


# ---------------------------------------------------------------- item 1: forged rows, owners

LIVE_DEFAULTS = dict(JobIDRaw="", Cluster="lab", User="alice", UID="1001", Group="alice",
                     Account="research", Partition="debug", QOS="normal", State="COMPLETED",
                     ExitCode="0:0", DerivedExitCode="0:0", Submit="2026-11-21T10:00:00",
                     Eligible="2026-11-21T10:00:00", Start="2026-11-21T10:00:05",
                     End="2026-11-21T10:10:05", Elapsed="00:10:00", Timelimit="01:00:00",
                     ReqMem="500M", ReqCPUS="1", ReqNodes="1", ReqTRES="cpu=1,mem=500M,node=1",
                     AllocCPUS="1", NNodes="1", AllocTRES="cpu=1,mem=500M,node=1", NodeList="vm",
                     MaxRSS="", TotalCPU="00:01:00", JobName="j", WorkDir="/home/alice",
                     SubmitLine="sbatch j.sh")


def forged_row(delimiter, job_id="999", user="bob", uid="1002"):
    """A complete row in the live field order claiming another user and job id."""
    vals = dict(LIVE_DEFAULTS, JobID=job_id, JobIDRaw=job_id, User=user, UID=uid, Group=user,
                State="FAILED", JobName="forged", WorkDir=f"/home/{user}")
    return delimiter.join(vals[f] if f in vals else "" for f in ing.LIVE_FIELDS)


class FakeSacct:
    """sacct as run_command sees it: rows printed with the --delimiter it was given, free text
    printed raw (newlines and all), as sacct -P does."""

    def __init__(self, outputs):
        self.outputs = list(outputs)
        self.calls = []

    def __call__(self, argv, timeout, check=True, env=None, input_text=None):
        self.calls.append(list(argv))
        d = next(a for a in argv if a.startswith("--delimiter="))[len("--delimiter="):]
        fields = next(a for a in argv if a.startswith("--format="))[len("--format="):].split(",")
        lines = [d.join(fields)]
        for r in self.outputs.pop(0):
            vals = dict(LIVE_DEFAULTS, **r)
            lines.append(d.join(vals.get(f, "") for f in fields))
        return CommandResult(argv, 0, "\n".join(lines) + "\n", "")


def test_live_delimiter_is_fresh_random_and_multi_character():
    a, b = ing.live_delimiter(), ing.live_delimiter()
    assert a != b and re.fullmatch("\x1f[0-9a-f]{32}", a)
    assert ing.sacct_argv("sacct", ["JobID"], 0.0, a)[4] == f"--delimiter={a}"


@pytest.mark.parametrize("guess", ["\x1f", "|", "\x1f" + "0" * 32])
def test_live_forged_row_in_a_submit_line_never_becomes_a_job(store, monkeypatch, guess):
    # alice's --wrap holds a newline and a complete row claiming bob and job 999, and her job
    # name holds one too; and an earlier real job of bob's (job 5) is claimed again
    wrap = ("sbatch --wrap 'true\n" + forged_row(guess) + "\n" + forged_row(guess, "5", "bob", "1002")
            + "\n5.batch" + guess + "x'")
    fake = FakeSacct([
        [dict(JobID="5", User="bob", UID="1002", Group="bob", JobName="bob's", WorkDir="/home/bob")],
        [dict(JobID="7", JobName="n\n" + forged_row(guess, "998"), SubmitLine=wrap),
         dict(JobID="7.batch", JobName="batch", User="", UID="", SubmitLine="", WorkDir="")],
    ])
    monkeypatch.setattr(ing, "run_command", fake)
    ing.ingest_live(store, timeout=30.0, now=1_800_000_000.0)
    res = ing.ingest_live(store, timeout=30.0, now=1_800_000_600.0)
    got = jobs(store)
    assert set(got) == {"5", "7"}
    assert got["5"] == ("bob", 1002, "bob's", "sbatch j.sh")
    assert got["7"][:2] == ("alice", 1001) and got["7"][3] == wrap
    assert got["7"][2] == "n\n" + forged_row(guess, "998")
    assert res.counts.new == 1 and res.counts.quarantined == 0
    assert store.conn.execute("SELECT count(*) FROM job_steps WHERE job_id = '7'").fetchone()[0] == 1


def test_live_text_with_control_bytes_and_many_lines_is_rejoined(store, monkeypatch):
    fake = FakeSacct([[dict(JobID="8", JobName="a\nb\nc", WorkDir="/home/alice/x\ny",
                            SubmitLine="sbatch --wrap 'a\n\nb|c\n9\x1f9'")]])
    monkeypatch.setattr(ing, "run_command", fake)
    ing.ingest_live(store, timeout=30.0, now=1_800_000_000.0)
    got = jobs(store)
    assert got["8"][2] == "a\nb\nc" and got["8"][3] == "sbatch --wrap 'a\n\nb|c\n9\x1f9'"


def test_live_control_bytes_after_a_newline_stay_in_the_submit_line(store, monkeypatch):
    """Seen on the real cluster (Slurm 22.05): bob's job name held a newline and his --comment a
    \x01 and a tab, so sacct printed the submit line's tail on a line of its own holding control
    bytes. That line was quarantined on every ingestion and the submit line cut short; with the
    live (random, 33-character) delimiter it is the row's continuation."""
    name = 'evil"}],"jobs":[{"job_id":1\n|x|PENDING'
    line = f"sbatch --parsable -J {name} --comment \x01alice\ttab --wrap sleep 60 -o /dev/null"
    fake = FakeSacct([[dict(JobID="9", User="bob", UID="1002", Group="bob", JobName=name, SubmitLine=line),
                       dict(JobID="9.batch", JobName="batch", User="", UID="", SubmitLine="", WorkDir="")]])
    monkeypatch.setattr(ing, "run_command", fake)
    res = ing.ingest_live(store, timeout=30.0, now=1_800_000_000.0)
    assert res.counts.quarantined == 0 and res.counts.new == 1
    assert jobs(store)["9"] == ("bob", 1002, name, line)


@pytest.mark.parametrize("way", PATHS)
def test_a_stored_jobs_owner_never_changes_on_reingestion(store, monkeypatch, way):
    first = (FIX / "handmade_pipes_newlines_unicode.txt").read_text(encoding="utf-8")
    ingest(store, first, way, monkeypatch)
    before = jobs(store)
    owner = before["200"][:2]
    header, *rows = first.splitlines()
    # job 200 claimed by bob with bob's uid (a forged or corrupt row); everything else unchanged
    hacked = [header] + [r.replace("|alice|1001|", "|bob|1002|") if r.startswith("200|") else r for r in rows]
    hacked[1] = hacked[1].replace("COMPLETED", "FAILED")
    res = ingest(store, "\n".join(hacked) + "\n", way, monkeypatch)
    after = jobs(store)
    assert after == before and after["200"][:2] == owner
    assert res.counts.quarantined >= 1 and res.counts.updated == 0
    assert [r for loc, r in quarantined(store) if loc == "job 200"] == [
        "owner changed: stored user 'alice', this row 'bob'; the stored job is kept"]


@pytest.mark.parametrize("way", PATHS)
def test_user_and_uid_contradicting_the_dump_or_the_store_are_quarantined(store, monkeypatch, way):
    text = (FIX / "hostile_owner_contradictions_in_dump.txt").read_text(encoding="utf-8")
    res = ingest(store, text, way, monkeypatch, batch_size=2)
    got = jobs(store)
    assert set(got) == {"200", "201", "205", "207"}
    assert got["205"][3].startswith("sbatch --wrap 'true")
    reasons = {loc: r for loc, r in quarantined(store)}
    assert reasons["job 202"] == "uid 1002 belongs to user 'bob', this row says 'alice'" or \
        reasons["job 202"] == "user 'alice' has uid 1001, this row says 1002"
    assert reasons["job 206"] == "user 'bob' has uid 1002, this row says 1001"
    assert set(reasons) == {"job 202", "job 203", "job 204", "job 206"}
    assert res.counts.quarantined == 4 and res.counts.new == 4
    assert store.conn.execute("SELECT count(*) FROM job_steps WHERE job_id = '202'").fetchone()[0] == 0
    # against the store: a later dump with alice under another uid
    later = text.splitlines()[0] + "\n" + text.splitlines()[1].replace("200|200|lab|alice|1001", "300|300|lab|alice|1005") + "\n"
    res = ingest(store, later, way, monkeypatch)
    assert "300" not in jobs(store) and res.counts.quarantined == 1
    assert dict(quarantined(store))["job 300"] == "user 'alice' has uid 1001, this row says 1005"


@pytest.mark.parametrize("way", PATHS)
def test_a_partial_dbd_record_never_pins_a_wrong_owner(store, monkeypatch, way):
    """Captured on the test cluster: right after a job ended, slurmdbd (which had its end before its
    start) answered with a half record - alice with uid 0, group root, QOS Unknown, no partition,
    ReqMem '16?'. Neither that row nor the same row with a valid ReqMem may be stored, nor pin
    (alice, 0) as her identity: the complete record read on a later run is stored as hers."""
    text = (FIX / "dbd_partial_record_uid0_before_job_start.txt").read_text(encoding="utf-8")
    header, job, step = text.splitlines()
    for row in (job, job.replace("|16?|", "||")):
        res = ingest(store, "\n".join([header, row, step]) + "\n", way, monkeypatch)
        assert "136" not in jobs(store) and res.counts.quarantined >= 1
    assert any("uid 0 for user 'alice': a partial accounting record" in r for _, r in quarantined(store))
    complete = (job.replace("|alice|0|root|research||Unknown|", "|alice|1001|alice|research|debug|normal|")
                .replace("|16?|", "|500M|"))
    res = ingest(store, "\n".join([header, complete, step]) + "\n", way, monkeypatch)
    assert jobs(store)["136"][:2] == ("alice", 1001) and res.counts.new == 1
