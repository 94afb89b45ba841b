"""``nomade ingest spool``: load the recorder's spool into the store."""

from typing import Optional, Tuple

import click

from .context import AppContext, echo_json, pass_app


@click.command("spool")
@click.argument("spool_dirs", nargs=-1, type=click.Path(file_okay=False))
@click.option("--cluster", default=None, metavar="NAME",
              help="Cluster for records that carry none (else `cluster`, else slurm.conf's ClusterName).")
@click.option("--keep", is_flag=True, help="Keep closed spool segments after loading them.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@pass_app
def spool(app: AppContext, spool_dirs: Tuple[str, ...], cluster: Optional[str], keep: bool,
          as_json: bool) -> None:
    """Load recorder samples and early-warning events from SPOOL_DIRS (default: recorder.spool_dir).

    Idempotent: samples are keyed by (cluster, job, node, time), events by (cluster, job, node,
    kind); per-job summaries are rebuilt from all stored samples of the jobs touched. Closed
    segments are deleted once committed unless --keep.
    """
    from pathlib import Path

    from ..ingest.spool import load_spool

    dirs = [Path(d) for d in spool_dirs] or [app.config.spool_dir("recorder")]
    with app.store() as store:
        result = load_spool(store, dirs, cluster=cluster or app.config.get("cluster"), keep=keep)
        from ..alerts.engine import after_prediction_ingest
        after_prediction_ingest(app.config, store, lambda line: click.echo(f"nomade ingest spool: {line}", err=True))
    if as_json:
        echo_json(result.as_dict())
        return
    click.echo(f"spool: {result.samples_new} new samples ({result.samples_seen} read), "
               f"{result.events_new} new events ({result.events_seen} read), "
               f"{result.jobs_summarized} job summaries, {result.segments_read} segments read, "
               f"{result.segments_deleted} deleted, {result.bad_lines} quarantined")
    if result.dropped_by_recorder:
        click.echo(f"spool: the recorder dropped {result.dropped_by_recorder} records so far "
                   f"(spool full or write errors; see counters.json)")
