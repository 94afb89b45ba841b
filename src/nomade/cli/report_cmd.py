"""``nomade report JOBID``: the seff/jobstats-style job report."""

import click

from .context import DIRECT_HELP, AppContext, echo_json, pass_app


def current_caller():
    """Who runs this command (tests replace this one function)."""
    from ..caller_access import local_caller
    return local_caller()


@click.command()
@click.argument("job_id")
@click.option("--cluster", default="", help="Cluster of the job when the store holds several.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--direct/--service", default=None,
              help=DIRECT_HELP)
@pass_app
def report(app: AppContext, job_id: str, cluster: str, as_json: bool, direct) -> None:
    """Efficiency, time used vs limit, outcome, predicted risk vs outcome, and what to change.

    JOB_ID as Slurm prints it (123, 123_4, 123+1) or a job's own SLURM_JOB_ID; an array's id
    reports every task and a summary line (JSON: {"jobs": [...], "summary": {...}}).

    The same rule as nomade-why: a caller may report only their own jobs; root and members of
    privacy.admin_group may report any.
    """
    from .. import risk_scale
    from ..report import format_reports, load_reports, reports_summary
    from ..whyservice.client import ask, reads_store
    cfg = app.config
    if not reads_store(cfg, direct):   # users' stores are private: the service applies the same rule
        from pathlib import Path

        ans = ask(Path(cfg.get("privacy.socket")), job_id, cluster or cfg.get("cluster") or "", op="report")
        if as_json:
            rs = ans.get("reports") or []
            echo_json(rs[0] if len(rs) == 1 else {"jobs": rs, "summary": ans.get("summary")})
        else:
            click.echo(ans.get("text") or "")
        return
    threshold = risk_scale.current_threshold(app.config)
    with app.store(readonly=True) as store:
        rs = load_reports(store, job_id, cluster or app.config.get("cluster"), threshold,
                          caller=current_caller(), admin_group=app.config.get("privacy.admin_group"))
    if as_json:
        echo_json(rs[0].as_dict() if len(rs) == 1 else
                  {"jobs": [r.as_dict() for r in rs], "summary": reports_summary(rs)})
    else:
        click.echo(format_reports(rs, job_id))
