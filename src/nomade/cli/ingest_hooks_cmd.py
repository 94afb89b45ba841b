"""``nomade ingest hooks``: load the Prolog/Epilog/MailProg spool into the store."""

from typing import Optional

import click

from .context import AppContext, echo_json, pass_app


@click.command()
@click.option("--spool-dir", type=str, default=None, metavar="DIR",
              help="Hook spool to load (default: hooks.spool_dir).")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@pass_app
def hooks(app: AppContext, spool_dir: Optional[str], as_json: bool) -> None:
    """Load hook records (start-time scores, job ends) written by nomade's Slurm hooks."""
    from pathlib import Path

    from ..ingest.hook_spool import load_hook_spool
    path = Path(spool_dir) if spool_dir else app.config.spool_dir("hooks")
    with app.store() as store:
        counts = load_hook_spool(store, path, cluster=app.config.get("cluster"),
                                 keep_days=app.config.get("hooks.keep_days"))
        from ..alerts.engine import after_prediction_ingest
        after_prediction_ingest(app.config, store, lambda line: click.echo(f"nomade ingest hooks: {line}", err=True))
    if as_json:
        echo_json({"loaded": counts.loaded, "unchanged": counts.unchanged,
                   "quarantined": counts.quarantined, "aged_out": counts.aged_out})
    else:
        click.echo(f"hooks: {counts.summary()} from {path}")
