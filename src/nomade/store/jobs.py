"""Writing jobs, steps and quarantined records: idempotent upserts with new/updated/unchanged counts;
the ingestion bookkeeping (high-water marks, accepted job owners). The rows come from
``nomade.jobrecord.record_rows`` (or the C reader, in the same form)."""

import hashlib
import itertools
import sqlite3
import sys
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import StoreError
from ..jobrecord import JOB_COLUMNS, STEP_COLUMNS, JobRecord, nulls_as
from ..jobrecord import record_rows as _record_rows
from .db import Store

try:  # the C helpers of sacct ingestion (optional; see nomade.slurm.sacct_scan)
    from ..slurm import _sacct_scan
except ImportError:  # pragma: no cover - depends on the install
    _sacct_scan = None

_JOB_COLS = JOB_COLUMNS + ("source", "record_hash", "ingested_at", "updated_at")


def _values(cols: Sequence[str], rows: int = 1) -> str:
    """``(c1, c2, ...) VALUES (?, ?, ...)``, the placeholders repeated for ``rows`` rows."""
    one = "(" + ",".join("?" * len(cols)) + ")"
    return f"({', '.join(cols)}) VALUES " + ",".join([one] * rows)


_INSERT_JOB = (
    f"INSERT INTO jobs {_values(_JOB_COLS)} "
    "ON CONFLICT (cluster, job_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _JOB_COLS if c not in ("cluster", "job_id", "ingested_at"))
)
_STEP_COLS = ("cluster", "job_id") + STEP_COLUMNS
# a step row replacing a stored one (portable form of INSERT OR REPLACE; job_steps has one key)
_UPSERT_STEP = (f"INSERT INTO job_steps {_values(_STEP_COLS)} ON CONFLICT (cluster, job_id, step_id) "
                "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _STEP_COLS
                                             if c not in ("cluster", "job_id", "step_id")))
_CHUNK = 500  # SQLite variable limit is 999 on old builds


def _nan_binds_null() -> bool:
    conn = sqlite3.connect(":memory:")
    try:
        return conn.execute("SELECT typeof(?)", (float("nan"),)).fetchone()[0] == "null"
    finally:
        conn.close()


# What the row writers bind for NULL. Python's sqlite3 binds None through its adapter lookup
# (about 0.3 us per value, 8x an int; rows here are a third NULLs), while a float goes straight
# to sqlite3_bind_double, and SQLite stores a NaN double as NULL. Checked on this SQLite at import.
SQL_NULL = float("nan") if _nan_binds_null() else None


def sql_nulls(row: tuple) -> tuple:
    """``row`` with its Nones as SQL_NULL."""
    return nulls_as(row, SQL_NULL)


def row_null(store: Store) -> object:
    """What rows written to ``store`` hold for an unknown value (``record_rows``'s ``null``; the C
    reader's): SQL_NULL on SQLite, None on PostgreSQL (where a NaN is no NULL in an integer or
    text column)."""
    return SQL_NULL if store.dialect == "sqlite" else None


@dataclass
class IngestCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0

    def add(self, other: "IngestCounts") -> None:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.quarantined += other.quarantined

    def as_dict(self) -> Dict[str, int]:
        return {"new": self.new, "updated": self.updated, "unchanged": self.unchanged,
                "quarantined": self.quarantined}

    def summary(self) -> str:
        return (f"{self.new} new, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.quarantined} quarantined")


def _existing(store: Store, keys: Sequence[Tuple[str, str]]) -> Dict[Tuple[str, str], tuple]:
    """(cluster, job_id) -> (record_hash, is_final, user, uid) for the keys already stored."""
    found: Dict[Tuple[str, str], tuple] = {}
    by_cluster: Dict[str, List[str]] = {}
    for c, j in keys:
        by_cluster.setdefault(c, []).append(j)
    if store.dialect != "sqlite":   # one short statement per cluster, prepared once
        for cluster, ids in by_cluster.items():
            for row in store.conn.execute("SELECT job_id, record_hash, is_final, user, uid FROM jobs "
                                          "WHERE cluster = ? AND job_id = ANY(?)", (cluster, ids)):
                found[(cluster, row[0])] = row[1:]
        return found
    for cluster, ids in by_cluster.items():
        for i in range(0, len(ids), _CHUNK):
            part = ids[i:i + _CHUNK]
            q = (f"SELECT job_id, record_hash, is_final, user, uid FROM jobs WHERE cluster = ? "  # noqa: S608 (placeholders)
                 f"AND job_id IN ({','.join('?' * len(part))})")
            for row in store.conn.execute(q, [cluster, *part]):
                found[(cluster, row[0])] = row[1:]
    return found


