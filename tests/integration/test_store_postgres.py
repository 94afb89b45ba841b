"""The store on a real PostgreSQL (tests/pg_fixture.py starts one per session): concurrent
ingesters, the high-water mark, reads that must match SQLite's, the store.url setting, and
one-line errors. The store's family tests run on both engines in tests/unit (``store_target``)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nomade import config as config_mod
from nomade.errors import StoreError
from nomade.jobrecord import JobRecord, StepRecord
from nomade.store import job_queries, jobs
from nomade.store.db import open_store, row_counts, store_from_config, store_location

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("NOMADE_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(config_mod, "SYSTEM_CONFIG", tmp_path / "no-such-system.toml")


def _dump(tmp_path: Path, n: int) -> Path:
    out = tmp_path / f"sacct_{n}.txt"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_sacct_dump.py"), "--jobs", str(n),
                    "--out", str(out)], check=True, capture_output=True, timeout=120)
    return out


def _split(dump: Path, cuts) -> list:
    """Files holding the jobs [a, b) of ``dump`` (a job = its row and its step rows) per (a, b)."""
    lines = dump.read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    starts = [i for i, ln in enumerate(rows) if "." not in ln.split("|", 1)[0]] + [len(rows)]
    out = []
    for k, (a, b) in enumerate(cuts):
        part = dump.with_name(f"part{k}.txt")
        part.write_text(header + "".join(rows[starts[a]:starts[min(b, len(starts) - 1)]]))
        out.append(part)
    return out


_INGEST = ("import sys; from nomade.store.db import open_store; from nomade.ingest.sacct import ingest_file\n"
           "with open_store(sys.argv[1]) as s:\n"
           "    r = ingest_file(s, sys.argv[2], batch_size=200)\n"
           "    print(r.counts.summary())\n")


def test_concurrent_ingesters_with_overlapping_dumps_equal_a_serial_run(tmp_path, pg_url):
    dump = _dump(tmp_path, 1500)
    parts = _split(dump, [(0, 1000), (500, 1500), (250, 1250)])
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    procs = [subprocess.Popen([sys.executable, "-c", _INGEST, pg_url, str(p)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in parts]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    with open_store(tmp_path / "serial.db") as serial:
        from nomade.ingest.sacct import ingest_file
        for part in parts:
            ingest_file(serial, str(part), batch_size=200)
        want = row_counts(serial)
        want_steps = serial.conn.execute("SELECT cluster, job_id, count(*) FROM job_steps "
                                         "GROUP BY cluster, job_id ORDER BY cluster, job_id").fetchall()
        want_states = serial.conn.execute("SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state").fetchall()
    with open_store(pg_url) as store:
        assert row_counts(store) == want
        got_steps = store.conn.execute("SELECT cluster, job_id, count(*) FROM job_steps "
                                       "GROUP BY cluster, job_id ORDER BY cluster, job_id").fetchall()
        assert [tuple(r) for r in got_steps] == [tuple(r) for r in want_steps]
        got_states = store.conn.execute("SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state").fetchall()
        assert [tuple(r) for r in got_states] == [tuple(r) for r in want_states]
        # the bulk loads' deferred indexes are all back
        idx = {r[0] for r in store.conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'jobs'")}
        assert {"jobs_user_submit", "jobs_submit", "jobs_state"} <= idx
        assert store.conn.execute("SELECT count(*) FROM deferred_indexes").fetchone()[0] == 0


def test_high_water_mark_never_goes_backwards(pg_url):
    with open_store(pg_url) as store:
        jobs.set_high_water(store, "sacct:c", 200.0)
        jobs.set_high_water(store, "sacct:c", 100.0)
        assert jobs.get_high_water(store, "sacct:c") == 200.0
        jobs.set_high_water(store, "sacct:c", 300.5)
        assert jobs.get_high_water(store, "sacct:c") == 300.5


def _records():
    return [
        JobRecord("c", "1", user="alice", uid=1000, state="COMPLETED", is_final=1, submit_time=10.0,
                  max_rss_mb=100.0, steps=[StepRecord("batch", max_rss_mb=900.0, ntasks=1),
                                           StepRecord("0", max_rss_mb=50.0, ntasks=2)]),
        JobRecord("c", "2", user="bob", uid=1001, state="FAILED", is_final=1, submit_time=None),
        JobRecord("c", "3", user="bob", uid=1001, state="RUNNING", is_final=0, submit_time=30.0,
                  name="x\x00y"),
        JobRecord("c", "4", user="carol", uid=1002, state="CANCELLED", is_final=1, submit_time=20.0,
                  array_job_id=4, array_task_id="[5-9]", cancelled_by=0),
        JobRecord("c", "4_2", user="carol", uid=1002, state="COMPLETED", is_final=1, submit_time=20.0,
                  array_job_id=4, array_task_id="2"),
    ]


def test_reads_match_sqlite(tmp_path, pg_url):
    answers = []
    for target in (tmp_path / "s.db", pg_url):
        with open_store(target) as store:
            jobs.upsert_jobs(store, _records(), "t", now=5.0)
            listed = job_queries.jobs_matching(store, job_queries.JobQuery(limit=10))
            counts = job_queries.outcome_counts(store)
            train = job_queries.jobs_for_training(store, ["job_id", "user", "max_rss_mb"], "c")
            answers.append((
                [(r.job_id, r.outcome, r.submit_time) for r in listed],
                (counts.jobs, counts.users, counts.first_submit, counts.by_class),
                sorted((r["job_id"], r["user"], r["max_rss_mb"]) for r in train),
                [r["job_id"] for r in job_queries.jobs_by_number(store, "c", 4)],
                job_queries.job_clusters(store),
                [r["step_id"] for r in job_queries.job_steps(store, "c", "1")],
                sorted(job_queries.job_row(store, "c", "1")),
            ))
    assert answers[0][:2] == answers[1][:2]
    assert answers[0][2:] == answers[1][2:]
    with open_store(pg_url) as store:
        # PostgreSQL's text has no NUL: the character is kept as U+FFFD, never lost
        assert job_queries.job_row(store, "c", "3")["name"] == "x\ufffdy"


def test_store_url_setting_and_environment_select_postgres(tmp_path, pg_url, monkeypatch):
    cfg = config_mod.load_config(overrides={"data_dir": str(tmp_path)}, environ={"NOMADE_STORE_URL": pg_url})
    assert store_location(cfg) == pg_url
    with store_from_config(cfg) as store:
        assert store.dialect == "postgres"
    cfg = config_mod.load_config(overrides={"data_dir": str(tmp_path)},
                                 environ={"NOMADE_STORE_URL": f"sqlite:///{tmp_path}/x.db"})
    assert store_location(cfg) == tmp_path / "x.db"
    cfg = config_mod.load_config(overrides={"data_dir": str(tmp_path)}, environ={})
    assert store_location(cfg) == tmp_path / "nomade.db"


def test_unreachable_server_is_one_line_without_the_password(tmp_path):
    with pytest.raises(StoreError) as err:
        open_store(f"postgresql://nomade:s3cret@/nodb?host={tmp_path}", busy_timeout_ms=1000)
    text = str(err.value)
    assert "s3cret" not in text and "cannot connect to PostgreSQL" in text and "\n" not in text


def test_missing_psycopg_is_one_line(monkeypatch, pg_url):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StoreError) as err:
        open_store(pg_url)
    assert "psycopg" in str(err.value) and "nomade[postgres]" in (err.value.hint or "")


def test_write_lock_times_out_like_sqlite(pg_url):
    with open_store(pg_url) as a, open_store(pg_url, busy_timeout_ms=300) as b:
        with a.transaction():
            with pytest.raises(StoreError, match="cannot start a write"):
                with b.transaction():
                    pass
        with b.transaction() as conn:            # free again
            conn.execute("SELECT 1")


def test_steps_left_without_their_job_are_replaced_not_an_error(store_target):
    with open_store(store_target) as store:
        with store.transaction() as conn:   # a step row nomade did not write (no jobs row)
            conn.execute("INSERT INTO job_steps (cluster, job_id, step_id, name) VALUES ('c', '9', 'batch', 'old')")
        rec = JobRecord("c", "9", user="alice", uid=1000, state="COMPLETED", is_final=1,
                        steps=[StepRecord("batch", name="new"), StepRecord("0", name="zero")])
        assert jobs.upsert_jobs(store, [rec], "t").new == 1
        got = {r["step_id"]: r["name"] for r in job_queries.job_steps(store, "c", "9")}
        assert got == {"batch": "new", "0": "zero"}
        assert job_queries.job_row(store, "c", "9")["state"] == "COMPLETED"


def _table_rows(store, table):
    from nomade.store.copy import columns
    cols = sorted(columns(store, table))
    names = ", ".join(f'"{c}"' for c in cols)
    return [tuple(r) for r in store.conn.execute(f'SELECT {names} FROM "{table}" ORDER BY {names}')]


def row_counts_of(store, table):
    return store.conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]


def test_db_copy_round_trips_the_demo_store(tmp_path, pg_url):
    from click.testing import CliRunner

    from nomade.cli.main import cli
    from nomade.demo import run_demo
    from nomade.store import metrics
    from nomade.store.copy import tables
    demo = run_demo(tmp_path / "demo", train=False)
    with open_store(demo.store_path) as s:     # rows in the tables with identities and references
        jobs.quarantine(s, [("t", "line 1", "bad", "raw \x01 text")])
        metrics.write_cycle(s, "c", "disk", [_Metric("disk.used_bytes", 5.0)], 100.0)
        metrics.record_run(s, "disk", 100.0, True, "", 0.1, 1)
    runner = CliRunner()
    res = runner.invoke(cli, ["--data-dir", str(tmp_path), "db", "copy", "--from", str(demo.store_path),
                              "--to", pg_url, "--json"])
    assert res.exit_code == 0, res.output
    back = tmp_path / "back.db"
    res = runner.invoke(cli, ["--data-dir", str(tmp_path), "db", "copy", "--from", pg_url, "--to", str(back)])
    assert res.exit_code == 0, res.output
    again = runner.invoke(cli, ["--data-dir", str(tmp_path), "db", "copy", "--from", str(demo.store_path),
                                "--to", pg_url, "--json"])             # idempotent: nothing added
    assert again.exit_code == 0, again.output
    assert all(t["added"] == 0 for t in __import__("json").loads(again.output)["tables"].values())
    with open_store(demo.store_path) as a, open_store(pg_url) as p, open_store(back) as b:
        assert row_counts(a)["jobs"] > 1000
        for table in tables(a):
            assert _table_rows(a, table) == _table_rows(b, table), table
            assert row_counts_of(p, table) == row_counts_of(a, table), table
        # the identities went past the copied ids: new rows get new ones
        jobs.quarantine(p, [("t", "line 2", "bad", "other")])
        ids = [r[0] for r in p.conn.execute("SELECT id FROM quarantine ORDER BY id")]
        assert len(ids) == len(set(ids)) == 2


def test_db_copy_refuses_a_password_on_the_command_line(tmp_path, capsys):
    from nomade.cli.main import cli, run_cli
    rc = run_cli(cli, ["--data-dir", str(tmp_path), "db", "copy", "--to", "postgresql://nomade:s3cret@db/nomade"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "s3cret" not in err and "pgpass" in err


class _Metric:
    def __init__(self, metric, value):
        self.metric, self.value, self.labels, self.host, self.ts = metric, value, {}, "", None


def test_values_come_back_as_sqlite_gives_them(pg_url):
    with open_store(pg_url) as store:
        row = store.conn.execute("SELECT 1 = 1 AS t, 1 = 2 AS f, sum(x) AS s, avg(x) AS a, count(*) AS n "
                                 "FROM (SELECT 1 AS x UNION ALL SELECT 2) q").fetchone()
        assert [type(v) for v in row] == [int, int, int, float, int]
        assert dict(row) == {"t": 1, "f": 0, "s": 3, "a": 1.5, "n": 2}
        assert row["T"] == 1 and row[-1] == 2          # by name (any case) and by position
        with store.transaction() as conn:
            conn.execute("INSERT INTO ingest_state (source, high_water, updated_at) VALUES (?, ?, ?)",
                         ("s", float("nan"), 1.0))
        assert jobs.get_high_water(store, "s") is None   # a NaN is NULL, as in SQLite


def test_why_service_answers_from_postgres_with_the_access_rule(pg_url):
    from nomade.whyservice.access import Caller
    from nomade.whyservice.server import answer
    with open_store(pg_url) as store:
        jobs.upsert_jobs(store, _records(), "t", now=5.0)
    own = answer(pg_url, Caller(1000, 1000), {"job_id": "1", "cluster": "c"}, "no-such-group-xyz")
    assert own["ok"] is True, own
    other = answer(pg_url, Caller(1001, 1001), {"job_id": "1", "cluster": "c"}, "no-such-group-xyz")
    assert other["ok"] is False and other["kind"] == "denied"


def test_newer_schema_is_refused_and_left_untouched(pg_url):
    with open_store(pg_url) as store:
        with store.transaction() as conn:
            conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0, '9')")
    for readonly in (False, True):
        with pytest.raises(StoreError, match="newer than this nomade"):
            open_store(pg_url, readonly=readonly)
    import psycopg
    with psycopg.connect(pg_url) as raw:     # left untouched: the future version still recorded
        assert raw.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 999


def test_db_migrate_and_status_commands_on_postgres(tmp_path, pg_url, monkeypatch):
    import json as _json

    from click.testing import CliRunner

    from nomade.cli.main import cli
    monkeypatch.setenv("NOMADE_STORE_URL", pg_url)
    runner = CliRunner()
    res = runner.invoke(cli, ["--data-dir", str(tmp_path), "db", "migrate"])
    assert res.exit_code == 0 and "applied 0001_initial" in res.output, res.output
    res = runner.invoke(cli, ["--data-dir", str(tmp_path), "db", "status", "--json"])
    info = _json.loads(res.output)
    assert info["pending"] == [] and info["rows"]["jobs"] == 0 and info["store"].startswith("postgresql://")
    assert not (tmp_path / "nomade.db").exists()          # the SQLite file is not touched
