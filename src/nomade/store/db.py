"""Opening the store: WAL mode, a busy timeout, migrations, and refusal of newer schemas.

Two engines under one interface: a SQLite file (the default), or PostgreSQL when the store is named
by a ``postgresql://`` URL (nomade.store.pg; ``store.url``). ``Store.dialect`` says which
("sqlite", "postgres"); the table modules branch on it only where SQLite has a feature
PostgreSQL lacks (the C writer, SQL functions written in Python, PRAGMAs)."""

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple, Union

from ..errors import StoreError
from ..private_files import make_private_dirs, open_private
from . import deferred, migrations, pg

SQLITE = "sqlite"
POSTGRES = pg.DIALECT


class Store:
    """A connection to the nomade store. Use ``open_store`` to get one. ``path``: the SQLite file,
    or for PostgreSQL the URL without its password (what messages name)."""

    def __init__(self, conn, path: Union[Path, str], dialect: str = SQLITE):
        self.conn = conn
        self.path = path
        self.dialect = dialect

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error; sqlite errors become StoreError."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"{self.path}: cannot start a write: {exc}",
                             hint="another nomade may hold the store; retry later") from None
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self.conn.execute("ROLLBACK") if self.conn.in_transaction else None
                raise StoreError(f"{self.path}: commit failed: {exc}") from None

    def schema_status(self) -> Tuple[List[int], List[migrations.Migration]]:
        return migrations.applied_versions(self.conn), migrations.pending(self.conn)


# the tables `nomade db status` counts
STATUS_TABLES = ("jobs", "job_steps", "samples", "scores", "models", "quarantine")


def apply_migrations(store: Store) -> List[migrations.Migration]:
    """Apply the pending migrations to ``store``; returns those applied (none: up to date)."""
    return migrations.migrate(store.conn, str(store.path))


def row_counts(store: Store, tables: Sequence[str] = STATUS_TABLES) -> Dict[str, int]:
    """How many rows each of ``tables`` (names from STATUS_TABLES) holds."""
    counts = {}
    for table in tables:
        if table not in STATUS_TABLES:
            raise ValueError(f"not a table row_counts counts: {table!r}")
        sql = f"SELECT count(*) FROM {table}"  # noqa: S608 (table names: STATUS_TABLES's constants)
        counts[table] = store.conn.execute(sql).fetchone()[0]
    return counts


def connect(path: Path, busy_timeout_ms: int = 10000, readonly: bool = False) -> sqlite3.Connection:
    """A connection to the store at ``path``. A writable one creates the store, and the directories
    it needs, private to the caller: files 0600 (-wal and -shm too), new directories 0700."""
    path = Path(path)
    try:
        if not readonly:
            make_private_dirs(path.parent)
            # created 0600 here, never by SQLite under the umask: SQLite gives -wal and -shm the
            # database file's mode, so they are private too. (No umask change: the umask is per
            # process, and other threads' subprocesses would inherit it.)
            if not os.path.lexists(path):
                try:
                    os.close(open_private(path, os.O_RDWR | os.O_EXCL))
                except FileExistsError:
                    pass                    # created meanwhile by another process
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                                   timeout=busy_timeout_ms / 1000)
        else:
            conn = sqlite3.connect(str(path), isolation_level=None, timeout=busy_timeout_ms / 1000)
        _configure(conn, busy_timeout_ms, readonly, path)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot open the store: {exc}",
                         hint="check the path, its permissions and free disk space") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot create the store: {exc.strerror}",
                         hint="check the path, its permissions and free disk space") from None
    conn.row_factory = sqlite3.Row
    return conn


def _configure(conn: sqlite3.Connection, busy_timeout_ms: int, readonly: bool, path: Path) -> None:
    """Busy timeout, WAL (writable connections) and a first read, which creates -wal and -shm."""
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if not readonly:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(f"{path}: cannot switch the store to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()


def open_store(path: Union[Path, str], busy_timeout_ms: int = 10000, migrate: bool = True,
               readonly: bool = False) -> Store:
    """Open (creating if needed) and, unless ``migrate`` is False, bring the schema up to date.
    A store written by a newer nomade raises StoreError and is left untouched. ``path``: a file
    (or ``sqlite:///path``), or a ``postgresql://`` URL."""
    if pg.is_url(path):
        return _open_postgres(str(path), busy_timeout_ms, migrate, readonly)
    path = sqlite_path(path)
    if readonly and not path.exists():
        raise StoreError(f"{path}: no store here", hint="run `nomade db migrate` or an ingest first")
    conn = connect(path, busy_timeout_ms, readonly=readonly)
    try:
        migrations.check_not_newer(conn, str(path))
        if migrate and not readonly:
            migrations.migrate(conn, str(path))
            deferred.heal(conn, str(path))  # indexes a bulk load that died left deferred
    except BaseException:
        conn.close()
        raise
    return Store(conn, path)


def _open_postgres(url: str, busy_timeout_ms: int, migrate: bool, readonly: bool) -> Store:
    name = pg.redact(url)
    conn = pg.connect(url, busy_timeout_ms, readonly=readonly)
    try:
        migrations.check_not_newer(conn, name)
        if migrate and not readonly:
            migrations.migrate(conn, name)
            deferred.heal(conn, name)
    except BaseException:
        conn.close()
        raise
    return Store(conn, name, POSTGRES)


def sqlite_path(target: Union[Path, str]) -> Path:
    """The file of a SQLite store named by a path or a ``sqlite:///path`` URL."""
    text = str(target)
    if text.startswith("sqlite://"):
        rest = text[len("sqlite://"):].lstrip("/")
        if not text.startswith("sqlite:///") or not rest:
            raise StoreError(f"{text}: a SQLite store URL is sqlite:///absolute/path/nomade.db")
        return Path("/" + rest)
    return Path(target)


def store_location(cfg) -> Union[Path, str]:
    """Where the configured store is: ``store.url`` when set (a PostgreSQL URL, or sqlite:///),
    else the SQLite file ``cfg.store_path``."""
    url = cfg.get("store.url") if "store.url" in cfg.values else ""
    if not url:
        return cfg.store_path
    return url if pg.is_url(url) else sqlite_path(url)


def store_from_config(cfg, migrate: bool = True, readonly: bool = False) -> Store:
    return open_store(store_location(cfg), cfg.get("store.busy_timeout_ms"), migrate=migrate,
                      readonly=readonly)


