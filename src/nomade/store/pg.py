"""PostgreSQL under the store's interface (psycopg 3, the ``postgres`` extra, imported only here and
only when a ``postgresql://`` store is opened).

``PgConnection`` answers what the store's modules ask of a ``sqlite3.Connection``: ``execute`` and
``executemany`` with ``?`` placeholders (translated by nomade.store.dialect), cursors with
``fetchone``/``fetchall``/iteration, ``rowcount``, ``lastrowid`` (an INSERT into a table with an
identity column returns it), ``total_changes`` and ``in_transaction``; rows readable by position
and by column name, like ``sqlite3.Row``. Its errors are subclasses of sqlite3's DB-API classes
(``OperationalError`` for a missing table, with SQLite's "no such table" wording, a lock wait
past the timeout or anything else; ``IntegrityError`` for a constraint), so a store module
catches one set of classes on both engines.

Values go in as SQLite keeps them: a NaN float is NULL, a bool an integer, a NUL character in text
(which PostgreSQL's text refuses) U+FFFD; sums and averages come back as int or float, never
Decimal, and a comparison's value as 1 or 0.

Transactions: the connection is in autocommit mode, and ``BEGIN IMMEDIATE`` (what
``Store.transaction`` runs) is a transaction that first takes the store's write lock, a
transaction-level advisory lock: writers take turns as SQLite's do, so the modules' "look up, then
insert" stays right with several ingesters on several hosts, and no two writers can deadlock.
A wait for it longer than ``store.busy_timeout_ms`` fails like SQLite's busy timeout.
"""

import re
import sqlite3
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..errors import StoreError
from .dialect import ROWID, translate

DIALECT = "postgres"
WRITE_LOCK = 0x6E6F6D616465    # 'nomade': the advisory lock key every store writer takes

_BEGIN = {"begin": False, "begin deferred": False, "begin transaction": False,
          "begin immediate": True, "begin exclusive": True}
_INSERT_INTO = re.compile(r"^\s*insert\s+(?:or\s+\w+\s+)?into\s+\"?(\w+)", re.IGNORECASE)


class PgOperationalError(sqlite3.OperationalError):
    """A PostgreSQL error the store sees as SQLite's OperationalError."""


class PgIntegrityError(sqlite3.IntegrityError):
    """A PostgreSQL constraint violation."""


def redact(url: str) -> str:
    """``url`` without its password (for messages)."""
    url = re.sub(r"(://[^:/@?]*):[^@/]*@", r"\1:***@", url)
    return re.sub(r"(password=)[^&\s]*", r"\1***", url)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _mapped(exc: Exception) -> sqlite3.Error:
    import psycopg
    from psycopg import errors
    if isinstance(exc, errors.UndefinedTable):
        return PgOperationalError(f"no such table: {_first_line(exc)}")
    if isinstance(exc, psycopg.IntegrityError):
        return PgIntegrityError(_first_line(exc))
    if isinstance(exc, (errors.LockNotAvailable, errors.QueryCanceled)):
        return PgOperationalError(f"database is locked: {_first_line(exc)}")
    return PgOperationalError(_first_line(exc))


class PgRow(tuple):
    """A row read by position or by column name (``row["job_id"]``, ``dict(row)``)."""

    __slots__ = ()
    _names: Tuple[str, ...] = ()
    _index: Dict[str, int] = {}

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            i = self._index.get(key)
            if i is None:
                i = self._index.get(key.lower())
                if i is None:
                    raise IndexError(f"No item with that key: {key!r}")
            key = i
        return tuple.__getitem__(self, key)

    def keys(self) -> List[str]:
        return list(self._names)


_row_classes: Dict[Tuple[str, ...], type] = {}


def _row_class(names: Tuple[str, ...]) -> type:
    cls = _row_classes.get(names)
    if cls is None:
        index = {}
        for i, n in reversed(list(enumerate(names))):
            index[n] = i
            index.setdefault(n.lower(), i)
        cls = _row_classes[names] = type("PgRow", (PgRow,), {"__slots__": (), "_names": names,
                                                             "_index": index})
    return cls


