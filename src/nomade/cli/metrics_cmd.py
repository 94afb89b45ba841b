"""``nomade metrics``: the Prometheus exposition of ``/metrics`` (nomade.web.metrics_endpoint) on
stdout, or written atomically as a node_exporter textfile-collector file."""

from pathlib import Path
from typing import Optional

import click

from .context import AppContext, echo_json, pass_app

TEXTFILE_MODE = 0o644   # node_exporter (another account) reads it; it names no user by default


@click.command("metrics")
@click.option("--textfile", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="PATH", help="Write the exposition to PATH atomically (mode 0644) instead of "
                                   "stdout: for node_exporter's --collector.textfile.directory "
                                   "(name it *.prom).")
@click.option("--json", "as_json", is_flag=True, help="Print the metric families as JSON.")
@pass_app
def metrics(app: AppContext, textfile: Optional[Path], as_json: bool) -> None:
    """Print nomade's Prometheus metrics: collectors, alerts, model age and precision, ingest lag,
    jobs by risk level (docs/metrics.md).

    Run it from cron or a systemd timer with --textfile to publish through node_exporter's
    textfile collector; the dashboard serves the same text at /metrics.
    """
    from ..errors import NomadeError
    from ..private_files import write_atomic
    from ..web.metrics_endpoint import as_json as families_json, render

    with app.store(readonly=True) as store:
        if as_json:
            echo_json(families_json(app.config, store))
            return
        body, _ = render(app.config, store)
    if textfile is None:
        click.echo(body.decode("utf-8"), nl=False)
        return
    try:
        write_atomic(textfile, body, mode=TEXTFILE_MODE)
    except OSError as exc:
        raise NomadeError(f"cannot write {textfile}: {exc.strerror or exc}",
                          hint="give a path in a directory you can write, e.g. the textfile "
                               "collector's directory") from None