def upsert_jobs(store: Store, records: Iterable[JobRecord], source: str,
                now: Optional[float] = None) -> IngestCounts:
    """Insert or update ``records`` (one batch, one transaction). A record identical to the stored
    one is counted unchanged and not written; a non-final record never replaces a final one
    (an older snapshot arriving late), and counts as unchanged."""
    now = time.time() if now is None else now
    # the same job twice in one batch: keep the last (newest) snapshot
    latest: Dict[Tuple[str, str], Tuple[tuple, List[tuple]]] = {}
    null = row_null(store)
    for rec in records:
        latest[(rec.cluster, rec.job_id)] = _record_rows(rec, source, None, now, null)
    return write_rows(store, latest)


def record_rows(rec: JobRecord, source: str, record_hash: Optional[str],
                now: float) -> Tuple[tuple, List[tuple]]:
    """``rec`` as rows for this store (``nomade.jobrecord.record_rows`` with NULLs as SQL_NULL)."""
    return _record_rows(rec, source, record_hash, now, SQL_NULL)


# positions in a prepared jobs row (JOB_COLUMNS + source, record_hash, ingested_at, updated_at)
_HASH_AT = len(JOB_COLUMNS) + 1
_SOURCE_AT = len(JOB_COLUMNS)
_FINAL_AT = JOB_COLUMNS.index("is_final")
_USER_AT = JOB_COLUMNS.index("user")
_UID_AT = JOB_COLUMNS.index("uid")


def _known(v) -> bool:
    return v is not None and v == v   # SQL_NULL may be NaN


def owner_conflict(stored_user, stored_uid, user, uid) -> Optional[str]:
    """Why a row may not replace a stored job: another user name or uid than the stored job's
    (a forged or corrupt row: the stored record is kept), else None. Unknown values conflict
    with nothing (sacct --json has no uid)."""
    if _known(stored_user) and _known(user) and stored_user != user:
        return f"owner changed: stored user {stored_user!r}, this row {user!r}; the stored job is kept"
    if _known(stored_uid) and _known(uid) and stored_uid != uid:
        return f"owner changed: stored uid {stored_uid}, this row {uid}; the stored job is kept"
    return None


def conflict_item(source: str, cluster: str, job_id: str, user, uid, reason: str) -> tuple:
    """A quarantine item (source, location, reason, raw) for a job row refused for its owner."""
    raw = f"cluster={cluster} job_id={job_id} user={user if _known(user) else ''} uid={uid if _known(uid) else ''}"
    return (source, f"job {job_id}", reason, raw)


