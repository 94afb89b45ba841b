"""The SQLite store: WAL, busy timeout, recorded migrations, refusal of newer schemas, locks,
idempotent upserts, and the `db migrate` / `db status` commands."""

import json
import os
import sqlite3

import pytest
from click.testing import CliRunner

from nomade import config as config_mod
from nomade.cli.main import cli, run_cli
from nomade.errors import StoreError
from nomade.jobrecord import JobRecord, StepRecord
from nomade.store import migrations, open_store
from nomade.store.jobs import quarantine, upsert_jobs


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("NOMADE_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(config_mod, "SYSTEM_CONFIG", tmp_path / "no-such-system.toml")


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "data" / "nomade.db"


def test_new_store_is_wal_with_busy_timeout_and_all_migrations(db_path):
    with open_store(db_path, busy_timeout_ms=1234) as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
        rows = store.conn.execute("SELECT version, name, nomade_version FROM schema_migrations "
                                  "ORDER BY version").fetchall()
        known = migrations.known_migrations()
        assert [(r[0], r[1]) for r in rows] == [(m.version, m.name) for m in known]
        applied, pending = store.schema_status()
        assert applied == [m.version for m in known] and pending == []


def test_reopening_applies_nothing(store_target):
    open_store(store_target).close()
    with open_store(store_target, migrate=False) as store:
        assert migrations.migrate(store.conn, str(store_target)) == []
        assert store.schema_status()[1] == []


def test_newer_schema_is_refused_and_left_untouched(db_path):
    open_store(db_path).close()
    conn = sqlite3.connect(str(db_path))
    newer = len(migrations.known_migrations()) + 1
    conn.execute("INSERT INTO schema_migrations VALUES (?, 'from_the_future', 0, '99.0')", (newer,))
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in db_path.parent.iterdir()}
    with pytest.raises(StoreError) as exc:
        open_store(db_path)
    assert f"schema version {newer} is newer" in str(exc.value)
    assert "upgrade nomade" in exc.value.hint
    main_db = db_path.name
    assert db_path.read_bytes() == before[main_db][0]
    assert db_path.stat().st_mtime_ns == before[main_db][1]


def test_write_while_another_connection_holds_the_lock(db_path):
    open_store(db_path).close()
    other = sqlite3.connect(str(db_path), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with open_store(db_path, busy_timeout_ms=50) as store:
            with pytest.raises(StoreError, match="cannot start a write") as exc:
                upsert_jobs(store, [JobRecord("c", "1", state="COMPLETED", is_final=1)], "test")
            assert exc.value.hint
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_unopenable_path_is_a_store_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError):
        open_store(tmp_path / "file" / "nomade.db")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        open_store(junk)
    with pytest.raises(StoreError, match="no store here"):
        open_store(tmp_path / "absent.db", readonly=True)


def _job(job_id, state="COMPLETED", final=1, **kw):
    return JobRecord("c", job_id, user="alice", state=state, is_final=final, **kw)


def test_upsert_counts_and_is_idempotent(store_target):
    with open_store(store_target) as store:
        recs = [_job("1"), _job("2", steps=[StepRecord("batch", exit_code=0)])]
        assert upsert_jobs(store, recs, "t").as_dict() == {
            "new": 2, "updated": 0, "unchanged": 0, "quarantined": 0}
        assert upsert_jobs(store, recs, "t").unchanged == 2
        changed = upsert_jobs(store, [_job("1", state="FAILED")], "t")
        assert (changed.new, changed.updated) == (0, 1)
        # an older, non-final snapshot never replaces a final row
        late = upsert_jobs(store, [_job("1", state="RUNNING", final=0)], "t")
        assert late.unchanged == 1
        assert store.conn.execute("SELECT state FROM jobs WHERE job_id='1'").fetchone()[0] == "FAILED"
        assert store.conn.execute("SELECT count(*) FROM job_steps").fetchone()[0] == 1


def test_quarantine_keeps_reason_once_per_raw_text(store_target):
    with open_store(store_target) as store:
        items = [("swf:x", "line 3", "expected 18 fields, got 2", "1 2")]
        assert quarantine(store, items) == 1
        quarantine(store, items)
        rows = store.conn.execute("SELECT source, location, reason, raw FROM quarantine").fetchall()
        assert [tuple(r) for r in rows] == [items[0]]


def test_db_migrate_and_status_commands(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["--data-dir", str(tmp_path), "db", "migrate"])
    assert res.exit_code == 0, res.output
    assert "applied 0001_initial" in res.output
    res = runner.invoke(cli, ["--data-dir", str(tmp_path), "db", "migrate"])
    assert "store is up to date" in res.output
    res = runner.invoke(cli, ["--data-dir", str(tmp_path), "db", "status", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["pending"] == [] and doc["applied"][0] == 1
    assert doc["rows"]["jobs"] == 0


def test_db_status_on_newer_store_is_one_line_error(tmp_path, capsys):
    db = tmp_path / "nomade.db"
    open_store(db).close()
    conn = sqlite3.connect(str(db))
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0, '9')")
    conn.commit()
    conn.close()
    rc = run_cli(cli, ["--data-dir", str(tmp_path), "db", "migrate"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "newer than this nomade" in err


# ---------------------------------------------------------------- private by default
def _mode(p):
    return os.stat(p).st_mode & 0o777


@pytest.fixture
def open_umask():
    old = os.umask(0o022)          # the usual umask, under which files come out 0644
    yield
    os.umask(old)


def test_new_store_is_private_with_its_wal_and_shm_files(tmp_path, open_umask):
    path = tmp_path / "a" / "b" / "nomade.db"
    with open_store(path) as store:
        with store.transaction() as conn:
            conn.execute("INSERT INTO ingest_state (source, high_water, updated_at) VALUES ('x', 1, 1)")
        for suffix in ("", "-wal", "-shm"):
            assert _mode(str(path) + suffix) == 0o600, suffix
    assert _mode(tmp_path / "a") == 0o700 and _mode(tmp_path / "a" / "b") == 0o700
    assert os.umask(0o022) == 0o022            # the process umask is given back


def test_store_created_by_a_command_is_private(tmp_path, open_umask):
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "db", "migrate"])
    assert res.exit_code == 0, res.output
    assert _mode(tmp_path / "data") == 0o700
    assert _mode(tmp_path / "data" / "nomade.db") == 0o600


def test_existing_directory_keeps_the_admins_mode(tmp_path, open_umask):
    d = tmp_path / "shared"
    d.mkdir()
    os.chmod(d, 0o750)
    with open_store(d / "nomade.db"):
        pass
    assert _mode(d) == 0o750
    assert _mode(d / "nomade.db") == 0o600
