"""``nomade report JOBID``: the seff/jobstats-style job report."""

import click

from .context import AppContext, echo_json, pass_app


def current_caller():
    """Who runs this command (tests replace this one function)."""
    from ..caller_access import local_caller
    return local_caller()


@click.command()
@click.argument("job_id")
@click.option("--cluster", default="", help="Cluster of the job when the store holds several.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_app
def report(app: AppContext, job_id: str, cluster: str, as_json: bool) -> None:
    """Efficiency, time used vs limit, outcome, predicted risk vs outcome, and what to change.

    The same rule as nomade-why: a caller may report only their own jobs; root and members of
    privacy.admin_group may report any.
    """
    from ..report import format_report, load_report
    threshold = app.config.get("model.alert_threshold") or 0.5
    with app.store(readonly=True) as store:
        r = load_report(store, job_id, cluster or app.config.get("cluster"), threshold,
                        caller=current_caller(), admin_group=app.config.get("privacy.admin_group"))
    if as_json:
        echo_json(r.as_dict())
    else:
        click.echo(format_report(r))
