"""The C reader of `sacct -P` text (nomade.slurm._sacct_scan) against the Python reader: every
fixture and a few thousand generated rows with every kind of damage, ingested both ways with
blocks cut everywhere, must give the same stores, counts and quarantine; plus the bulk load's
deferred indexes."""

import os
import random
import sqlite3
from pathlib import Path

import pytest

from nomade.ingest import sacct as ing
from nomade.slurm import sacct_fields, sacct_scan
from nomade.store import bulk
from nomade.store.db import open_store

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "sacct"
HEADER = ("JobID|JobIDRaw|Cluster|User|UID|Group|Account|Partition|QOS|State|ExitCode|"
          "DerivedExitCode|Submit|Eligible|Start|End|Elapsed|Timelimit|ReqMem|ReqCPUS|ReqNodes|"
          "ReqTRES|AllocCPUS|NNodes|AllocTRES|NodeList|MaxRSS|TotalCPU|JobName|WorkDir|SubmitLine")
needs_c = pytest.mark.skipif(sacct_scan._sacct_scan is None, reason="the C reader is not built")


def test_the_c_reader_is_built_under_ci():
    if os.environ.get("CI", "").lower() == "true":
        assert sacct_scan._sacct_scan is not None, "CI must exercise the C reader (is gcc there?)"


def _clear_caches():
    for c in (sacct_fields._hour_cache, sacct_fields._time_cache, sacct_fields._dur_cache,
              sacct_fields._limit_cache, sacct_fields._mem_cache, sacct_fields._exit_cache,
              sacct_fields._state_cache, sacct_fields._gpu_cache, sacct_fields._jobid_cache):
        c.clear()


def ingest(tmp_path, name, text, fast, delimiter="|", fields=None, batch_size=7):
    _clear_caches()
    store = open_store(tmp_path / f"{name}.db")
    lines = iter(text.splitlines(keepends=True)) if fast == "lines" else _TextFile(text)
    res = ing.ingest_text(store, lines, qsource="q", delimiter=delimiter, fields=fields,
                          batch_size=batch_size, fast=bool(fast), now=1.0)
    return store, res.as_dict()


class _TextFile:
    """A text file's interface (iteration and read) over a string, as open_text gives."""

    def __init__(self, text):
        import io
        self._f = io.StringIO(text, newline="\n")

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._f)

    def read(self, n=-1):
        return self._f.read(n)


def dump(store):
    c = store.conn
    return {
        # every column but ingested_at/updated_at (the time of the run)
        "jobs": sorted(tuple(r)[:-2] for r in c.execute("SELECT * FROM jobs")),
        "steps": sorted(tuple(r) for r in c.execute("SELECT * FROM job_steps")),
        "quarantine": sorted(tuple(r) for r in c.execute(
            "SELECT source, location, reason, raw FROM quarantine")),
    }


def assert_same(tmp_path, text, delimiter="|", fields=None, block=None, monkeypatch=None):
    """The C reader writing through the C writer, the C reader's rows written by write_rows, and
    the Python reader: the same counts, stores and quarantine."""
    if block is not None:
        monkeypatch.setattr(sacct_scan, "BLOCK_CHARS", block)
    slow, rs = ingest(tmp_path, "slow", text, False, delimiter, fields)
    b = dump(slow)
    for writer in (True, False):
        ing.C_WRITER = writer
        try:
            fast, rf = ingest(tmp_path, f"fast-{writer}", text, True, delimiter, fields)
        finally:
            ing.C_WRITER = True
        assert rf == rs, writer
        a = dump(fast)
        for k in a:
            assert a[k] == b[k], (k, writer)
        fast.close()
    slow.close()
    return rs


# ---------------------------------------------------------------- fixtures, both readers

@needs_c
@pytest.mark.parametrize("name", sorted(p.name for p in FIX.glob("*.txt") if p.name != "real_helpformat_22.05.txt"))
@pytest.mark.parametrize("block", [None, 97, 1000])
def test_fixture_dumps_read_the_same_by_both_readers(tmp_path, monkeypatch, name, block):
    text = (FIX / name).read_text(encoding="utf-8", errors="replace")
    assert_same(tmp_path, text, block=block, monkeypatch=monkeypatch)


