"""``nomade demo``: see nomade work on a real trace, on any machine, in seconds."""

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import click

from .context import AppContext, echo_json, pass_app

_CLASS_ORDER = ("success", "failed", "timeout", "oom", "system", "cancelled_owner",
                "cancelled_other", "unknown")


@click.command()
@click.option("--force", is_flag=True,
              help="With --data-dir: import even if that store already holds jobs.")
@click.option("--no-train", "no_train", is_flag=True,
              help="Only import and summarize the trace; skip training and evaluating a model.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--serve", is_flag=True,
              help="Then serve the demo store with the web dashboard (needs the web extra), the "
                   "collectors running on this machine and the end of the trace replayed as a live "
                   "cluster, until Ctrl-C.")
@click.option("--port", default=None, type=click.IntRange(1, 65535),
              help="With --serve: the dashboard's port (else web.port).")
@click.option("--speed", default=600.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="With --serve: trace seconds replayed per second (600: ten trace minutes a second).")
@click.option("--no-replay", "no_replay", is_flag=True,
              help="With --serve: import the whole trace and replay nothing (only the collectors run).")
@pass_app
def demo(app: AppContext, force: bool, no_train: bool, as_json: bool, serve: bool = False,
         port: Optional[int] = None, speed: float = 600.0, no_replay: bool = False) -> None:
    """Import a bundled real trace into a fresh store and summarize it.

    The trace is the LLNL Atlas log (43,778 jobs, 2006-2007) from the Parallel Workloads Archive.

    The store goes to the global --data-dir if given (refused if it already holds jobs, unless
    --force), else to a new temporary directory. Nothing else on the machine is touched.
    """
    from ..demo import prepare_data_dir, run_demo, train_step
    if serve:
        from ..web.serve import require_web_extra
        require_web_extra()   # before minutes of work, not after

    given = app.overrides.get("data_dir")
    data_dir = prepare_data_dir(Path(given) if given else None, force=force)
    say = None if as_json else click.echo
    plan = None
    if serve and not no_replay:   # the last jobs are held back from the import, replayed live
        from ..demo import bundled_trace_path
        from ..demo_replay import plan_replay
        plan = plan_replay(bundled_trace_path())
    summary = run_demo(data_dir, out=say, batch_size=app.config.get("ingest.batch_size"), train=False,
                       keep=plan.imported if plan is not None else None)
    if plan is not None:
        summary.extra["replay"] = {"jobs": len(plan.jobs), "cut": plan.cut, "speed": speed}
    if not as_json:
        _print_summary(summary)
        if plan is not None:
            click.echo(f"replay:    {plan.summary()}")
    if not no_train:
        train_step(summary, say)
    if as_json:
        echo_json(summary.as_dict())
    else:
        click.echo(f"next:      nomade --data-dir {summary.data_dir} jobs --all-users --state failed")
        click.echo(f"done in {summary.seconds:.1f} s")
    if serve:
        from ..web.serve import serve_demo
        if plan is None:
            serve_demo(app.config_path, app.overrides, summary.data_dir, None, port, click.echo)
        else:
            from ..demo_replay import background
            serve_demo(app.config_path, app.overrides, summary.data_dir, None, port, click.echo,
                       background=background(plan, speed, click.echo),
                       background_note=f"the trace replays at {speed:g}x and the collectors run "
                                       "on this machine every 5 s")


def _print_summary(summary) -> None:
    o = summary.outcomes
    click.echo(f"jobs:      {o.jobs}")
    click.echo(f"users:     {o.users}")
    click.echo(f"submitted: {_day(o.first_submit)} .. {_day(o.last_submit)} (UTC)")
    click.echo("outcomes:")
    names = [c for c in _CLASS_ORDER if c in o.by_class] + sorted(set(o.by_class) - set(_CLASS_ORDER))
    for cls in names:
        click.echo(f"  {cls:<16} {o.by_class[cls]:>8}  {o.share(cls):5.1f}%")
    click.echo(f"data dir:  {summary.data_dir}  (store {summary.store_path.name})")


def _day(ts: Optional[float]) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d")