def write_rows(store: Store, latest: Dict[Tuple[str, str], Tuple[tuple, List[tuple]]],
               qsource: Optional[str] = None) -> IngestCounts:
    """Write prepared rows, ``(cluster, job_id) -> (jobs row, job_steps rows)``, in one
    transaction, with upsert_jobs's rules (unchanged: same record hash, or a stored final job
    and a non-final row). A row whose user or uid differs from the stored job's is not written
    but quarantined (under ``qsource``, else the row's source), the stored job kept."""
    if not latest:
        return IngestCounts()
    with store.transaction() as conn:
        # looked up inside the write transaction: no other writer can add these jobs meanwhile,
        # so jobs not found can take the plain INSERT (cheaper than the upsert clause)
        counts = IngestCounts()
        existing = _existing(store, list(latest))
        new_rows: List[tuple] = []
        job_rows: List[tuple] = []
        step_rows: List[tuple] = []
        restepped: List[Tuple[str, str]] = []
        refused: List[tuple] = []
        for key, (row, steps) in latest.items():
            prev = existing.get(key)
            if prev is not None:
                why = None if prev[0] == row[_HASH_AT] else owner_conflict(prev[2], prev[3], row[_USER_AT], row[_UID_AT])
                if why is not None:
                    refused.append(conflict_item(qsource or row[_SOURCE_AT], key[0], key[1], row[_USER_AT], row[_UID_AT], why))
                    continue
                if prev[0] == row[_HASH_AT] or (prev[1] and not row[_FINAL_AT]):
                    counts.unchanged += 1
                    continue
                counts.updated += 1
                job_rows.append(row)
                if steps:  # the record's steps replace the stored ones (a newer run's)
                    restepped.append(key)
            else:
                counts.new += 1
                new_rows.append(row)
            step_rows.extend(steps)
        postgres = store.dialect != "sqlite"
        if postgres:   # new for certain (looked up under the write lock): COPY, the fast way in
            conn.copy_rows("jobs", _JOB_COLS, new_rows)
        else:
            _insert_many(conn, "INSERT INTO jobs", _JOB_COLS, new_rows)
        if job_rows:
            conn.executemany(_INSERT_JOB, job_rows)
        if restepped:
            conn.executemany("DELETE FROM job_steps WHERE cluster = ? AND job_id = ?", restepped)
        try:  # a plain INSERT is much cheaper than an upsert, and no step of these is stored now
            if postgres:
                conn.copy_rows("job_steps", _STEP_COLS, step_rows)
            else:
                _insert_many(conn, "INSERT INTO job_steps", _STEP_COLS, step_rows)
        except sqlite3.IntegrityError:  # steps left without their job (not written by nomade)
            conn.executemany(_UPSERT_STEP, step_rows)
        counts.quarantined += _quarantine_rows(conn, refused, time.time())
        return counts


# the statements of the C writer (nomade.slurm._sacct_scan.Writer), in its order; the first binds
# a row's first ten values (the key, user as ?9, uid as ?10) and says whether the owner differs
assert (_USER_AT, _UID_AT) == (8, 9)  # noqa: S101 (module constants checked once at import)
_WRITER_SQL = (
    "SELECT record_hash, is_final, (user IS NOT NULL AND ?9 IS NOT NULL AND user <> ?9)"
    " OR (uid IS NOT NULL AND ?10 IS NOT NULL AND uid <> ?10), user, uid"
    " FROM jobs WHERE cluster = ?1 AND job_id = ?2",
    "INSERT INTO jobs " + _values(_JOB_COLS),
    _INSERT_JOB,
    "DELETE FROM job_steps WHERE cluster = ?1 AND job_id = ?2",
    "INSERT INTO job_steps " + _values(_STEP_COLS),
    "INSERT OR REPLACE INTO job_steps " + _values(_STEP_COLS),
)


def c_writer(store: Store, batch_size: int):
    """A ``_sacct_scan.Writer`` on its own connection to ``store`` (same rules as write_rows, for
    rows bound from C without Python objects), or None where it cannot be had: no C module, a
    store not in a file (PostgreSQL's included), or a SQLite library that is not the one
    Python's sqlite3 module uses."""
    if _sacct_scan is None or store.dialect != "sqlite":
        return None
    rows = store.conn.execute("PRAGMA database_list").fetchall()
    path = next((r[2] for r in rows if r[1] == "main"), "")
    if not path:
        return None
    busy = store.conn.execute("PRAGMA busy_timeout").fetchone()[0]
    lib = getattr(sys.modules.get("_sqlite3"), "__file__", None)
    major, minor, patch = sqlite3.sqlite_version_info
    version = major * 1000000 + minor * 1000 + patch   # as sqlite3_libversion_number() gives it
    try:
        return _sacct_scan.open_writer(path, lib, version, int(busy), batch_size, _WRITER_SQL)
    except ImportError:
        return None
    except _sacct_scan.WriteError as exc:
        raise StoreError(f"{store.path}: {exc}") from None


_MAX_VARS = 999  # SQLite's variable limit on old builds (3.32 raised it)
_multi_sql: Dict[Tuple[str, int], str] = {}


