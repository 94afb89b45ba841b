"""Bulk loads: the jobs table's secondary indexes set aside while many rows go in, and built again
(sorted, in one pass each) at the end. Maintaining them row by row (four then, three since
migration 0005) made up a third of a 1M-job dump's load; building them afterwards costs a
fraction of that. Lookups by key (the primary
key) stay indexed throughout, so upserts and idempotence are unchanged; readers meanwhile get the
same answers, only by scanning.

The indexes set aside are recorded in ``deferred_indexes`` in the same transaction that drops them,
so a load that dies leaves a record, and the next writer that opens the store (or ``nomade db
migrate``) builds them once the loader is gone.
"""

import os
import socket
import sqlite3
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, List, Tuple

from ..errors import StoreError

if TYPE_CHECKING:  # db imports this module
    from .db import Store

STALE_AFTER_S = 6 * 3600   # a load that set indexes aside this long ago is taken as gone


@contextmanager
def indexes_deferred(store: "Store", table: str = "jobs") -> Iterator[None]:
    """Drop ``table``'s secondary indexes for the duration of the block; rebuild them after it
    (also when it raises)."""
    with store.transaction() as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                            "AND sql IS NOT NULL", (table,)).fetchall()
        for name, sql in rows:
            conn.execute("INSERT OR REPLACE INTO deferred_indexes (name, sql, pid, host, deferred_at) "
                         "VALUES (?,?,?,?,?)", (name, sql, os.getpid(), socket.gethostname(), time.time()))
            conn.execute(f'DROP INDEX "{name}"')
    try:
        yield
    finally:
        rebuild(store, [r[0] for r in rows])


def rebuild(store: "Store", names: List[str]) -> int:
    """Build the deferred indexes named (all recorded ones if ``names`` is empty); returns how
    many were built."""
    with store.transaction() as conn:
        return _build(conn, [(n, s) for n, s in _recorded(conn) if not names or n in names])


def heal(conn: sqlite3.Connection, path: str) -> int:
    """Build indexes left deferred by a load that is gone (died, or killed); on open."""
    try:
        rows = conn.execute("SELECT name, sql, pid, host, deferred_at FROM deferred_indexes").fetchall()
    except sqlite3.OperationalError:   # store not migrated yet
        return 0
    stale = [(n, s) for n, s, pid, host, at in rows if _gone(pid, host, at)]
    if not stale:
        return 0
    try:
        conn.execute("BEGIN IMMEDIATE")
        _build(conn, stale)
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise StoreError(f"{path}: cannot rebuild the indexes a bulk load left: {exc}") from None
    return len(stale)


def _build(conn: sqlite3.Connection, items: List[Tuple[str, str]]) -> int:
    for name, sql in items:
        conn.execute(sql.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))
        conn.execute("DELETE FROM deferred_indexes WHERE name = ?", (name,))
    return len(items)


def _recorded(conn: sqlite3.Connection) -> List[Tuple[str, str]]:
    return [(r[0], r[1]) for r in conn.execute("SELECT name, sql FROM deferred_indexes ORDER BY name")]


def _gone(pid: int, host: str, at: float) -> bool:
    if time.time() - at > STALE_AFTER_S:   # also a dead loader whose pid was reused since
        return True
    if host != socket.gethostname():
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:   # alive, another user's
        return False
    return False
