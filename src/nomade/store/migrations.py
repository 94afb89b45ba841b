"""Numbered schema migrations. Each ``NNNN_name.sql`` runs in one transaction and is recorded in
``schema_migrations``. A store that records a version this nomade does not know was written by a
newer nomade: it is refused, never altered.

On PostgreSQL each statement runs as nomade.store.dialect.translate_ddl makes it, unless the
migration has its own ``NNNN_name.postgres.sql`` (for what translation cannot do); the first
migration run there also creates the dialect's SQLite-compatible functions (dialect.PRELUDE).
Migrations take the store's write lock (``BEGIN IMMEDIATE``), so concurrent openers apply each
version once, on both engines."""

import re
import sqlite3
import time
from dataclasses import dataclass
from importlib import resources
from typing import List, Optional

from .. import __version__
from ..errors import StoreError
from . import dialect

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_PG_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.postgres\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    postgres: Optional[str] = None   # the NNNN_name.postgres.sql text, when there is one


def _is_postgres(conn) -> bool:
    return getattr(conn, "dialect", "sqlite") == "postgres"


def known_migrations() -> List[Migration]:
    found = []
    overrides = {}
    for entry in resources.files("nomade.store").joinpath("migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
        m = _PG_NAME.match(entry.name)
        if m:
            overrides[(int(m.group(1)), m.group(2))] = entry.read_text(encoding="utf-8")
    found = [Migration(mg.version, mg.name, mg.sql, overrides.get((mg.version, mg.name))) for mg in found]
    found.sort(key=lambda mg: mg.version)
    for i, mg in enumerate(found, start=1):
        if mg.version != i:
            raise StoreError(f"migration numbering has a gap or duplicate at {mg.version:04d}_{mg.name}")
    return found


_SCHEMA_TABLE = ("CREATE TABLE IF NOT EXISTS schema_migrations ("
                 " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL,"
                 " nomade_version TEXT NOT NULL)")


def ensure_table(conn: sqlite3.Connection) -> None:
    if _is_postgres(conn):
        # not an identity: versions are given
        conn.execute_native(dialect.translate_ddl(_SCHEMA_TABLE.replace("INTEGER PRIMARY KEY", "INTEGER NOT NULL PRIMARY KEY")))
    else:
        conn.execute(_SCHEMA_TABLE)


def applied_versions(conn: sqlite3.Connection) -> List[int]:
    if _is_postgres(conn):
        from .pg import table_exists
        if not table_exists(conn, "schema_migrations"):
            return []
        return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
    ).fetchone()
    if row is None:
        return []
    return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def check_not_newer(conn: sqlite3.Connection, path: str) -> None:
    applied = applied_versions(conn)
    latest = len(known_migrations())
    if applied and max(applied) > latest:
        raise StoreError(
            f"{path}: store schema version {max(applied)} is newer than this nomade "
            f"({__version__}, schema {latest}); refusing to touch it",
            hint="upgrade nomade, or point --data-dir at another store",
        )


def pending(conn: sqlite3.Connection) -> List[Migration]:
    done = set(applied_versions(conn))
    return [m for m in known_migrations() if m.version not in done]


def migrate(conn: sqlite3.Connection, path: str) -> List[Migration]:
    """Apply every pending migration, each in its own transaction. Returns those applied."""
    check_not_newer(conn, path)
    applied = []
    postgres = _is_postgres(conn)
    for mg in pending(conn):
        try:
            conn.execute("BEGIN IMMEDIATE")
            ensure_table(conn)
            # the version may have been applied by a concurrent process since we looked
            if conn.execute("SELECT 1 FROM schema_migrations WHERE version=?", (mg.version,)).fetchone():
                conn.execute("COMMIT")
                continue
            if postgres:
                _run_postgres(conn, mg, prelude=not applied)
            else:
                for stmt in _statements(mg.sql):
                    conn.execute(stmt)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at, nomade_version) VALUES (?,?,?,?)",
                (mg.version, mg.name, time.time(), __version__),
            )
            conn.execute("COMMIT")
        except (sqlite3.Error, StoreError) as exc:
            conn.execute("ROLLBACK") if conn.in_transaction else None
            raise StoreError(f"{path}: migration {mg.version:04d}_{mg.name} failed: {exc}") from None
        applied.append(mg)
    return applied


def _run_postgres(conn, mg: Migration, prelude: bool) -> None:
    """``mg`` on PostgreSQL (its .postgres.sql, else each statement translated); ``prelude``:
    (re)create the dialect's functions first."""
    if prelude:
        for stmt in dialect.PRELUDE:
            conn.execute_native(stmt)
    if mg.postgres is not None:
        for stmt in _statements(mg.postgres):
            conn.execute_native(stmt)
        return
    for stmt in _statements(mg.sql):
        text = dialect.translate_ddl(stmt)
        if text is not None:
            conn.execute_native(text)


def _statements(sql: str) -> List[str]:
    """Split a migration file into statements (no semicolons inside strings in our migrations)."""
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