@needs_c
def test_a_headerless_dump_with_given_fields_reads_the_same(tmp_path):
    """The first data line is read while looking for a header; both readers start from it."""
    text = "".join((FIX / "lab_22.05_mixed_outcomes.txt").read_text(encoding="utf-8").splitlines(True)[1:])
    fields = ("JobID,JobName,User,Account,Partition,State,ExitCode,Submit,Start,End,Elapsed,"
              "Timelimit,ReqMem,NNodes,AllocTRES,NCPUS,MaxRSS,TotalCPU").split(",")
    assert assert_same(tmp_path, text, fields=fields)["new"] == 13


# ---------------------------------------------------------------- generated rows with damage

def _ts(rng, base):
    t = base + rng.randrange(0, 86400 * 3)
    d, rem = divmod(t, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return f"2026-03-{1 + d:02d}T{h:02d}:{m:02d}:{s:02d}", t


def generated(rng, jobs=400):
    out = [HEADER]
    jid = 5000
    for _ in range(jobs):
        jid += 1
        kind = rng.random()
        job = f"{jid}_{rng.randrange(9)}" if kind < 0.2 else f"{jid}+{rng.randrange(2)}" if kind < 0.3 else str(jid)
        state = rng.choice(["COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "CANCELLED by 1001",
                            "NODE_FAIL", "PENDING", "RUNNING", "REQUEUED", "CANCELLED"])
        sub, t = _ts(rng, 0)
        start, _ = _ts(rng, t % 86400) if state != "PENDING" else ("Unknown", 0)
        end = "Unknown" if state in ("PENDING", "RUNNING") else _ts(rng, t % 86400 + 3600)[0]
        elapsed = rng.choice(["00:00:00", "01:02:03", "1-00:00:05", "12:34", "2-03"])
        limit = rng.choice(["01:00:00", "UNLIMITED", "Partition_Limit", "1-00:00:00", "30:00"])
        mem = rng.choice(["4000M", "2G", "1.5G", "500Mn", "2000Mc", "16384K", "1T", ""])
        tres = rng.choice(["billing=4,cpu=4,mem=8G,node=1", "cpu=2,gres/gpu=2,mem=1G,node=1",
                           "cpu=1,gres/gpu:a100=1,mem=1G,node=1", ""])
        cpu = rng.choice(["", "00:01:02", "1-02:03:04", "05:06.789", "00:00.509"])
        name = rng.choice(["run.sh", "café run", "模拟", "a b", "x"])
        user = f"u{rng.randrange(20)}"
        out.append("|".join([job, str(jid), "lab", user, str(1000 + int(user[1:])), "grp", "acct",
                             "cpu", "normal", state, f"{rng.randrange(3)}:{rng.choice([0, 9, 15])}",
                             "0:0", sub, sub, start, end, elapsed, limit, mem, "4", "1", tres, "4",
                             "1", tres, "c01", "", cpu, name, f"/home/{user}", f"sbatch {name}"]))
        if state != "PENDING":
            for step in rng.sample(["batch", "extern", "0", "1"], rng.randrange(0, 4)):
                rss = rng.choice(["1024K", "0", "2G", "", "123.5M"])
                out.append("|".join([f"{job}.{step}", f"{jid}.{step}", "lab", "", "", "", "acct", "",
                                     "", rng.choice(["COMPLETED", "FAILED", "CANCELLED"]), "0:0", "",
                                     sub, sub, start, end, elapsed, "", "", "4", "1", "", "4", "1",
                                     tres, "c01", rss, rng.choice(["", "00:00:01", "01:00.250"]),
                                     step, "", ""]))
    return out


DAMAGE = [
    lambda r, l: l.replace("|run.sh|", "|run|me.sh|", 1),           # '|' in a name
    lambda r, l: l.replace("sbatch ", "sbatch --wrap 'a | b' ", 1),  # '|' in a submit line
    lambda r, l: l + "\ncontinued submit line",                     # newline in the last field
    lambda r, l: l.replace("|/home/", "|/ho\nme/", 1),              # newline in WorkDir
    lambda r, l: l.rsplit("|", 3)[0],                               # fields missing
    lambda r, l: l.replace("2026-03-", "2026-13-", 1),              # bad time
    lambda r, l: l.replace("|COMPLETED|", "|DONE|", 1),             # unknown state
    lambda r, l: l.replace("|4000M|", "|4000Q|", 1),                 # bad memory
    lambda r, l: l + "\r",                                          # CRLF
    lambda r, l: "",                                                # blank line
    lambda r, l: l.replace("a b", "a\x01b", 1),                     # control character
    lambda r, l: l.replace("|", "\ufffd", 1),                       # undecodable byte
    lambda r, l: l.replace("0:0", "0:x", 1),                        # bad exit code
    lambda r, l: "９９" + l,                                          # non-ASCII digits in the JobID
    lambda r, l: l.replace("01:02:03", "01:99:03", 1),              # bad duration
    lambda r, l: l.replace("|1|", "|+1|", 1),                       # an int Python reads, C does not
    lambda r, l: l.replace("|4|", "| 4|", 1),
    lambda r, l: l.replace("1-00:00:05", "0-05", 1),
]


@needs_c
@pytest.mark.parametrize("seed", range(6))
def test_damaged_generated_dumps_read_the_same_by_both_readers(tmp_path, monkeypatch, seed):
    rng = random.Random(seed)
    lines = generated(rng)
    for i in range(1, len(lines)):
        if rng.random() < 0.06:
            lines[i] = rng.choice(DAMAGE)(rng, lines[i])
    if seed % 2:  # orphan steps and a requeued job's second run
        lines.insert(5, lines[3].replace("|", ".batch|", 1) if "." not in lines[3].split("|")[0] else lines[3])
        lines.insert(9, lines[8])
    text = "\n".join(lines) + ("\n" if seed % 3 else "")
    res = assert_same(tmp_path, text, block=rng.choice([61, 250, 4000, 1 << 20]), monkeypatch=monkeypatch)
    assert res["quarantined"] > 0 and res["new"] > 300


@needs_c
def test_live_delimiter_and_given_fields_read_the_same(tmp_path, monkeypatch):
    rng = random.Random(42)
    lines = generated(rng, 200)
    body = [ln.replace("|", "\x1f") for ln in lines[1:]]
    body[10] = body[10].replace("sbatch", "sbatch --wrap 'a|b'")   # '|' is plain text here
    text = "\n".join(body) + "\n"
    assert_same(tmp_path, text, delimiter="\x1f", fields=HEADER.split("|"),
                block=300, monkeypatch=monkeypatch)


@needs_c
def test_lines_without_read_and_a_reingest_across_readers_is_unchanged(tmp_path):
    text = "\n".join(generated(random.Random(7), 300)) + "\n"
    store, first = ingest(tmp_path, "a", text, "lines")
    assert first["new"] == 300 and first["quarantined"] == 0
    store.close()
    _clear_caches()
    store = open_store(tmp_path / "a.db")
    again = ing.ingest_text(store, iter(text.splitlines(keepends=True)), qsource="q", fast=False)
    assert again.counts.as_dict() == {"new": 0, "updated": 0, "unchanged": 300, "quarantined": 0}


def test_python_reader_alone_gives_the_documented_results(tmp_path):
    """What the C reader is compared with: the Python reader's own results on a damaged dump."""
    text = "\n".join(generated(random.Random(3), 50)) + "\nnot a row\x01 at all\n"
    store, res = ingest(tmp_path, "p", text, False)
    assert res["new"] == 50 and res["quarantined"] == 1
    assert store.conn.execute("SELECT reason FROM quarantine").fetchone()[0].startswith("wrong field count")


# ---------------------------------------------------------------- bulk loads

def _indexes(store):
    return sorted(r[0] for r in store.conn.execute(
        "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='jobs' AND sql IS NOT NULL"))


def test_a_big_dump_defers_the_indexes_and_builds_them_after(tmp_path, monkeypatch):
    path = tmp_path / "dump.txt"
    path.write_text("\n".join(generated(random.Random(1), 300)) + "\n", encoding="utf-8")
    store = open_store(tmp_path / "s.db")
    before = _indexes(store)
    seen = []
    real = ing.ingest_text

    def spy(*a, **kw):
        seen.append(_indexes(store))
        return real(*a, **kw)

    monkeypatch.setattr(ing, "ingest_text", spy)
    monkeypatch.setattr(ing, "BULK_MIN_JOBS", 10)
    res = ing.ingest_file(store, str(path))
    assert res.counts.new == 300
    assert seen == [[]] and _indexes(store) == before and len(before) == 4
    assert store.conn.execute("SELECT count(*) FROM deferred_indexes").fetchone()[0] == 0
    # a small dump into a store that already holds more jobs keeps its indexes
    seen.clear()
    monkeypatch.setattr(ing, "BULK_MIN_JOBS", 1)
    small = tmp_path / "small.txt"
    small.write_text("\n".join(generated(random.Random(2), 3)) + "\n", encoding="utf-8")
    ing.ingest_file(store, str(small))
    assert seen == [before]


def test_indexes_come_back_when_the_load_fails(tmp_path):
    store = open_store(tmp_path / "s.db")
    before = _indexes(store)
    with pytest.raises(RuntimeError):
        with bulk.indexes_deferred(store):
            assert _indexes(store) == []
            raise RuntimeError("boom")
    assert _indexes(store) == before


def test_indexes_left_by_a_dead_loader_are_built_on_open(tmp_path):
    path = tmp_path / "s.db"
    store = open_store(path)
    before = _indexes(store)
    sql = store.conn.execute("SELECT sql FROM sqlite_master WHERE name='jobs_state'").fetchone()[0]
    store.conn.execute("DROP INDEX jobs_state")
    # a pid that is not running: count down from the largest pid_max Linux allows
    dead = 4_194_303
    while True:
        try:
            os.kill(dead, 0)
            dead -= 1
        except ProcessLookupError:
            break
        except PermissionError:
            dead -= 1
    import socket
    store.conn.execute("INSERT INTO deferred_indexes VALUES ('jobs_state', ?, ?, ?, 0)",
                       (sql, dead, socket.gethostname()))
    alive = store.conn.execute("SELECT sql FROM sqlite_master WHERE name='jobs_submit'").fetchone()[0]
    store.conn.execute("DROP INDEX jobs_submit")
    store.conn.execute("INSERT INTO deferred_indexes VALUES ('jobs_submit', ?, ?, ?, ?)",
                       (alive, os.getpid(), socket.gethostname(), 1e12))
    store.close()
    store = open_store(path)   # jobs_state's loader is gone: rebuilt; jobs_submit's is this process
    assert "jobs_state" in _indexes(store) and "jobs_submit" not in _indexes(store)
    assert bulk.rebuild(store, []) == 1
    assert _indexes(store) == before
    ro = sqlite3.connect(path)
    assert ro.execute("SELECT count(*) FROM deferred_indexes").fetchone()[0] == 0


@needs_c
@pytest.mark.parametrize("gz", [False, True])
def test_dump_files_with_bad_bytes_read_the_same_by_both_readers(tmp_path, monkeypatch, gz):
    """ingest_file hands the C reader the file's bytes; the Python reader gets text decoded with
    U+FFFD for bad bytes. Both must store the same."""
    import gzip
    rng = random.Random(11)
    lines = [ln.encode("utf-8") for ln in generated(rng, 300)]
    for i in range(1, len(lines)):
        r = rng.random()
        if r < 0.03:
            lines[i] = lines[i].replace(b"|x|", b"|x\xff|", 1).replace(b"|a b|", b"|a\xe2\x82|", 1)
        elif r < 0.05:
            lines[i] = lines[i].replace(b"|grp|", b"|gr\xc3|", 1)
        elif r < 0.06:
            lines[i] = lines[i].replace("模拟".encode(), "模拟".encode()[:-1], 1)
    data = b"\n".join(lines) + b"\n"
    path = tmp_path / ("dump.txt.gz" if gz else "dump.txt")
    path.write_bytes(gzip.compress(data) if gz else data)
    monkeypatch.setattr(sacct_scan, "BLOCK_CHARS", 777)
    out = {}
    for fast in (True, False):
        _clear_caches()
        store = open_store(tmp_path / f"{fast}.db")
        res = ing.ingest_file(store, str(path), batch_size=11, fast=fast)
        out[fast] = (res.as_dict(), dump(store))
        store.close()
    assert out[True] == out[False]
    assert out[True][0]["quarantined"] == 0 and out[True][0]["new"] == 300
    names = {r[7] for r in out[True][1]["jobs"]}
    assert any("\ufffd" in (n or "") for n in names)


def test_the_writer_without_the_c_helpers_stores_the_same(tmp_path, monkeypatch):
    from nomade.store import jobs as store_jobs
    text = "\n".join(generated(random.Random(5), 120)) + "\n"
    a, ra = ingest(tmp_path, "with", text, False)
    monkeypatch.setattr(store_jobs, "_sacct_scan", None)
    b, rb = ingest(tmp_path, "without", text, False)
    assert ra == rb and dump(a) == dump(b)


def test_nulls_are_bound_as_nan_only_where_sqlite_stores_nan_as_null():
    from nomade.store import jobs as store_jobs
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a TEXT, b INTEGER, c REAL)")
    conn.execute("INSERT INTO t VALUES (?,?,?)", (store_jobs.SQL_NULL,) * 3)
    assert conn.execute("SELECT a IS NULL AND b IS NULL AND c IS NULL FROM t").fetchone()[0] == 1
    assert store_jobs.sql_nulls((1, None, "x"))[1] is store_jobs.SQL_NULL


