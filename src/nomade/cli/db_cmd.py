"""``nomade db migrate|status``."""

import click

from ..store.db import apply_migrations, row_counts
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
