"""``nomade disk PATH``: one filesystem's trend in words (nomade.analysis.views)."""

from typing import Optional

import click

from ..analysis.words import printable as _safe
from .context import AppContext, echo_json, pass_app


@click.command("disk")
@click.argument("path")
@click.option("--hours", type=click.FloatRange(min=0.1), default=72.0, show_default=True,
              help="Window of samples the trend is fitted over.")
@click.option("--cluster", default=None,
              help="Cluster whose metrics to read (default: the one `nomade collect` stores under).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def disk(app: AppContext, path: str, hours: float, cluster: Optional[str], as_json: bool) -> None:
    """Trend of the filesystem holding PATH: fill level, rate, acceleration, time to full."""
    from ..analysis.views import Analysis
    from ..monitor import cluster_name
    cluster = cluster or cluster_name(app.config)
    from ..analysis.words import DAY, human_bytes, human_duration

    with app.store(readonly=True) as store:
        d = Analysis(store, cluster=cluster).disk(path, hours=hours)
    if as_json:
        echo_json(d.as_dict())
        return
    click.echo(_safe(d.sentence))
    click.echo(f"  {human_bytes(d.used_bytes)} of {human_bytes(d.size_bytes)} used"
               + (f", {human_bytes(d.free_bytes)} free" if d.free_bytes is not None else "")
               + (f", inodes {d.inodes_used_percent:.0f} % used" if d.inodes_used_percent is not None else ""))
    tr = d.trend
    if tr is None or tr.n < 3:
        return
    click.echo(f"  rate {human_bytes(tr.rate_per(DAY))}/day (+/- {human_bytes(2 * tr.rate_se * DAY)}), "
               f"acceleration {human_bytes(tr.accel_per(DAY))}/day^2; trend: {tr.trend}")
    if tr.ttl_earliest_s is not None:
        early = human_duration(tr.ttl_earliest_s)
        late = human_duration(tr.ttl_latest_s) if tr.ttl_latest_s is not None else "over a year"
        click.echo(f"  full: {'about ' + early if early == late else f'between {early} and {late}'}"
                   " (95 % band)")
    click.echo(f"  from {tr.n} samples over {human_duration(tr.span_s)}"
               + (f", {tr.resets} reset(s)" if tr.resets else "")
               + (f", longest gap {human_duration(tr.max_gap_s)}" if tr.max_gap_s > 3600 else ""))
