"""``nomade export --anonymize --format parquet|swf [--out PATH] [--since WHEN] [--cluster C]
[--shift-times] [--secret-file FILE] [--json]``."""

import sys
from pathlib import Path
from typing import Optional

import click

from .context import AppContext, echo_json, pass_app
from .jobs_cmd import _since


def current_caller():
    """Who runs this command (tests replace this one function)."""
    from ..caller_access import local_caller
    return local_caller()


@click.command()
@click.option("--anonymize", is_flag=True,
              help="Required: the export replaces names with keyed pseudonyms and drops paths "
                   "(nomade exports nothing else).")
@click.option("--format", "fmt", type=click.Choice(["parquet", "swf"]), required=True,
              help="parquet (the exported fields named and typed; needs the pyarrow package) or swf (the Standard "
                   "Workload Format's 18 numeric fields).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="PATH", help="File to write (mode 0600, replaced atomically); SWF without "
                                   "--out goes to stdout.")
@click.option("--since", callback=_since, metavar="WHEN",
              help="Only jobs submitted since WHEN: 7d, 12h, 30m, 2w ago, or an ISO date "
                   "(YYYY-MM-DD[THH:MM], UTC).")
@click.option("--cluster", default=None, help="Only this cluster's jobs (default: all).")
@click.option("--shift-times", is_flag=True,
              help="Times as seconds from the export's first submit instead of absolute dates.")
@click.option("--secret-file", default=None, metavar="FILE",
              help="The site's secret (default: export.secret_file); at least 32 bytes, mode 0600.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary (on stderr for SWF to stdout).")
@pass_app
def export(app: AppContext, anonymize: bool, fmt: str, out: Optional[Path], since: Optional[float],
           cluster: Optional[str], shift_times: bool, secret_file: Optional[str], as_json: bool) -> None:
    """Export the jobs table for sharing (root and privacy.admin_group only): users, groups,
    accounts, job names, hosts and the cluster become keyed pseudonyms (HMAC-SHA256 with the
    site's secret: the same secret, the same pseudonyms), job ids, uids, paths, submit lines and
    comments are removed, numbers are kept."""
    from ..export import check_may_export, export_jobs, read_secret
    if not anonymize:
        raise click.UsageError("nomade exports only anonymised data: add --anonymize")
    cfg = app.config
    check_may_export(current_caller(), cfg.get("privacy.admin_group"))
    secret = read_secret(secret_file if secret_file is not None else cfg.get("export.secret_file"))
    stream = None if out is not None else sys.stdout
    with app.store(readonly=True) as store:
        res = export_jobs(store, fmt, secret, out=out, stream=stream, since=since, cluster=cluster,
                          shift_times=shift_times)
    to_stderr = out is None
    if as_json:
        if to_stderr:
            click.echo(_json_text(res.as_dict()), err=True)
        else:
            echo_json(res.as_dict())
        return
    click.echo(f"exported {res.jobs} jobs ({res.format}, anonymised) to {res.path}", err=to_stderr)


def _json_text(obj) -> str:
    import json
    return json.dumps(obj, indent=2, sort_keys=True)
