"""Small read helpers the store's table modules share (not part of the store's interface)."""

import sqlite3
from typing import Any, Dict, List, Optional, Sequence


def _missing_table(exc: sqlite3.OperationalError) -> bool:
    return "no such table" in str(exc)


def all_rows(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> List[Dict[str, Any]]:
    """The rows of ``sql`` as dicts; none when its table is missing (a store from before the
    migration that adds it, opened read-only)."""
    try:
        return [dict(r) for r in conn.execute(sql, args).fetchall()]
    except sqlite3.OperationalError as exc:
        if _missing_table(exc):
            return []
        raise


def one_row(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> Optional[Dict[str, Any]]:
    """The first row of ``sql`` as a dict; None when there is none or its table is missing."""
    try:
        row = conn.execute(sql, args).fetchone()
    except sqlite3.OperationalError as exc:
        if _missing_table(exc):
            return None
        raise
    return dict(row) if row is not None else None


def placeholders(n: int) -> str:
    """``?,?,...`` for an ``IN (...)`` list of ``n`` values."""
    return ",".join("?" * n)
