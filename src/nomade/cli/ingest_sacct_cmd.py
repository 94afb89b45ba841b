"""``nomade ingest sacct``: Slurm accounting into the store (live and incremental, or saved files)."""

from typing import Optional

import click

from .context import AppContext, echo_json, pass_app


@click.command("sacct")
@click.option("--file", "file_", default=None, metavar="FILE",
              help="Load a saved `sacct -P` dump (header line included; .gz ok; - = stdin) "
                   "instead of running sacct.")
@click.option("--json-file", default=None, metavar="FILE",
              help="Load a saved `sacct --json` document (Slurm 22.05) instead of running sacct.")
@click.option("--format", "fields", default=None, metavar="F1,F2,...",
              help="Fields of a --file dump that has no header line (sacct's --format names).")
@click.option("--delimiter", default="|", show_default=True,
              help="Field delimiter of a --file dump (sacct --delimiter; a random token "
                   "makes the dump unforgeable, see docs/slurm.md).")
@click.option("--since", default=None, metavar="YYYY-MM-DDTHH:MM:SS",
              help="Live: read from this local time instead of the stored high-water mark.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@pass_app
def sacct(app: AppContext, file_: Optional[str], json_file: Optional[str], fields: Optional[str],
          delimiter: str, since: Optional[str], as_json: bool) -> None:
    """Load job outcomes from Slurm accounting.

    Without --file/--json-file, runs `sacct -a -D -P` for the jobs active since the last run
    (minus slurm.overlap_s; the first run looks back slurm.initial_lookback_days), with a fresh
    random field delimiter each run so that text users wrote cannot forge a row. Bad rows, and
    rows whose user or uid contradicts the store or each other, are quarantined with their
    line and reason; running again never duplicates a job. Export dumps as docs/slurm.md
    ("Saved sacct dumps") says.
    """
    from ..errors import IngestError
    from ..ingest import sacct as ingest
    from ..progress import Progress

    if file_ and json_file:
        raise click.UsageError("give --file or --json-file, not both")
    cfg = app.config
    cluster = cfg.get("cluster") or None
    batch = cfg.get("ingest.batch_size")
    progress = Progress("sacct", "rows", enabled=None if not as_json else False)
    field_list = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
    with app.store() as store:
        if json_file:
            result = ingest.ingest_json_file(store, json_file, cluster=cluster, batch_size=batch)
        elif file_:
            result = ingest.ingest_file(store, file_, fields=field_list, delimiter=delimiter,
                                        cluster=cluster, batch_size=batch, progress=progress)
        else:
            start = None
            if since:
                from ..slurm.sacct_fields import parse_time
                try:
                    start = parse_time(since)
                except ValueError:
                    start = None
                if start is None:
                    raise IngestError(f"--since {since!r}: expected YYYY-MM-DDTHH:MM:SS (local time)")
            result = ingest.ingest_live(
                store, sacct=cfg.get("slurm.sacct"), cluster=cluster,
                timeout=cfg.get("slurm.command_timeout_s"), overlap_s=cfg.get("slurm.overlap_s"),
                lookback_days=cfg.get("slurm.initial_lookback_days"), batch_size=batch,
                since=start, progress=progress)
        if not json_file and not file_:
            from ..production import record_production_metrics, record_submit_scores
            record_submit_scores(store)   # what sbatch told each new job (nomade models performance)
            record_production_metrics(store, cfg)   # precision and calibration, for the alert rules
    progress.done()
    if as_json:
        echo_json(result.as_dict())
    else:
        click.echo(f"sacct: {result.counts.summary()}")
