"""``nomade why JOBID`` and the ``nomade-why`` console script: why a job is (or was) risky."""

import sys
from typing import Optional

import click

from .context import DIRECT_HELP, AppContext, echo_json


@click.command(context_settings={"help_option_names": ["-h", "--help"]})   # also as nomade-why
@click.argument("job_id")
@click.option("--cluster", default="", help="Cluster of the job when the store holds several.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.option("--direct/--service", default=None, help=DIRECT_HELP)
@click.pass_context
def why(ctx: click.Context, job_id: str, cluster: str, as_json: bool, direct: Optional[bool]) -> None:
    """Risk at submit and start, main factors, similar past jobs and what to change."""
    from ..whyservice.client import lookup
    from ..why import format_why
    app = ctx.obj if isinstance(ctx.obj, AppContext) else AppContext()
    cfg = app.lenient_config("nomade-why", quiet=True)   # a typo in the site's file must not stop users
    answer = lookup(cfg, job_id, cluster or cfg.get("cluster"), direct)
    if as_json:
        echo_json(answer)
    else:
        click.echo(format_why(answer))


def main() -> None:
    from .main import run_cli
    sys.exit(run_cli(why, prog_name="nomade-why"))
