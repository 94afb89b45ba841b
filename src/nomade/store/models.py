"""The ``models`` table: the registry's bundles and their status (candidate, current, retired).
Manifests are stored as JSON text and handed back as dicts."""

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from .db import Store


@dataclass
class ModelRow:
    """One ``models`` row, its manifest decoded."""
    version: str
    path: str
    status: str
    created_at: float
    promoted_at: Optional[float]
    manifest: Dict[str, Any]


_COLS = "version, path, status, created_at, promoted_at, manifest"


def _model(r) -> ModelRow:
    return ModelRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]))


def add_model(store: Store, version: str, path: str, status: str, created_at: float,
              manifest: Dict[str, Any]) -> None:
    """Record a bundle (replacing a row of the same version), not yet promoted."""
    with store.transaction() as c:
        c.execute(f"INSERT INTO models ({_COLS}) VALUES (?, ?, ?, ?, NULL, ?) "  # noqa: S608 (constant columns)
                  "ON CONFLICT (version) DO UPDATE SET path = excluded.path, status = excluded.status, "
                  "created_at = excluded.created_at, promoted_at = NULL, manifest = excluded.manifest",
                  (version, path, status, float(created_at), json.dumps(manifest)))


def all_models(store: Store) -> List[ModelRow]:
    """Every registered bundle, oldest first (by creation time, then version)."""
    rows = store.conn.execute(f"SELECT {_COLS} FROM models ORDER BY created_at, version").fetchall()  # noqa: S608 (constant columns)
    return [_model(r) for r in rows]


def get_model(store: Store, version: str) -> Optional[ModelRow]:
    """The bundle ``version``, None when it is not registered."""
    r = store.conn.execute(f"SELECT {_COLS} FROM models WHERE version = ?", (version,)).fetchone()  # noqa: S608 (constant columns)
    return _model(r) if r is not None else None


def current_version(store: Store) -> Optional[str]:
    """The version whose status is 'current', None when there is none."""
    r = store.conn.execute("SELECT version FROM models WHERE status = 'current'").fetchone()
    return r[0] if r else None


def make_current(store: Store, version: str, promoted_at: float) -> None:
    """In one transaction: the current bundle becomes 'retired', ``version`` 'current'."""
    with store.transaction() as c:
        c.execute("UPDATE models SET status = 'retired' WHERE status = 'current'")
        c.execute("UPDATE models SET status = 'current', promoted_at = ? WHERE version = ?",
                  (promoted_at, version))
        c.execute("INSERT INTO model_promotions (version, promoted_at) VALUES (?, ?) "
                  "ON CONFLICT (version, promoted_at) DO NOTHING", (version, promoted_at))


def last_promoted_retired(store: Store, other_than: str) -> Optional[str]:
    """The most recently promoted retired bundle other than ``other_than``, None if none."""
    r = store.conn.execute(
        "SELECT version FROM models WHERE status = 'retired' AND promoted_at IS NOT NULL "
        "AND version != ? ORDER BY promoted_at DESC LIMIT 1", (other_than,)).fetchone()
    return r[0] if r else None


def unpromote(store: Store, version: str) -> None:
    """Retire ``version`` and forget it was ever promoted (a rollback's bundle is not rolled back to)."""
    with store.transaction() as c:
        c.execute("UPDATE models SET status = 'retired', promoted_at = NULL WHERE version = ?", (version,))


def versions_with_prefix(store: Store, prefix: str) -> List[Tuple[str, str]]:
    """(version, status) of the bundles whose version starts with ``prefix``, by version."""
    rows = store.conn.execute("SELECT version, status FROM models WHERE version LIKE ? ORDER BY version",
                              (prefix + "%",)).fetchall()
    return [(r[0], r[1]) for r in rows]


def delete_model(store: Store, version: str) -> None:
    """Remove the row of bundle ``version``."""
    with store.transaction() as c:
        c.execute("DELETE FROM models WHERE version = ?", (version,))


def promotions(store: Store) -> List[Tuple[str, float, str]]:
    """Every promotion ever made, oldest first: (version, promoted_at, bundle path); a bundle
    whose row was deleted (pruned history refreshes) has path ''."""
    rows = store.conn.execute(
        "SELECT p.version, p.promoted_at, coalesce(m.path, '') FROM model_promotions p "
        "LEFT JOIN models m ON m.version = p.version ORDER BY p.promoted_at, p.version").fetchall()
    return [(r[0], float(r[1]), r[2]) for r in rows]
