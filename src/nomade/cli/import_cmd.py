"""``nomade import swf FILE``: load a public workload trace (Standard Workload Format) into the store."""

from typing import Optional

import click

from .context import AppContext, echo_json, is_terminal, pass_app


@click.group("import")
def import_() -> None:
    """Import job histories from files (public workload traces)."""


@import_.command("swf")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--cluster", default=None, metavar="NAME",
              help="Cluster name to store the jobs under (default: the trace's name, from the file "
                   "name, e.g. llnl-atlas-2006).")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@pass_app
def swf(app: AppContext, file: str, cluster: Optional[str], as_json: bool) -> None:
    """Import an SWF v2.2 trace (.swf or .swf.gz), e.g. from the Parallel Workloads Archive.

    \b
    Mapping of the SWF fields:
      status 1/0/5        -> COMPLETED / FAILED / CANCELLED; any other status (or -1): no
                             state, not final (the job has no outcome)
      -1 (any field)      -> unknown (NULL)
      submit time         -> UnixStartTime (header) + field 2; start = submit + wait,
                             end = start + run (outcome fields, never features)
      user/group/exe id   -> user 'u<id>', group 'g<id>', job name 'app<id>'
      queue/partition     -> qos 'q<id>', partition 'p<id>'
      requested procs     -> req_cpus (allocated procs only when requested is -1)
      requested memory    -> req_mem_mb per CPU (SWF: KB per processor)

    Malformed lines are quarantined with their line number; a file none of whose first lines
    parse is refused. Re-importing the same file changes nothing (all unchanged).
    """
    from ..ingest.swf import import_swf

    show = is_terminal() and not as_json

    def progress(lines: int) -> None:
        if show:
            click.echo(f"\rswf: {lines} lines read", err=True, nl=False)

    with app.store() as store:
        result = import_swf(store, file, cluster=cluster,
                            batch_size=app.config.get("ingest.batch_size"), progress=progress)
    if show:
        click.echo("", err=True)
    if as_json:
        echo_json(result.as_dict())
    else:
        click.echo(result.summary())
