"""The record of the jobs indexes a bulk load set aside (``deferred_indexes``): building them, and,
when a store is opened, building those a loader that is gone left (see nomade.store.bulk).
Connection-level, so ``db.open_store`` can use it without importing bulk."""

import os
import socket
import sqlite3
import time
from typing import List, Tuple

from ..errors import StoreError

STALE_AFTER_S = 6 * 3600   # a load that set indexes aside this long ago is taken as gone


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
        build(conn, stale)
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise StoreError(f"{path}: cannot rebuild the indexes a bulk load left: {exc}") from None
    return len(stale)


def build(conn: sqlite3.Connection, items: List[Tuple[str, str]]) -> int:
    """Build the (name, sql) indexes and drop their records; returns how many (in the caller's
    transaction)."""
    for name, sql in items:
        conn.execute(sql.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))
        conn.execute("DELETE FROM deferred_indexes WHERE name = ?", (name,))
    return len(items)


def recorded(conn: sqlite3.Connection) -> List[Tuple[str, str]]:
    """The (name, sql) of every index recorded as set aside."""
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
