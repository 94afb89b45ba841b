"""``nomade report JOBID``: the seff/jobstats-style job report."""

import click

from .context import AppContext, echo_json, pass_app


@click.command()
@click.argument("job_id")
@click.option("--cluster", default="", help="Cluster of the job when the store holds several.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_app
def report(app: AppContext, job_id: str, cluster: str, as_json: bool) -> None:
    """Efficiency, time used vs limit, outcome, predicted risk vs outcome, and what to change."""
    from ..report import format_report, load_report
    threshold = app.config.get("model.alert_threshold") or 0.5
    with app.store(readonly=True) as store:
        r = load_report(store, job_id, cluster or app.config.get("cluster"), threshold)
    if as_json:
        echo_json(r.as_dict())
    else:
        click.echo(format_report(r))