def _row_factory(cursor):
    desc = cursor.description or []
    names = tuple(d.name for d in desc)
    if ROWID in names and len(names) > 1:           # SELECT * of a table: the column is hidden
        keep = [i for i, n in enumerate(names) if n != ROWID]
        cls = _row_class(tuple(names[i] for i in keep))
        return lambda values: cls([values[i] for i in keep])
    cls = _row_class(names)
    return cls


class PgCursor:
    """The result of one statement."""

    def __init__(self, cur, lastrowid: Optional[int] = None):
        self._cur = cur
        self.lastrowid = lastrowid
        self.rowcount = cur.rowcount if cur is not None else -1

    @property
    def description(self):
        return None if self._cur is None else self._cur.description

    def _call(self, name: str, *args):
        if self._cur is None or self._cur.description is None:
            return None if name == "fetchone" else []
        try:
            return getattr(self._cur, name)(*args)
        except _db_error() as exc:
            raise _mapped(exc) from None

    def fetchone(self):
        return self._call("fetchone")

    def fetchall(self) -> List[Any]:
        return self._call("fetchall")

    def fetchmany(self, size: int = 1000) -> List[Any]:
        return self._call("fetchmany", size)

    def __iter__(self) -> Iterator[Any]:
        if self._cur is None or self._cur.description is None:
            return iter(())
        return self._rows()

    def _rows(self) -> Iterator[Any]:
        """Row objects made as they are read (the result itself is in libpq's memory)."""
        try:
            yield from self._cur
        except _db_error() as exc:
            raise _mapped(exc) from None

    def close(self) -> None:
        if self._cur is not None:
            self._cur.close()


def _db_error() -> type:
    import psycopg
    return psycopg.Error