@needs_c
def test_an_interrupt_inside_a_parser_is_not_swallowed(tmp_path, monkeypatch):
    """Ctrl-C while the C reader calls a Python parser stops the ingest (it is not taken for a
    bad value)."""
    def interrupted(text):
        raise KeyboardInterrupt

    monkeypatch.setattr(sacct_fields, "parse_state_field", interrupted)
    text = "\n".join(generated(random.Random(9), 20)) + "\n"
    with pytest.raises(KeyboardInterrupt):
        ingest(tmp_path, "ki", text, True)


@needs_c
def test_the_c_record_hash_is_hashlibs_blake2b():
    for n in (0, 1, 63, 127, 128, 129, 255, 256, 257, 1000, 4097):
        data = bytes(random.Random(n).randrange(256) for _ in range(n))
        assert sacct_scan._sacct_scan.digest(data, sacct_scan._PERSON) == sacct_scan.digest(data)


@needs_c
@pytest.mark.parametrize("batch_size", [1, 3, 7, 5000])
def test_reingest_with_changes_and_late_snapshots_counts_the_same_with_the_c_writer(tmp_path, batch_size):
    """Updated jobs, unchanged ones, a running snapshot arriving after the final record, and a
    job twice in a row (a requeued job's runs) across batch boundaries: the C writer and
    write_rows give the same counts and stores."""
    first = generated(random.Random(11), 60)
    second = list(first)
    names = HEADER.split("|")
    for i in range(1, len(second)):
        f = second[i].split("|")
        assert len(f) == len(names)
        if i % 5 == 0:                   # changed: a new name
            f[names.index("JobName")] = "renamed"
        elif i % 9 == 0 and "." not in f[0]:   # a late snapshot: RUNNING after the final record
            f[names.index("State")] = "RUNNING"
        second[i] = "|".join(f)
    second.insert(4, second[3])          # the same job row twice in a row
    results = {}
    for mode in ("c-writer", "write_rows", "python"):
        ing.C_WRITER = mode == "c-writer"
        try:
            _clear_caches()
            store = open_store(tmp_path / f"{mode}-{batch_size}.db")
            for text in ("\n".join(first) + "\n", "\n".join(second) + "\n"):
                res = ing.ingest_text(store, iter(text.splitlines(keepends=True)), qsource="q",
                                      batch_size=batch_size, fast=mode != "python", now=1.0)
            results[mode] = (res.as_dict(), dump(store))
            store.close()
        finally:
            ing.C_WRITER = True
    assert results["c-writer"] == results["write_rows"] == results["python"]
    counts = results["python"][0]
    assert counts["updated"] > 0 and counts["unchanged"] > 0


@needs_c
def test_a_store_locked_by_another_writer_is_a_one_line_error(tmp_path):
    from nomade.errors import StoreError
    store = open_store(tmp_path / "locked.db")
    store.conn.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(str(tmp_path / "locked.db"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    text = "\n".join(generated(random.Random(2), 20)) + "\n"
    try:
        with pytest.raises(StoreError) as err:
            ing.ingest_text(store, iter(text.splitlines(keepends=True)), qsource="q", fast=True)
        assert "locked" in str(err.value) and "\n" not in str(err.value)
    finally:
        other.execute("ROLLBACK")
        other.close()
    res = ing.ingest_text(store, iter(text.splitlines(keepends=True)), qsource="q", fast=True)
    assert res.counts.new == 20
