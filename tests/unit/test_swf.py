"""SWF trace import: field mapping, header, quarantine, idempotence, gzip, and the CLI."""

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from nomade import config as config_mod
from nomade.cli.main import cli
from nomade.errors import IngestError
from nomade.ingest.swf import SwfHeader, import_swf, parse_job_line, read_swf, trace_name
from nomade.store import open_store

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "swf"
ATLAS_START = 1163199901   # the Atlas header's UnixStartTime
CTC_START = 835823160


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("NOMADE_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(config_mod, "SYSTEM_CONFIG", tmp_path / "no-such-system.toml")


@pytest.fixture
def store(store_target):
    with open_store(store_target) as s:   # SQLite, then PostgreSQL (tests/pg_fixture.py)
        yield s


def rows(store, sql, *params):
    return [tuple(r) for r in store.conn.execute(sql, params).fetchall()]


@pytest.mark.parametrize("path, name", [
    ("LLNL-Atlas-2006-2.1-cln.swf.gz", "llnl-atlas-2006"),
    ("/x/CTC-SP2-1996-3.1-cln.swf", "ctc-sp2-1996"),
    ("llnl-atlas-2006.swf.gz", "llnl-atlas-2006"),
    ("mytrace.swf", "mytrace"),
])
def test_trace_name(path, name):
    assert trace_name(path) == name


def test_full_line_mapping():
    # job 7: submit 100 s after start, waited 20, ran 50, 4 procs allocated, 10.5 s average CPU,
    # 2048 KB used/proc, 8 procs requested, 3600 s requested, 4096 KB/proc requested, status 1
    line = "7 100 20 50 4 10.5 2048 8 3600 4096 1 12 3 44 2 1 -1 -1"
    r = parse_job_line(line, "c", 1000)
    assert (r.cluster, r.job_id, r.job_id_raw) == ("c", "7", 7)
    assert (r.user, r.uid, r.grp, r.name, r.qos, r.partition) == ("u12", 12, "g3", "app44", "q2", "p1")
    assert r.submit_time == 1100.0 and r.start_time == 1120.0 and r.end_time == 1170.0
    assert r.elapsed_s == 50 and r.alloc_cpus == 4 and r.req_cpus == 8
    assert r.timelimit_s == 3600 and r.timelimit_raw is None
    assert r.req_mem_mb == 4.0 and r.req_mem_per_cpu == 1 and r.max_rss_mb == 2.0
    assert r.total_cpu_s == 42.0
    assert (r.state, r.state_raw, r.is_final) == ("COMPLETED", "swf status 1", 1)
    assert r.exit_code is None


@pytest.mark.parametrize("status, state, final", [
    ("1", "COMPLETED", 1), ("0", "FAILED", 1), ("5", "CANCELLED", 1), ("-1", None, 0), ("3", None, 0)])
def test_status_mapping(status, state, final):
    r = parse_job_line(f"1 0 -1 -1 -1 -1 -1 -1 -1 -1 {status} 1 -1 -1 -1 -1 -1 -1", "c", None)
    assert (r.state, r.is_final, r.state_raw) == (state, final, f"swf status {status}")


def test_unknown_fields_are_null_and_allocated_procs_are_the_fallback():
    r = parse_job_line("9 5 -1 -1 16 -1 -1 -1 -1 -1 0 -1 -1 -1 -1 -1 -1 -1", "c", None)
    assert r.submit_time == 5.0          # no UnixStartTime: relative to 0
    assert r.req_cpus == 16 and r.alloc_cpus == 16
    for f in ("start_time", "end_time", "elapsed_s", "timelimit_s", "req_mem_mb", "req_mem_per_cpu",
              "max_rss_mb", "total_cpu_s", "user", "uid", "grp", "name", "qos", "partition"):
        assert getattr(r, f) is None, f


@pytest.mark.parametrize("line, reason", [
    ("1 2 3", "expected 18 fields, got 3"),
    ("1 0 -1 -1 -1 -1 -1 -1 -1 -1 1 x -1 -1 -1 -1 -1 -1", "non-numeric field 'x'"),
    ("1 0 -1 -1 -1 -1 -1 -1 -1 -1 1 nan -1 -1 -1 -1 -1 -1", "non-numeric field 'nan'"),
    ("-1 0 -1 -1 -1 -1 -1 -1 -1 -1 1 1 -1 -1 -1 -1 -1 -1", "bad job number '-1'"),
    ("1.5 0 -1 -1 -1 -1 -1 -1 -1 -1 1 1 -1 -1 -1 -1 -1 -1", "bad job number '1.5'"),
])
def test_malformed_lines(line, reason):
    with pytest.raises(ValueError, match=reason):
        parse_job_line(line, "c", None)


def test_header_is_read():
    header = SwfHeader()
    with open(FIX / "llnl_atlas_2006_head.swf") as fh:
        jobs = list(read_swf(fh, "c", header))
    assert header.unix_start_time == ATLAS_START
    assert header.time_zone_string == "US/Pacific" and header.max_jobs == 60332
    assert header.fields["Acknowledge"] == "Moe Jette, LLNL"
    assert len(jobs) == 30
    no, first, raw = jobs[0]
    assert raw.startswith("1435") and first.submit_time == ATLAS_START + 3273240


def test_import_real_excerpt_and_reimport_is_unchanged(store):
    res = import_swf(store, FIX / "ctc_sp2_1996_head.swf", batch_size=7)
    assert (res.name, res.cluster, res.source, res.lines) == (
        "ctc_sp2_1996_head", "ctc_sp2_1996_head", "swf:ctc_sp2_1996_head", 20)
    assert res.counts.as_dict() == {"new": 20, "updated": 0, "unchanged": 0, "quarantined": 0}
    assert res.summary() == "swf ctc_sp2_1996_head: 20 new, 0 updated, 0 unchanged, 0 quarantined (20 lines)"
    # job 1: "1 0 588530 937 306 142.00 -1 -1 35100 -1 1 97 -1 307 3 -1 -1 -1"
    got = rows(store, "SELECT submit_time, start_time, end_time, req_cpus, alloc_cpus, total_cpu_s, "
                      "timelimit_s, state, user, name, qos, partition, source FROM jobs WHERE job_id='1'")
    assert got == [(CTC_START, CTC_START + 588530, CTC_START + 588530 + 937, 306, 306, 142.0 * 306,
                    35100, "COMPLETED", "u97", "app307", "q3", None, "swf:ctc_sp2_1996_head")]
    again = import_swf(store, FIX / "ctc_sp2_1996_head.swf", batch_size=7)
    assert again.counts.as_dict() == {"new": 0, "updated": 0, "unchanged": 20, "quarantined": 0}


def test_gzip_and_cluster_override(store, tmp_path):
    gz = tmp_path / "LLNL-Atlas-2006-2.1-cln.swf.gz"
    with open(FIX / "llnl_atlas_2006_head.swf", "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    res = import_swf(store, gz)
    assert res.name == "llnl-atlas-2006" and res.counts.new == 30
    assert rows(store, "SELECT DISTINCT cluster FROM jobs") == [("llnl-atlas-2006",)]
    assert rows(store, "SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state") == [
        ("CANCELLED", 17), ("COMPLETED", 8), ("FAILED", 5)]  # as in the file
    other = import_swf(store, gz, cluster="atlas")
    assert other.cluster == "atlas" and other.counts.new == 30


def test_malformed_lines_are_quarantined_with_line_numbers(store):
    res = import_swf(store, FIX / "malformed_lines.swf")
    assert res.lines == 12
    assert res.counts.as_dict() == {"new": 8, "updated": 0, "unchanged": 0, "quarantined": 4}
    q = rows(store, "SELECT location, reason FROM quarantine WHERE source='swf:malformed_lines' ORDER BY id")
    assert q == [("line 18", "expected 18 fields, got 15"), ("line 21", "non-numeric field 'abc'"),
                 ("line 22", "bad job number '-1'"), ("line 26", "expected 18 fields, got 19")]
    again = import_swf(store, FIX / "malformed_lines.swf")
    assert again.counts.unchanged == 8
    assert rows(store, "SELECT count(*) FROM quarantine") == [(4,)]


def test_no_header_means_times_relative_to_zero(store):
    import_swf(store, FIX / "no_header.swf")
    assert rows(store, "SELECT submit_time FROM jobs WHERE job_id='2'") == [(164472.0,)]


def test_not_an_swf_file_is_refused_whole(store, tmp_path):
    with pytest.raises(IngestError, match="not an SWF trace"):
        import_swf(store, FIX / "not_swf_sacct_output.txt")
    assert rows(store, "SELECT count(*) FROM quarantine") == [(0,)]
    with pytest.raises(IngestError, match="no such file"):
        import_swf(store, tmp_path / "missing.swf")
    truncated = tmp_path / "cut.swf.gz"
    truncated.write_bytes(gzip.compress((FIX / "ctc_sp2_1996_head.swf").read_bytes())[:300])
    with pytest.raises(IngestError, match="cannot read the trace"):
        import_swf(store, truncated)


def test_cli_import_summary_and_json(tmp_path):
    runner = CliRunner()
    args = ["--data-dir", str(tmp_path), "import", "swf", str(FIX / "llnl_atlas_2006_head.swf")]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert res.output == ("swf llnl_atlas_2006_head: 30 new, 0 updated, 0 unchanged, "
                          "0 quarantined (30 lines)\n")
    res = runner.invoke(cli, args + ["--json", "--cluster", "atlas"])
    doc = json.loads(res.output)
    assert doc["cluster"] == "atlas" and doc["new"] == 30 and doc["unix_start_time"] == ATLAS_START


def test_cli_import_missing_file_is_one_line(tmp_path, capsys):
    from nomade.cli.main import run_cli
    rc = run_cli(cli, ["--data-dir", str(tmp_path), "import", "swf", str(tmp_path / "nope.swf")])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "no such file" in err


def test_not_swf_refused_even_with_small_batches(store, tmp_path):
    junk = tmp_path / "junk.swf"
    junk.write_text("".join(f"line {i} of prose\n" for i in range(1500)))
    with pytest.raises(IngestError, match="none of its first 1000 job lines parse"):
        import_swf(store, junk, batch_size=10)
    assert rows(store, "SELECT count(*) FROM quarantine") == [(0,)]
