"""Bulk loads: the jobs table's secondary indexes set aside while many rows go in, and built again
(sorted, in one pass each) at the end. Maintaining them row by row (four then, three since
migration 0005) made up a third of a 1M-job dump's load; building them afterwards costs a
fraction of that. Lookups by key (the primary
key) stay indexed throughout, so upserts and idempotence are unchanged; readers meanwhile get the
same answers, only by scanning.

The indexes set aside are recorded in ``deferred_indexes`` in the same transaction that drops them,
so a load that dies leaves a record, and the next writer that opens the store (or ``nomade db
migrate``) builds them once the loader is gone (nomade.store.deferred).
"""

import os
import socket
import time
from contextlib import contextmanager
from typing import Iterator, List, Tuple

from . import deferred
from .db import Store


@contextmanager
def indexes_deferred(store: Store, table: str = "jobs") -> Iterator[None]:
    """Drop ``table``'s secondary indexes for the duration of the block; rebuild them after it
    (also when it raises)."""
    with store.transaction() as conn:
        rows = _secondary_indexes(store, table)
        for name, sql in rows:
            conn.execute("INSERT INTO deferred_indexes (name, sql, pid, host, deferred_at) "
                         "VALUES (?,?,?,?,?) ON CONFLICT (name) DO UPDATE SET sql = excluded.sql, "
                         "pid = excluded.pid, host = excluded.host, deferred_at = excluded.deferred_at",
                         (name, sql, os.getpid(), socket.gethostname(), time.time()))
            conn.execute(f'DROP INDEX "{name}"')
    try:
        yield
    finally:
        rebuild(store, [r[0] for r in rows])


def _secondary_indexes(store: Store, table: str) -> List[Tuple[str, str]]:
    """(name, CREATE INDEX statement) of ``table``'s indexes that no constraint needs."""
    if store.dialect != "sqlite":
        from .pg import index_definitions
        return index_definitions(store.conn, table)
    return [(r[0], r[1]) for r in store.conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
        (table,))]


def rebuild(store: Store, names: List[str]) -> int:
    """Build the deferred indexes named (all recorded ones if ``names`` is empty); returns how
    many were built."""
    with store.transaction() as conn:
        return deferred.build(conn, [(n, s) for n, s in deferred.recorded(conn) if not names or n in names])