class PgConnection:
    """A psycopg connection speaking the store's SQL (see the module's docstring)."""

    dialect = DIALECT

    def __init__(self, conn, busy_timeout_ms: int):
        self._conn = conn
        self.busy_timeout_ms = busy_timeout_ms
        self.total_changes = 0
        self._identity: Dict[str, Optional[str]] = {}
        self._types: Dict[tuple, Optional[List[str]]] = {}
        self.row_factory = None   # accepted, unused: rows are always PgRow

    # -------------------------------------------------------------- sqlite3.Connection's surface
    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus
        return self._conn.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self._conn.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PgCursor:
        key = " ".join(sql.lower().split())
        if key in _BEGIN:
            self._begin(write=_BEGIN[key])
            return PgCursor(None)
        if key.startswith("pragma"):
            raise StoreError(f"PRAGMA is SQLite's; not run on PostgreSQL: {sql.strip()[:80]}")
        text = translate(sql)
        returning = None
        m = _INSERT_INTO.match(sql)
        if m and " returning " not in key:
            returning = self._identity_column(m.group(1))
            if returning:
                text = f'{text.rstrip().rstrip(";")} RETURNING "{returning}"'
        try:
            cur = self._conn.execute(text, tuple(params))
        except _db_error() as exc:
            raise _mapped(exc) from None
        if cur.description is None or returning:
            self.total_changes += max(cur.rowcount, 0)
        lastrowid = None
        if returning:
            rows = cur.fetchall()
            lastrowid = rows[-1][0] if rows else None
        return PgCursor(cur, lastrowid)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> PgCursor:
        text = translate(sql)
        cur = self._conn.cursor()
        try:
            cur.executemany(text, [tuple(p) for p in seq])
        except _db_error() as exc:
            raise _mapped(exc) from None
        self.total_changes += max(cur.rowcount, 0)
        return PgCursor(cur)

    def execute_native(self, sql: str) -> None:
        """Run PostgreSQL text as it is (translated migrations, the prelude)."""
        try:
            self._conn.execute(sql)
        except _db_error() as exc:
            raise _mapped(exc) from None

    def stream(self, sql: str, size: int = 5000, params: Sequence[Any] = ()) -> Iterator[Any]:
        """The rows of a SELECT, ``size`` at a time from a server-side cursor (bounded memory
        for a table of any size), in a read transaction of its own."""
        counter = getattr(self, "_streams", 0) + 1
        self._streams = counter
        try:
            with self._conn.transaction():
                with self._conn.cursor(name=f"nomade_stream_{counter}") as cur:
                    cur.itersize = size
                    cur.execute(translate(sql), tuple(params))
                    yield from cur
        except _db_error() as exc:
            raise _mapped(exc) from None

    def copy_rows(self, table: str, cols: Sequence[str], rows: List[Sequence[Any]]) -> int:
        """``rows`` into ``table`` by COPY (inside the caller's transaction; the rows must be new:
        a key already stored fails the COPY, as a plain INSERT would). Text with a NUL character
        is sent as for ``execute``. Returns how many rows went in."""
        if not rows:
            return 0
        names = ", ".join('"' + c.replace('"', '""') + '"' for c in cols)
        stmt = f'COPY "{table}" ({names}) FROM STDIN'
        self.execute("SAVEPOINT nomade_copy")
        try:
            self._copy(stmt, rows, self._column_types(table, cols))
        except (_db_error(), TypeError, ValueError, OverflowError) as exc:
            # NUL in text, or a value the binary format will not take: again, as text
            self._conn.execute("ROLLBACK TO SAVEPOINT nomade_copy")
            if isinstance(exc, _db_error()) and not _is_nul_error(exc) and not isinstance(exc, _data_error()):
                raise _mapped(exc) from None
            try:
                self._copy(stmt, [_nul_free(r) for r in rows])
            except _db_error() as again:
                self._conn.execute("ROLLBACK TO SAVEPOINT nomade_copy")
                raise _mapped(again) from None
        self._conn.execute("RELEASE SAVEPOINT nomade_copy")
        self.total_changes += len(rows)
        return len(rows)

    def _copy(self, stmt: str, rows: List[Sequence[Any]], types: Optional[List[str]] = None) -> None:
        import psycopg
        from psycopg.adapt import PyFormat
        cur = self._conn.cursor()
        for typ in (str, float):    # psycopg's own (C) dumpers: NaN and NUL are the caller's
            cur.adapters.register_dumper(typ, psycopg.adapters.get_dumper(typ, PyFormat.TEXT))
        with cur.copy(stmt + (" (FORMAT BINARY)" if types else "")) as cp:
            if types:
                cp.set_types(types)
            for row in rows:
                cp.write_row(row)

    def _column_types(self, table: str, cols: Sequence[str]) -> Optional[List[str]]:
        """The columns' types for a binary COPY (None: a type it does not send)."""
        key = (table,) + tuple(cols)
        if key not in self._types:
            rows = self._conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                                      "WHERE table_schema = current_schema() AND table_name = %s", (table,)).fetchall()
            have = {r[0]: _BINARY_TYPES.get(r[1]) for r in rows}
            types = [have.get(c) for c in cols]
            self._types[key] = None if None in types else types
        return self._types[key]

    def create_function(self, *args, **kwargs) -> None:
        raise PgOperationalError("SQL functions written in Python are SQLite's only")

    # -------------------------------------------------------------- helpers
    def _begin(self, write: bool) -> None:
        try:
            self._conn.execute("BEGIN")
            if write:
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        except _db_error() as exc:
            err = _mapped(exc)
            if self.in_transaction:
                self._conn.execute("ROLLBACK")
            raise err from None

    def _identity_column(self, table: str) -> Optional[str]:
        table = table.lower()
        if table not in self._identity:
            row = self._conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attidentity <> '' "
                "AND attname <> %s AND NOT attisdropped ORDER BY attnum LIMIT 1", (table, ROWID)).fetchone()
            self._identity[table] = row[0] if row else None
        return self._identity[table]