def _insert_many(conn, verb: str, cols: Sequence[str], rows: List[tuple]) -> None:
    """``verb (cols) VALUES (...), (...), ...``: many rows per statement (fewer steps into SQLite
    than executemany, one row at a time, for the same rows)."""
    if not rows:
        return
    per = max(1, _MAX_VARS // len(cols))
    full = len(rows) - len(rows) % per
    if full:
        sql = _multi_sql.get((verb, per))
        if sql is None:
            sql = _multi_sql[(verb, per)] = f"{verb} {_values(cols, per)}"
        if _sacct_scan is not None:
            for params in _sacct_scan.flatten(rows, per):
                conn.execute(sql, params)
        else:
            chain = itertools.chain.from_iterable
            for i in range(0, full, per):
                conn.execute(sql, tuple(chain(rows[i:i + per])))
    if full < len(rows):
        conn.executemany(f"{verb} {_values(cols)}", rows[full:])


def quarantine(store: Store, items: Iterable[Tuple[str, Optional[str], str, str]],
               now: Optional[float] = None) -> int:
    """Store bad records: (source, location, reason, raw). The same raw text from the same source
    is kept once. Returns how many were given (each counts, even if already stored)."""
    now = time.time() if now is None else now
    items = list(items)
    if items:
        with store.transaction() as conn:
            _quarantine_rows(conn, items, now)
    return len(items)


def _quarantine_rows(conn, items: List[tuple], now: float) -> int:
    rows = []
    for source, location, reason, raw in items:
        digest = hashlib.blake2b(raw.encode("utf-8", "replace"), digest_size=16).hexdigest()
        rows.append((source, location, reason, raw, digest, now))
    if rows:
        conn.executemany(
            "INSERT INTO quarantine (source, location, reason, raw, raw_hash, created_at) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT (source, raw_hash) DO NOTHING", rows)
    return len(rows)


def job_count(store: Store) -> int:
    """How many jobs the store holds."""
    return store.conn.execute("SELECT count(*) FROM jobs").fetchone()[0]


def widen_cache(store: Store) -> None:
    """A bigger page cache (64 MiB) on ``store``'s connection for a long write: it keeps the jobs
    indexes' hot pages in memory; no durability change. (PostgreSQL: the server's shared_buffers.)"""
    if store.dialect == "sqlite":
        store.conn.execute("PRAGMA cache_size = -65536")


def jobs_mark(store: Store) -> int:
    """The highest jobs rowid now: rows inserted later have greater ones (see check_owners; on
    PostgreSQL the rowid is an identity column, nomade.store.dialect)."""
    return store.conn.execute("SELECT coalesce(max(rowid), 0) FROM jobs").fetchone()[0]


def check_owners(store: Store, since: int, qsource: str) -> int:
    """Quarantine the jobs inserted after ``jobs_mark`` gave ``since`` whose (user, uid) pair
    contradicts the store (``job_owners``) or an earlier row of the same run: a user name with
    another uid, or a uid with another user name. They are deleted with their steps and kept in
    quarantine with the reason; pairs that agree are recorded. Returns how many were quarantined.
    Reads only the new rows and the small owners table."""
    # NOT INDEXED: a range of the rowid b-tree (the new rows only), never a walk of a big index
    with store.transaction() as conn:
        pairs = conn.execute(
            "SELECT DISTINCT cluster, user, uid FROM jobs NOT INDEXED WHERE rowid > ? "
            "AND user IS NOT NULL AND uid IS NOT NULL", (since,)).fetchall()
        known = [tuple(r) for r in conn.execute("SELECT cluster, user, uid FROM job_owners")]
        known_set = set(known)
        new = [tuple(p) for p in pairs if tuple(p) not in known_set]
        if not new:
            return 0
        if _contradictions(known, new):   # rare: the order the rows came in decides
            new = [tuple(p[:3]) for p in conn.execute(
                "SELECT cluster, user, uid, min(rowid) AS first FROM jobs NOT INDEXED WHERE rowid > ? "
                "AND user IS NOT NULL AND uid IS NOT NULL GROUP BY cluster, user, uid ORDER BY first",
                (since,)) if tuple(p[:3]) not in known_set]
        accepted, refused = _owner_verdicts(known, new)
        conn.executemany("INSERT INTO job_owners (cluster, user, uid) VALUES (?,?,?) "
                         "ON CONFLICT (cluster, user, uid) DO NOTHING", accepted)
        items: List[tuple] = []
        for (cluster, user, uid), why in refused:
            where = "FROM jobs NOT INDEXED WHERE rowid > ? AND cluster = ? AND user = ? AND uid = ?"
            ids = [r[0] for r in conn.execute("SELECT job_id " + where, (since, cluster, user, uid))]
            items.extend(conflict_item(qsource, cluster, j, user, uid, why) for j in ids)
            conn.executemany("DELETE FROM job_steps WHERE cluster = ? AND job_id = ?", [(cluster, j) for j in ids])
            conn.execute("DELETE " + where, (since, cluster, user, uid))
        return _quarantine_rows(conn, items, time.time())


def _contradictions(known: List[tuple], new: List[tuple]) -> bool:
    """Whether some user name has two uids, or some uid two names, among the pairs."""
    users = {(c, u) for c, u, _ in known + new}
    uids = {(c, i) for c, _, i in known + new}
    pairs = set(known + new)
    return len(users) < len(pairs) or len(uids) < len(pairs)


def _owner_verdicts(known: List[tuple], new: List[tuple]) -> Tuple[List[tuple], List[Tuple[tuple, str]]]:
    """Split the new (cluster, user, uid) pairs, in the order first seen, into those that agree
    with the known pairs and the earlier new ones, and those that do not (with the reason)."""
    pairs = set(known)
    uid_of: Dict[Tuple[str, str], int] = {}
    user_of: Dict[Tuple[str, int], str] = {}
    for cluster, user, uid in known:
        uid_of.setdefault((cluster, user), uid)
        user_of.setdefault((cluster, uid), user)
    accepted: List[tuple] = []
    refused: List[Tuple[tuple, str]] = []
    for pair in new:
        cluster, user, uid = pair
        if uid == 0 and user != "root":
            # slurmdbd answers with such a half record (uid 0, group root, QOS Unknown) for a job
            # whose end it has before its start; pinning (user, 0) would refuse the real record
            refused.append((pair, f"uid 0 for user {user!r}: a partial accounting record (slurmdbd "
                                  "has not had the job's start yet); it is read again on a later run"))
            continue
        if pair not in pairs:
            other_uid = uid_of.get((cluster, user))
            other_user = user_of.get((cluster, uid))
            if other_uid is not None:
                refused.append((pair, f"user {user!r} has uid {other_uid}, this row says {uid}"))
                continue
            if other_user is not None:
                refused.append((pair, f"uid {uid} belongs to user {other_user!r}, this row says {user!r}"))
                continue
            pairs.add(pair)
            uid_of[(cluster, user)] = uid
            user_of[(cluster, uid)] = user
        accepted.append(pair)
    return accepted, refused


def get_high_water(store: Store, source: str) -> Optional[float]:
    """The high-water mark of ``source`` (a live sacct ingestion's), None before its first run."""
    row = store.conn.execute("SELECT high_water FROM ingest_state WHERE source = ?", (source,)).fetchone()
    return None if row is None else row[0]


def set_high_water(store: Store, source: str, value: float) -> None:
    """Move ``source``'s high-water mark to ``value`` (never backwards)."""
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO ingest_state (source, high_water, updated_at) VALUES (?,?,?) "
            "ON CONFLICT (source) DO UPDATE SET "
            "high_water = max(coalesce(ingest_state.high_water, 0), excluded.high_water), "
            "updated_at = excluded.updated_at", (source, value, time.time()))


def high_waters(store: Store) -> Dict[str, Tuple[Optional[float], float]]:
    """Every ingestion source's (high-water mark, when it last moved), by source name
    (``sacct:<cluster>``, ...): what ``/metrics`` reports as the ingest lag."""
    rows = store.conn.execute("SELECT source, high_water, updated_at FROM ingest_state ORDER BY source")
    return {r[0]: (r[1], r[2]) for r in rows.fetchall()}
