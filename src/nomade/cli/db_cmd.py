"""``nomade db migrate|status|copy``."""

from typing import Optional

import click

from ..errors import StoreError
from ..store.db import apply_migrations, row_counts
from ..store.pg import redact
from .context import AppContext, echo_json, pass_app


@click.group()
def db() -> None:
    """Manage the store's schema."""


@db.command("migrate")
@pass_app
def migrate(app: AppContext) -> None:
    """Create the store if needed and apply pending migrations."""
    with app.store(migrate=False) as store:
        done = apply_migrations(store)
    if done:
        for mg in done:
            click.echo(f"applied {mg.version:04d}_{mg.name}")
    else:
        click.echo("store is up to date")
    click.echo(f"store: {store.path}")


@db.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Show applied and pending migrations and row counts."""
    with app.store(migrate=False) as store:
        applied, pending = store.schema_status()
        counts = row_counts(store) if applied else {}
    info = {"store": str(store.path), "applied": applied,
            "pending": [f"{m.version:04d}_{m.name}" for m in pending], "rows": counts}
    if as_json:
        echo_json(info)
        return
    click.echo(f"store:   {info['store']}")
    click.echo(f"applied: {', '.join(f'{v:04d}' for v in applied) or '(none)'}")
    click.echo(f"pending: {', '.join(info['pending']) or '(none)'}")
    for t, n in counts.items():
        click.echo(f"{t:<12} {n:>10}")


@db.command("copy")
@click.option("--from", "source", metavar="PATH|URL", default=None,
              help="The store to copy: a SQLite file or a postgresql:// URL (default: the configured store).")
@click.option("--to", "target", metavar="PATH|URL", required=True,
              help="Where to copy it: a SQLite file or a postgresql:// URL (created and migrated as needed).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def copy(app: AppContext, source: Optional[str], target: str, as_json: bool) -> None:
    """Copy a whole store to another engine or place (SQLite to PostgreSQL and back), verifying
    every table's count. Run again, it adds only what is missing. Passwords come from ~/.pgpass,
    PGPASSFILE or PGPASSWORD, never from the URL."""
    from ..store.copy import copy_store
    from ..store.db import open_store, store_location
    for url in (source, target):
        if url is not None and redact(url) != url:
            raise StoreError(f"{redact(url)}: a password on the command line is visible to every user",
                             hint="put it in ~/.pgpass or a file named by PGPASSFILE")
    busy = app.config.get("store.busy_timeout_ms")
    src = source if source is not None else store_location(app.config)
    with open_store(src, busy, migrate=False, readonly=True) as a, open_store(target, busy) as b:
        res = copy_store(a, b)
    if as_json:
        echo_json({"from": str(a.path), "to": str(b.path), "tables": res.as_dict()})
        return
    click.echo(f"copied {a.path} -> {b.path}")
    for t in res.tables:
        click.echo(f"{t.table:<18} {t.source_rows:>10} rows, {t.added:>10} added")