_BINARY_TYPES = {"text": "text", "bigint": "int8", "double precision": "float8", "bytea": "bytea"}


def _data_error() -> type:
    import psycopg
    return psycopg.DataError


def _is_nul_error(exc: BaseException) -> bool:
    return "NUL (0x00)" in str(exc) or "0x00" in str(exc)


def _nul_free(row: Sequence[Any]) -> tuple:
    return tuple(v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in row)


def connect(url: str, busy_timeout_ms: int = 10000, readonly: bool = False) -> PgConnection:
    """A connection to the PostgreSQL store at ``url`` (a libpq URL; the password from
    ~/.pgpass, PGPASSFILE or PGPASSWORD, or the URL's ``passfile=``)."""
    try:
        import psycopg
    except ImportError:
        raise StoreError(f"{redact(url)}: a PostgreSQL store needs psycopg",
                         hint="pip install 'nomade[postgres]'") from None
    try:
        raw = psycopg.connect(url, autocommit=True, row_factory=_row_factory,
                              connect_timeout=max(1, int(busy_timeout_ms / 1000)))
    except psycopg.Error as exc:
        raise StoreError(f"{redact(url)}: cannot connect to PostgreSQL: {_first_line(exc)}",
                         hint="check the URL, the server, and the role's password file") from None
    _adapt(raw)
    try:
        raw.execute(f"SET lock_timeout = {int(busy_timeout_ms)}")
        if readonly:
            raw.execute("SET default_transaction_read_only = on")
    except psycopg.Error as exc:
        raw.close()
        raise StoreError(f"{redact(url)}: cannot configure the session: {_first_line(exc)}") from None
    return PgConnection(raw, busy_timeout_ms)


def _adapt(conn) -> None:
    """Values in and out as SQLite has them (see the module's docstring)."""
    from psycopg import postgres
    from psycopg.adapt import Dumper, Loader
    from psycopg.types.numeric import FloatDumper
    from psycopg.types.string import StrDumperUnknown

    class NanNullDumper(FloatDumper):
        def dump(self, obj):
            return None if obj != obj else super().dump(obj)

    class BoolIntDumper(Dumper):
        oid = postgres.types["int8"].oid

        def dump(self, obj):
            return b"1" if obj else b"0"

    class NulFreeStrDumper(StrDumperUnknown):
        def dump(self, obj):
            return super().dump(obj.replace("\x00", "\ufffd") if "\x00" in obj else obj)

    class NumberLoader(Loader):
        def load(self, data):
            text = bytes(data).decode("ascii")
            if "." in text or "e" in text or "N" in text or "I" in text:
                return float(text)
            return int(text)

    conn.adapters.register_dumper(float, NanNullDumper)
    conn.adapters.register_dumper(bool, BoolIntDumper)
    conn.adapters.register_dumper(str, NulFreeStrDumper)
    class BoolIntLoader(Loader):
        def load(self, data):
            return 1 if bytes(data) == b"t" else 0

    conn.adapters.register_loader("numeric", NumberLoader)
    conn.adapters.register_loader("bool", BoolIntLoader)   # a comparison's value: 1 or 0, as SQLite


def is_url(target: Any) -> bool:
    """Whether ``target`` (a store's path or URL) names a PostgreSQL store."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def table_exists(conn: PgConnection, name: str) -> bool:
    return conn._conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]


def index_definitions(conn: PgConnection, table: str) -> List[Tuple[str, str]]:
    """(name, CREATE INDEX statement) of ``table``'s indexes that back no constraint."""
    rows = conn._conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = %s AND indexname NOT IN (SELECT conname FROM pg_constraint "
        "WHERE conrelid = to_regclass(%s))", (table, table)).fetchall()
    return [(r[0], r[1]) for r in rows]
