"""Copying a whole store to another engine or place (``nomade db copy``): SQLite to PostgreSQL and
back. Both stores are at the same schema version (the target is migrated on open; a source
behind it is refused, ``nomade db migrate`` it first). Every table of the schema is copied by
column name, in batches, each batch one transaction on the target; a row whose key the target
holds already is left as it is (``ON CONFLICT DO NOTHING``), so a copy that is run again, or
resumed after it died, adds only what is missing. A table without a key (``collector_runs``) is
copied only into an empty table. At the end the counts are compared: the target must hold at
least the source's rows in every table (more when it held rows of its own before)."""

from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence

from ..errors import StoreError
from .db import Store

BATCH = 5000
SKIP = ("schema_migrations", "deferred_indexes")


@dataclass
class TableCopy:
    table: str
    source_rows: int
    target_before: int
    target_after: int

    @property
    def added(self) -> int:
        return self.target_after - self.target_before


@dataclass
class CopyResult:
    tables: List[TableCopy] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Dict[str, int]]:
        return {t.table: {"source": t.source_rows, "target_before": t.target_before,
                          "target_after": t.target_after, "added": t.added} for t in self.tables}


def tables(store: Store) -> List[str]:
    """The store's tables (nomade's own bookkeeping left out), by name."""
    if store.dialect == "sqlite":
        rows = store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                  "AND name NOT LIKE 'sqlite%' ORDER BY name").fetchall()
    else:
        rows = store.conn.execute("SELECT table_name FROM information_schema.tables "
                                  "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' "
                                  "ORDER BY table_name").fetchall()
    return [r[0] for r in rows if r[0] not in SKIP]


def columns(store: Store, table: str) -> List[str]:
    """``table``'s columns in their order (PostgreSQL's hidden rowid column left out)."""
    if store.dialect == "sqlite":
        return [r[1] for r in store.conn.execute("SELECT * FROM pragma_table_info(?)", (table,))]
    from .dialect import ROWID
    rows = store.conn.execute("SELECT column_name FROM information_schema.columns WHERE "
                              "table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
                              (table,)).fetchall()
    return [r[0] for r in rows if r[0] != ROWID]


def has_key(store: Store, table: str) -> bool:
    """Whether ``table`` has a primary key or a unique constraint (ON CONFLICT can skip a row)."""
    if store.dialect == "sqlite":
        pk = store.conn.execute("SELECT count(*) FROM pragma_table_info(?) WHERE pk > 0", (table,)).fetchone()[0]
        uniq = store.conn.execute("SELECT count(*) FROM pragma_index_list(?) WHERE \"unique\" = 1",
                                  (table,)).fetchone()[0]
        return bool(pk or uniq)
    from .dialect import ROWID
    return bool(store.conn.execute("SELECT count(*) FROM pg_constraint WHERE conrelid = to_regclass(?) "
                                   "AND contype IN ('p', 'u') AND pg_get_constraintdef(oid) <> ?",
                                   (table, f"UNIQUE ({ROWID})")).fetchone()[0])


def references(store: Store, table: str) -> List[str]:
    """The tables ``table``'s foreign keys point to."""
    if store.dialect == "sqlite":
        rows = store.conn.execute('SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)', (table,)).fetchall()
    else:
        rows = store.conn.execute("SELECT DISTINCT confrelid::regclass::text FROM pg_constraint "
                                  "WHERE conrelid = to_regclass(?) AND contype = 'f'", (table,)).fetchall()
    return [r[0] for r in rows if r[0] != table]


def _referenced_first(store: Store, names: List[str]) -> List[str]:
    """``names`` ordered so that a table comes after those its foreign keys point to."""
    deps = {t: [d for d in references(store, t) if d in names] for t in names}
    out: List[str] = []

    def visit(t: str, seen: tuple) -> None:
        if t in out or t in seen:
            return
        for d in deps[t]:
            visit(d, seen + (t,))
        out.append(t)
    for t in names:
        visit(t, ())
    return out


def _count(store: Store, table: str) -> int:
    return store.conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]  # noqa: S608 (a table name the store listed)


def _rows(store: Store, table: str, cols: Sequence[str]) -> Iterator[Sequence[object]]:
    names = ", ".join(f'"{c}"' for c in cols)
    sql = f'SELECT {names} FROM "{table}"'  # noqa: S608 (names the store listed)
    if store.dialect == "sqlite":
        yield from store.conn.execute(sql)
    else:
        yield from store.conn.stream(sql, BATCH)


def copy_store(source: Store, target: Store,
               progress: Optional[Callable[[str, int], None]] = None) -> CopyResult:
    """Copy every table of ``source`` into ``target`` (see the module's docstring); ``progress``
    is called with (table, rows copied so far) after each batch. Raises StoreError when the
    schemas differ or a count does not add up."""
    src_v, dst_v = source.schema_status()[0], target.schema_status()[0]
    if src_v != dst_v:
        raise StoreError(f"{source.path} is at schema {max(src_v or [0])}, {target.path} at "
                         f"{max(dst_v or [0])}: the stores must be at one version",
                         hint="run `nomade db migrate` on the older one (or upgrade nomade)")
    result = CopyResult()
    wanted = set(tables(target))
    for table in _referenced_first(source, tables(source)):
        if table not in wanted:
            raise StoreError(f"{target.path} has no table {table!r} (a table nomade did not create?)")
        result.tables.append(_copy_table(source, target, table, progress))
    return result


def _copy_table(source: Store, target: Store, table: str,
                progress: Optional[Callable[[str, int], None]]) -> TableCopy:
    cols = columns(source, table)
    missing = set(cols) - set(columns(target, table))
    if missing:
        raise StoreError(f"{target.path}: table {table} lacks columns {sorted(missing)}")
    n_src, before = _count(source, table), _count(target, table)
    keyed = has_key(target, table)
    if not keyed and before:
        if before != n_src:
            raise StoreError(f"{target.path}: {table} (no key) already holds {before} rows, the "
                             f"source {n_src}; a table without a key is copied only into an empty one")
        return TableCopy(table, n_src, before, before)
    names = ", ".join(f'"{c}"' for c in cols)
    marks = ", ".join("?" * len(cols))
    sql = f'INSERT INTO "{table}" ({names}) VALUES ({marks})' + (" ON CONFLICT DO NOTHING" if keyed else "")  # noqa: S608
    # into an empty PostgreSQL table: COPY (no row can conflict, nothing else writes meanwhile:
    # the batches after the first go in under the write lock too, as upserts would)
    copy_in = target.dialect != "sqlite" and before == 0
    batch: List[Sequence[object]] = []
    done = 0
    for row in _rows(source, table, cols):
        batch.append(tuple(row))
        if len(batch) >= BATCH:
            done += _write(target, sql, batch, table, cols, copy_in)
            batch = []
            if progress is not None:
                progress(table, done)
    done += _write(target, sql, batch, table, cols, copy_in)
    if target.dialect != "sqlite":
        _advance_identity(target, table)
    after = _count(target, table)
    if after < n_src:
        raise StoreError(f"{target.path}: {table} holds {after} rows after the copy, the source {n_src}")
    return TableCopy(table, n_src, before, after)


def _write(target: Store, sql: str, rows: List[Sequence[object]], table: str, cols: Sequence[str],
           copy_in: bool) -> int:
    if rows:
        with target.transaction() as conn:
            if copy_in:
                conn.copy_rows(table, cols, rows)
            else:
                conn.executemany(sql, rows)
    return len(rows)


def _advance_identity(target: Store, table: str) -> None:
    """After rows came with their ids: the identity column's next value past the largest."""
    for (col,) in target.conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(?) AND attidentity <> '' "
            "AND NOT attisdropped AND attname <> 'nomade_rowid'", (table,)).fetchall():
        target.conn.execute(f"SELECT setval(pg_get_serial_sequence(?, ?), "  # noqa: S608 (a column the store listed)
                            f'coalesce((SELECT max("{col}") FROM "{table}"), 0) + 1, false)', (table, col))
